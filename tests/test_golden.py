"""Same input, same seed -> byte-identical MIDI: the music a refactor must not change.

The hashes were recorded by ``scripts/make_golden.py`` with the shipped checkpoints. A change meant
to alter the music (a new model or sampler) re-records them and says so in its commit.
"""

from __future__ import annotations

import json

from golden_cases import GOLDEN, golden_hashes


def test_every_example_gives_the_recorded_midi_bytes():
    want = json.loads(GOLDEN.read_text())
    got = golden_hashes()
    assert set(got) == set(want)
    changed = sorted(k for k in want if got[k] != want[k])
    assert not changed, f"{len(changed)} of {len(want)} files differ, e.g. {changed[:5]}"
