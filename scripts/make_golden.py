"""Record the sha256 of the MIDI files the studio makes from each example with fixed seeds.

    python scripts/make_golden.py            # rewrite tests/data/golden.json

``tests/test_golden.py`` recomputes the same files and compares: a refactor must leave every byte as
it was. Re-record only when a change is meant to alter the music (a new model, a new sampler), and
say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.golden_cases import GOLDEN, golden_hashes  # noqa: E402


def main() -> None:
    hashes = golden_hashes()
    GOLDEN.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(hashes)} files")


if __name__ == "__main__":
    main()
