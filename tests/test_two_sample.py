"""The measurement harness of Generate (training/two_sample.py, training/form_stats.py): the three
classifier two-sample tests on synthetic melodies whose answer is known, and the form statistics
on small hand-made tunes."""

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.melody import Melody, Note
from musicgen_app.training.form_stats import (
    WindowIndex,
    copy_share,
    leaps,
    phrase_agreement,
    phrase_return_share,
    phrase_returns,
    repeated_bars,
    window_repeats,
)
from musicgen_app.training.two_sample import CLASSIFIERS, melody_features, two_sample_accuracies

torch.set_num_threads(1)
C_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
PER_CLASS = 100
FOLDS = 4  # one fewer than the bench's: the same machinery, a third faster


def bars(*bar_notes, pickup: int = 0) -> Melody:
    """A 4/4 melody from bars given as [(position in bar, pitch, duration), ...] (16 steps a bar)."""
    notes = [Note(pickup + 16 * i + s, p, d) for i, bar in enumerate(bar_notes) for s, p, d in bar]
    return Melody(notes=tuple(notes), total_steps=pickup + 16 * len(bar_notes), pickup_steps=pickup)


def stepwise(rng: np.random.Generator) -> Melody:
    """Four bars of eighths and quarters walking by scale steps in C major around middle C."""
    degree, t, notes = int(rng.integers(7, 12)), 0, []
    while t < 64:
        d = min(int(rng.choice([2, 4])), 64 - t)
        degree = int(np.clip(degree + rng.choice([-1, 1]), 3, 16))
        notes.append(Note(t, int(48 + 12 * (degree // 7) + C_MAJOR[degree % 7]), d))
        t += d
    return Melody(notes=tuple(notes), total_steps=64)


def leaping(rng: np.random.Generator) -> Melody:
    """The same rhythms with pitches drawn anywhere in three octaves: random leaps."""
    m = stepwise(rng)
    return m.replace(notes=tuple(Note(n.start, int(rng.integers(48, 85)), n.duration) for n in m.notes))


# -- classifier two-sample tests ------------------------------------------------------------------
@pytest.fixture(scope="module")
def same_and_different():
    rng = np.random.default_rng(7)
    a = [stepwise(rng) for _ in range(PER_CLASS)]
    b = [stepwise(rng) for _ in range(PER_CLASS)]
    c = [leaping(rng) for _ in range(PER_CLASS)]
    return two_sample_accuracies(a, b, seed=0, folds=FOLDS), two_sample_accuracies(c, a, seed=0, folds=FOLDS)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_one_distribution_is_not_told_apart(same_and_different, name):
    # Under the null a cross-validated accuracy on 2 x 100 melodies has a standard deviation of about
    # sqrt(0.25 / 200) = 0.035 (a little more, as folds share training rows): 0.13 is nearly four.
    same, _ = same_and_different
    assert same["per_class"] == PER_CLASS
    assert abs(same[name] - 0.5) <= 0.13, same


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_steps_and_leaps_are_told_apart(same_and_different, name):
    _, different = same_and_different
    assert different[name] >= 0.9, different


def test_larger_set_is_subsampled_and_groups_stay_whole():
    rng = np.random.default_rng(1)
    real = [stepwise(rng) for _ in range(40)]
    out = two_sample_accuracies([leaping(rng) for _ in range(90)], real, classifiers=("logistic",),
                                groups_real=np.repeat(np.arange(8), 5))
    assert out["per_class"] == 40 and set(out) == {"per_class", "logistic", "seconds"}
    with pytest.raises(ValueError, match="Unknown classifiers"):
        two_sample_accuracies(real, real, classifiers=("svm",))


def test_features_have_one_length_for_every_melody_length():
    rng = np.random.default_rng(2)
    four = stepwise(rng)
    sixteen = four.concat(four).concat(four).concat(four)
    assert melody_features(four).shape == melody_features(sixteen).shape
    assert np.isfinite(melody_features(Melody(notes=(), total_steps=64))).all()


# -- form statistics ------------------------------------------------------------------------------
A = [(0, 60, 4), (4, 62, 4), (8, 64, 8)]
B = [(0, 67, 8), (8, 65, 8)]
C = [(0, 64, 4), (4, 62, 4), (8, 60, 8)]
D = [(0, 60, 16)]
E = [(0, 72, 2), (2, 71, 2), (4, 69, 4), (8, 67, 8)]


def test_bar_three_repeating_bar_one_is_one_repeated_bar():
    tune = bars(A, B, A, C)
    assert window_repeats(tune) == [1]
    assert repeated_bars([tune]) == {"per_window": 1.0, "share": 1 / 3, "windows": 1}


def test_repeats_are_counted_per_window_and_need_equal_notes():
    # bar 5 equals bar 1, but in another window; bar 7 has bar 5's rhythm a step higher
    higher = [(s, p + 2, d) for s, p, d in A]
    tune = bars(A, B, C, D, A, B, higher, B)
    assert window_repeats(tune) == [0, 1]
    assert repeated_bars([tune])["per_window"] == 0.5
    # a shorter last note is not the same bar; an empty bar never repeats
    assert window_repeats(bars(A, B, [(0, 60, 4), (4, 62, 4), (8, 64, 4)], [])) == [0]
    assert window_repeats(bars([], B, [], C)) == [0]


def test_pickup_is_skipped():
    tune = bars(A, B, A, C, pickup=4)
    assert tk.bar_rows(tune).shape == (4, 16) and window_repeats(tune) == [1]


def test_aaba_returns_two_of_three_phrases():
    a, b = [A, B, C, D], [E, D, B, D]
    tune = bars(*a, *a, *b, *a)
    assert phrase_returns(tune) == [(True, True), (False, False), (True, True)]
    assert phrase_return_share([tune])["exact"] == pytest.approx(2 / 3)


def test_a_transposed_phrase_returns():
    a = [A, B, C, D]
    up_a_fourth = [[(s, p + 5, d) for s, p, d in bar] for bar in a]
    other = [E, D, E, D]
    tune = bars(*a, *other, *up_a_fourth, *other)
    assert [e for e, _ in phrase_returns(tune)] == [False, True, True]


def test_a_phrase_that_mostly_returns():
    a = [A, B, C, D]
    changed = [A, B, C, [(0, 62, 8), (8, 55, 8)]]  # one note changed, one added: 8 of 10 events equal
    exact, agreement = phrase_agreement(tk.bar_rows(bars(*changed)).reshape(-1),
                                        tk.bar_rows(bars(*a)).reshape(-1))
    assert not exact and agreement == pytest.approx(0.8)
    assert phrase_returns(bars(*a, *changed)) == [(False, True)]
    # same rhythm, other pitches: the held steps must not make it agree
    assert phrase_agreement(tk.bar_rows(bars(A)).reshape(-1), tk.bar_rows(bars(C)).reshape(-1))[1] < 0.75


def test_octave_and_a_half_leap_is_counted_and_an_octave_is_not():
    wide = bars([(0, 60, 4), (4, 78, 4), (8, 76, 8)])
    octave = bars([(0, 60, 4), (4, 72, 4), (8, 71, 8)])
    assert leaps([wide, octave]) == {"interval_share": 0.25, "melody_share": 0.5}


def test_copies_of_training_windows_are_found_untransposed_only():
    train = [bars(A, B, C, D, E, pickup=4)]
    index = WindowIndex(train, 64)
    assert len(index) == 2  # bars 1-4 and 2-5
    second = bars(B, C, D, E)
    assert copy_share([second, second.transpose(2), bars(A, B, C, E), bars(A, B, C)], index) == 0.25
