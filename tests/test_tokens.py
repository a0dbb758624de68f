"""The step90 encoding: exact table, round trip, folding of out-of-range pitches, metric features."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen_app import tokens
from musicgen_app.errors import TokenError
from musicgen_app.melody import Key, Melody, Note
from musicgen_app.tokens import HOLD, REST, decode, encode, metric_features


def test_table_matches_the_docstring():
    assert tokens.NUM_CLASSES == 90
    assert tokens.pitch_to_token(21) == 2 and tokens.pitch_to_token(108) == 89
    assert tokens.token_to_pitch(2) == 21 and tokens.token_to_pitch(89) == 108


def test_encode_exact_tokens():
    # rest, C4 for 2 steps, rest 1 step, E4 for 3 steps, G4 right after, trailing rest.
    m = Melody(notes=(Note(1, 60, 2), Note(4, 64, 3), Note(7, 67, 1)), total_steps=10)
    c4, e4, g4 = (p - 19 for p in (60, 64, 67))
    assert encode(m).tokens.tolist() == [REST, c4, HOLD, REST, e4, HOLD, HOLD, g4, REST, HOLD]
    assert encode(m).folded_notes == 0


@st.composite
def melodies(draw):
    notes, t = [], 0
    for _ in range(draw(st.integers(0, 20))):
        t += draw(st.integers(0, 4))
        dur = draw(st.integers(1, 8))
        notes.append(Note(t, draw(st.integers(21, 108)), dur))
        t += dur
    ts = draw(st.sampled_from([(4, 4), (3, 4), (6, 8)]))
    bar = Melody(notes=(), time_signature=ts).bar_steps
    return Melody(notes=tuple(notes), total_steps=t + draw(st.integers(0, 5)), time_signature=ts,
                  pickup_steps=draw(st.integers(0, bar - 1)), key=Key(draw(st.integers(0, 11)), "minor"),
                  qpm=90)


@settings(max_examples=150, deadline=None)
@given(melodies())
def test_round_trip(m):
    enc = encode(m)
    assert len(enc.tokens) == m.total_steps
    assert decode(enc.tokens, template=m) == m


def test_out_of_range_pitches_are_folded_and_counted():
    m = Melody(notes=(Note(0, 12, 2), Note(2, 60, 2), Note(4, 120, 2), Note(6, 127, 2)))
    enc = encode(m)
    assert enc.folded_notes == 3
    back = decode(enc.tokens, template=m)
    assert [n.pitch for n in back.notes] == [24, 60, 108, 103]
    assert [n.pitch % 12 for n in back.notes] == [n.pitch % 12 for n in m.notes]


def test_decode_uses_velocity_and_template_metadata():
    template = Melody(notes=(), time_signature=(6, 8), qpm=100, program=40, pickup_steps=2)
    back = decode([REST, 41, HOLD, REST], template=template, velocity=33)
    assert back.notes == (Note(1, 60, 2, 33),)
    assert (back.time_signature, back.qpm, back.program, back.pickup_steps) == ((6, 8), 100, 40, 2)


@pytest.mark.parametrize("bad", [[0, 90], [-1], [1, 2, 500]])
def test_decode_rejects_bad_tokens(bad):
    with pytest.raises(TokenError, match="outside 0-89"):
        decode(bad)


def test_token_to_pitch_rejects_control_tokens():
    with pytest.raises(TokenError):
        tokens.token_to_pitch(REST)


def test_metric_features_4_4():
    f = metric_features(20, (4, 4))
    assert f.shape == (20, 3) and f.dtype == np.int64
    assert f[:, 0].tolist() == [0, 1, 2, 3] * 5  # step in beat
    assert f[:, 1].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4 + [0] * 4  # beat in bar
    assert set(f[:, 2]) == {15}


def test_metric_features_3_4():
    f = metric_features(13, (3, 4))
    assert f[:, 1].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [0]
    assert set(f[:, 2]) == {11}


def test_metric_features_6_8_with_pickup():
    # 6/8: a bar is 12 steps, a felt beat a dotted quarter (6 steps); a 2-step pickup comes first.
    f = metric_features(16, (6, 8), pickup_steps=2)
    assert f[:2].tolist() == [[4, 1, 11], [5, 1, 11]]  # the last two steps of a bar
    assert f[2].tolist() == [0, 0, 11]  # the first downbeat
    assert f[8].tolist() == [0, 1, 11]  # second beat of the bar
    assert f[14].tolist() == [0, 0, 11]  # next downbeat


def test_metric_features_offset_continues_the_grid():
    whole = metric_features(40, (3, 4), pickup_steps=3)
    assert (metric_features(10, (3, 4), pickup_steps=3, offset=30) == whole[30:]).all()


def test_lookback_features_name_the_bar_before_and_repeats():
    toks = np.array([[2, 3, 4, 5, 2, 3, 9, 5]])
    f = tokens.lookback_features(toks, bar_steps=4, lags=(1,))
    assert f[0, :4, 0].tolist() == [tokens.LOOKBACK_NONE] * 4  # nothing a bar before bar one
    assert f[0, 4:, 0].tolist() == [2, 3, 4, 5]
    # flag at step t: step t-1 equals the step a bar before it
    assert f[0, :, 1].tolist() == [0, 0, 0, 0, 0, 1, 1, 0]


def test_lookback_features_of_a_step_depend_only_on_the_steps_before_it():
    """Sampling computes them step by step from a growing history; training from the whole row."""
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 6, (2, 40))
    whole = tokens.lookback_features(toks, 3, (1, 2, 4))
    for t in range(1, 40):
        prefix = np.concatenate([toks[:, :t], np.full((2, 40 - t), 99)], axis=1)
        assert np.array_equal(tokens.lookback_features(prefix, 3, (1, 2, 4), np.array([t]))[:, 0], whole[:, t])


def test_bar_rows_are_the_whole_bars_of_the_tokens():
    m = Melody(notes=(Note(0, 60, 12), Note(12, 62, 20)), total_steps=40, time_signature=(3, 4))
    rows = tokens.bar_rows(m)  # 40 steps of 12-step bars: 3 whole bars, the last 4 steps left out
    assert rows.shape == (3, 12)
    np.testing.assert_array_equal(rows.ravel(), encode(m).tokens[:36])
    assert rows[1, 0] == tokens.pitch_to_token(62) and rows[2, 0] == HOLD and rows[2, 8] == REST
