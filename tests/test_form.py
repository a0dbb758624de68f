"""Form: which bars return (exactly, or moved), the same returns given to new bars, consecutive
windows of one tune chained in the bank, and 8- and 16-bar Generate taking the form of the tune its
codes grew from."""

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.errors import RequestError
from musicgen_app.melody import Melody
from musicgen_app.models.code_bank import Attributes, CodeBank
from musicgen_app.service import MelodyService, SampleRequest
from musicgen_app.service.decoding import GENERATE_BARS, form_of, joined
from musicgen_app.service.form import Return, give_form, move, repeats

torch.set_num_threads(1)
H, R = tk.HOLD, tk.REST


def bar(*pitches, every=4) -> np.ndarray:
    """A 4/4 bar (16 steps) with one of ``pitches`` every ``every`` steps."""
    row = np.full(16, H, np.int64)
    row[::every] = [tk.pitch_to_token(p) for p in pitches]
    return row


RISE = bar(60, 62, 64, 65)
RISE_UP_A_FOURTH = bar(65, 67, 69, 70)
FALL = bar(72, 71, 69, 67)
FALL_IN_EIGHTHS = bar(72, 71, 69, 67, 65, 64, 62, 60, every=2)
SILENT = np.full(16, R, np.int64)


def test_a_bar_played_again_returns_exactly_and_a_moved_one_with_its_interval():
    tune = np.stack([RISE, FALL, RISE, RISE_UP_A_FOURTH, SILENT, SILENT, FALL_IN_EIGHTHS])
    assert repeats(tune) == [Return(2, 0), Return(3, 0, 5)]


def test_silence_and_another_rhythm_are_no_return():
    assert repeats(np.stack([FALL, SILENT, SILENT, FALL_IN_EIGHTHS])) == []


def test_an_exact_return_wins_over_an_earlier_moved_one():
    assert repeats(np.stack([RISE_UP_A_FOURTH, RISE, RISE])) == [Return(1, 0, -5), Return(2, 1)]


def test_give_form_makes_the_new_bars_return_as_the_source_does():
    source = np.concatenate([RISE, FALL, RISE, RISE_UP_A_FOURTH])
    new = np.concatenate([FALL_IN_EIGHTHS, RISE, FALL, FALL])
    got = give_form(new, repeats(source.reshape(4, 16)), 16).reshape(4, 16)
    assert (got[0] == FALL_IN_EIGHTHS).all() and (got[1] == RISE).all()  # no return: the decoder's bars
    assert (got[2] == FALL_IN_EIGHTHS).all()  # bar 3 returns bar 1
    assert (got[3] == move(FALL_IN_EIGHTHS, 5)).all()  # bar 4: bar 1 a fourth up
    assert (got[3][got[3] >= 2] - FALL_IN_EIGHTHS[FALL_IN_EIGHTHS >= 2] == 5).all()


def test_a_move_past_the_top_of_the_range_goes_an_octave_lower():
    top = bar(tk.MAX_PITCH - 1, tk.MAX_PITCH, every=8)
    moved = move(top, 5)
    assert (moved[moved >= 2] == top[top >= 2] + 5 - 12).all()


@pytest.fixture(scope="module")
def svc():
    return MelodyService.debug()


def test_chains_are_consecutive_windows_of_one_tune(svc):
    bank: CodeBank = svc.bank
    chains = bank.chains((4, 4), 4, GENERATE_BARS)
    assert len(chains) == 3  # the debug bank: three 4/4 tunes of four windows
    for chain in chains:
        assert len(set(bank.tune[chain].tolist())) == 1
        assert bank.bar[chain].tolist() == [0, 4, 8, 12]
    assert len(bank.chains((4, 4), 2, GENERATE_BARS)) == 9  # 8 bars: from bar 0, 4 or 8 of each tune


def test_a_picked_chain_moves_as_one_to_the_asked_key(svc):
    bank = svc.bank
    picked = bank.pick_chains(5, torch.Generator().manual_seed(0), (4, 4), Attributes(mode="minor", tonic=2), 4,
                              GENERATE_BARS)
    assert len(picked.index) == 20
    for chain, shift in zip(picked.index.view(5, 4), picked.shift.view(5, 4)):
        assert len(set(shift.tolist())) == 1
        assert bank.tune[chain].unique().numel() == 1


def test_no_tune_long_enough_is_refused_with_what_to_change():
    svc = MelodyService.debug()
    svc.bank.set_positions(np.arange(svc.bank.config.size), np.zeros(svc.bank.config.size))  # one window a tune
    with pytest.raises(RequestError, match="No 4/4 tune in the corpus bank has 16 bars.*ask for fewer bars"):
        svc.sample(SampleRequest(count=2, bars=16, seed=0))
    assert len(svc.sample(SampleRequest(count=2, bars=4, seed=0)).melodies) == 2


