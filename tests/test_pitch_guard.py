"""The pitch guard of Continue: the measured table is applied, clamped to the model's range, an asked
range wins, and real continuations stay inside it."""

import numpy as np
import pytest

from musicgen_app import tokens as tk
from musicgen_app.errors import MelodyError
from musicgen_app.io.importer import load_melody
from musicgen_app.melody import Melody, Note
from musicgen_app.service import ContinueRequest, MelodyService, pitch_guard
from musicgen_app.training import corpus


def line(pitches, bar_steps=16, bars=None):
    """Quarter notes of ``pitches`` in 4/4, padded with rests to ``bars`` bars."""
    notes = tuple(Note(4 * i, p, 4) for i, p in enumerate(pitches))
    total = (bars or -(-4 * len(pitches) // bar_steps)) * bar_steps
    return Melody(notes=notes, total_steps=total)


@pytest.mark.parametrize("pitches, guard", [
    ([76, 77, 79, 81], (76 - 12, 81 + 7)),  # high and narrow: real continuations fall further
    ([60, 62, 64, 65], (60 - 7, 65 + 11)),  # low and narrow: they climb
    ([55, 57, 59, 60, 62, 64, 65, 67, 69, 70], (55 - 7, 70 + 9)),  # low register, wide (15)
    ([67, 69, 71, 72, 74, 76, 77, 79], (67 - 7, 79 + 7)),  # middle, 12 wide: the old fifth
])
def test_the_table_widens_the_input_range_by_register_and_range(pitches, guard):
    m = line(pitches)
    assert pitch_guard.pitch_guard(m) == guard
    mean, span = np.mean(pitches), max(pitches) - min(pitches)
    below, above = pitch_guard.margins(mean, span)
    assert guard == (min(pitches) - below, max(pitches) + above)


def test_bin_edges_belong_to_the_upper_bin():
    assert pitch_guard.margins(72.9, 3) == pitch_guard.MARGINS[2][0]
    assert pitch_guard.margins(73.0, 3) == pitch_guard.MARGINS[3][0]
    assert pitch_guard.margins(73.0, 8) == pitch_guard.MARGINS[3][0]
    assert pitch_guard.margins(73.0, 9) == pitch_guard.MARGINS[3][1]


def test_never_narrower_than_the_old_fifth():
    for row in pitch_guard.MARGINS:
        for below, above in row:
            assert below >= pitch_guard.OLD_MARGIN and above >= pitch_guard.OLD_MARGIN


def test_clamped_to_the_models_range_and_measured_on_folded_pitches():
    assert pitch_guard.pitch_guard(line([22, 24, 26, 28]))[0] == tk.MIN_PITCH
    assert pitch_guard.pitch_guard(line([100, 103, 105, 107]))[1] == tk.MAX_PITCH
    # Pitch 12 is played as 24 (folded by an octave, as tokens.encode does), so the guard is around 24.
    low, high = pitch_guard.pitch_guard(line([12, 12, 12, 12]))
    assert low == tk.MIN_PITCH and high == 24 + pitch_guard.margins(24, 0)[1]


def test_no_notes_is_a_melody_error():
    with pytest.raises(MelodyError, match="no notes"):
        pitch_guard.pitch_guard(Melody(notes=(), total_steps=16))


@pytest.fixture(scope="module")
def svc():
    return MelodyService.debug()


def test_continue_uses_the_guard_and_reports_it(svc):
    m = line([76, 77, 79, 81, 79, 77, 76, 74])
    # The debug model's random weights at a high temperature spread over all 88 pitches unless masked.
    res = svc.continue_(ContinueRequest(m, bars=4, variations=4, seed=3, temperature=2.0, ending="free"))
    assert res.pitch_range == pitch_guard.pitch_guard(m) == (74 - 12, 81 + 7)
    pitches = [n.pitch for c in res.continuations for n in c.notes]
    assert res.pitch_range[0] <= min(pitches) and max(pitches) <= res.pitch_range[1]
    assert min(pitches) < 74 - 7  # below what the old guard (a fifth) allowed


def test_an_asked_range_wins(svc):
    m = line([76, 77, 79, 81, 79, 77, 76, 74])
    res = svc.continue_(ContinueRequest(m, bars=4, variations=4, seed=3, temperature=2.0, ending="free",
                                        pitch_range=(40, 50)))
    assert res.pitch_range == (40, 50)
    pitches = [n.pitch for c in res.continuations for n in c.notes]
    assert pitches and all(40 <= p <= 50 for p in pitches)


def test_continuation_windows_are_4_bar_primers_and_the_next_4_bars():
    m = line(list(range(60, 108)))  # 48 quarter notes: 12 bars
    windows = pitch_guard.continuation_windows([m])
    assert len(windows) == 2  # primers at bars 0 and 4 (bar 8 has no 4 bars after it)
    primer, after = windows[1]
    assert [n.pitch for n in primer.notes] == list(range(76, 92))
    assert after.tolist() == list(range(92, 108))


def test_real_continuations_stay_inside(data_dir):
    """Fixtures of real tunes keep every continuation note; the folk test split keeps >= 99.5 %, more
    than the old guard."""
    tunes = [load_melody(str(data_dir / name)).melody for name in ("folk-tune.mid", "waltz-3-4.mid")]
    windows = pitch_guard.continuation_windows(tunes)
    assert len(windows) == 3 and pitch_guard.kept_share(windows) == 1.0  # 8 bars: one window; 12 bars: two
    test = pitch_guard.continuation_windows(corpus.load_corpus().split("test"))
    new, old = pitch_guard.kept_share(test), pitch_guard.kept_share(test, pitch_guard.old_guard)
    assert new >= 0.995 and new > old
    assert pitch_guard.kept_share(test, lambda m: m.pitch_range) < 0.9  # a guard of the input's range alone fails