@pytest.mark.parametrize("sampler", ["bank", "gan", "gaussian"])
@pytest.mark.parametrize("bars", [8, 16])
def test_generate_writes_the_bars_asked_seeded(svc, sampler, bars):
    a = svc.sample(SampleRequest(count=3, bars=bars, seed=4, sampler=sampler))
    b = svc.sample(SampleRequest(count=3, bars=bars, seed=4, sampler=sampler))
    assert a.melodies == b.melodies
    assert [m.num_bars for m in a.melodies] == [bars] * 3


def test_long_melodies_return_where_their_source_tune_does(svc):
    """The bank's melody repeats the bars its chain's windows repeat (checked on the chain that
    request picked, drawn again with the same seed)."""
    req = SampleRequest(count=2, bars=16, seed=7)
    melodies = svc.sample(req).melodies
    gen = torch.Generator().manual_seed(7)
    probe = melodies[0].replace(notes=())
    source = form_of(svc.bank, svc.bank.pick_chains(2, gen, (4, 4), Attributes(), 4, GENERATE_BARS), probe, 4)
    for m, src in zip(melodies, source):
        bars = tk.bar_rows(m)
        returns = repeats(src.reshape(16, 16))
        for r in returns:
            assert (bars[r.bar] == move(bars[r.source], r.shift)).all()
    assert any(repeats(src.reshape(16, 16)) for src in source)  # the check above checked something


def test_more_like_my_clips_writes_long_melodies_too(svc):
    clip = svc.sample(SampleRequest(count=2, bars=8, seed=1)).melodies
    style = svc.learn_style(clip)
    res = svc.sample(SampleRequest(count=2, bars=16, seed=2, sampler="style", style=style))
    assert [m.num_bars for m in res.melodies] == [16, 16]


def test_decoding_with_a_leap_limit_never_leaps_further(svc):
    z = svc.vae.sample_prior(32, torch.Generator().manual_seed(0))
    feats = torch.from_numpy(tk.metric_features(64, (4, 4)))
    gen = torch.Generator().manual_seed(1)
    free = svc.vae.generate(z, feats, 1.5, torch.Generator().manual_seed(1)).numpy()
    held = svc.vae.generate(z, feats, 1.5, gen, max_leap=12).numpy()

    def widest(rows):
        return max(np.abs(np.diff(r[r >= 2])).max(initial=0) for r in rows)

    assert widest(free) > 12 >= widest(held)  # the random debug model leaps freely without the limit


def test_a_phrase_starting_far_from_the_last_note_moves_by_octaves():
    low, high = bar(60, 62, 64, 65), bar(84, 83, 81, 79)  # the second starts 19 semitones above the first's end
    got = joined(np.stack([low, high]))
    assert (got[:16] == low).all() and (got[16:][got[16:] >= 2] == high[high >= 2] - 12).all()
    near = bar(67, 65, 64, 62)
    assert (joined(np.stack([low, near]))[16:] == near).all()


def test_four_bar_melodies_grow_from_whole_phrases():
    """Windows two bars apart: only those on a phrase line (bar 0, 4, ...) or ending their tune are picked."""
    svc = MelodyService.debug()
    n = svc.bank.config.size
    i = np.arange(n)
    tune, bar = i // 16 * 4 + i % 4, i // 4 % 4 * 2  # a tune per meter and 16 windows: bars 0, 2, 4, 6
    svc.bank.set_positions(tune, bar)
    whole = svc.bank.phrase_windows(GENERATE_BARS)
    assert whole.tolist() == [b in (0, 4, 6) for b in bar]
    picked = svc.bank.pick(40, torch.Generator().manual_seed(0), (4, 4), Attributes(), GENERATE_BARS)
    assert whole[picked.index].all() and not whole[svc.bank.pick(
        200, torch.Generator().manual_seed(0), (4, 4), Attributes()).index].all()


def test_a_melody_that_plays_back_its_source_bars_is_drawn_again(svc, monkeypatch):
    """A decoder that copies its source the first time (as repetitive corpus tunes sometimes decode):
    those melodies are decoded once more, from fresh codes, and the copies are gone."""
    from musicgen_app.service import decoding

    real, calls = decoding.tune_rows, []

    def copying_first(vae, z, template, temperature, gen, bias=None, phrases=1, form=None):
        calls.append(len(z))
        return form.copy() if len(calls) == 1 else real(vae, z, template, temperature, gen, bias, phrases, form)

    probe = Melody(notes=(), time_signature=(4, 4))
    monkeypatch.setattr(decoding, "tune_rows", copying_first)
    melodies, z, picked = decoding.bank_melodies(svc.vae, svc.bank, 3, probe, Attributes(), 1.0,
                                                 torch.Generator().manual_seed(0), 2)
    assert calls == [6, 6] and z.shape[0] == 6
    sources = form_of(svc.bank, picked, probe, 2)
    assert not any(np.array_equal(tk.encode(m).tokens, s) for m, s in zip(melodies, sources))
