"""The service on the tiny debug model: request validation, seeding, key lock, shapes of results."""

import numpy as np
import pytest

from musicgen_app import tokens as tk
from musicgen_app.errors import RequestError
from musicgen_app.melody import Key, Melody, Note
from musicgen_app.models.vae import slerp
from musicgen_app.service import (
    ContinueRequest,
    InterpolateRequest,
    MelodyService,
    SampleRequest,
    continuation_steps,
    paced_ts,
)


@pytest.fixture(scope="module")
def svc():
    return MelodyService.debug()


def scale_tune(ts=(4, 4), pickup=0, qpm=96.0, program=40):
    """Two bars of a D minor line (named fixture: a stepwise minor tune)."""
    pitches = [62, 64, 65, 67, 69, 67, 65, 64]
    notes = tuple(Note(pickup + 4 * i, p, 4, 70 + i) for i, p in enumerate(pitches))
    return Melody(notes=notes, total_steps=pickup + 32, qpm=qpm, time_signature=ts, key=Key(2, "minor"),
                  program=program, pickup_steps=pickup)


def test_continue_keeps_input_and_metadata(svc):
    m = scale_tune()
    res = svc.continue_(ContinueRequest(m, bars=4, variations=3, seed=11))
    assert res.seed == 11 and res.start_step == m.total_steps
    assert len(res.melodies) == 3 and len(res.continuations) == 3
    for full, cont in zip(res.melodies, res.continuations):
        assert full.notes[:len(m.notes)] == m.notes
        assert (full.qpm, full.time_signature, full.key, full.program) == (m.qpm, m.time_signature, m.key, m.program)
        assert full.total_steps == m.total_steps + 4 * m.bar_steps
        assert cont.total_steps == 4 * m.bar_steps


def test_continue_fills_to_the_bar_line(svc):
    m = scale_tune(ts=(3, 4), pickup=4)  # 36 steps: pickup + 2 bars + 8 steps
    n = continuation_steps(m, 2)
    assert (m.total_steps + n - m.pickup_steps) % m.bar_steps == 0
    res = svc.continue_(ContinueRequest(m, bars=2, seed=1))
    assert res.melodies[0].total_steps == m.total_steps + n


def test_same_seed_same_notes_other_seed_differs(svc):
    m = scale_tune()
    a = svc.continue_(ContinueRequest(m, bars=4, variations=2, seed=5, temperature=1.5))
    b = svc.continue_(ContinueRequest(m, bars=4, variations=2, seed=5, temperature=1.5))
    c = svc.continue_(ContinueRequest(m, bars=4, variations=2, seed=6, temperature=1.5))
    assert a.melodies == b.melodies
    assert a.melodies != c.melodies


def test_random_seed_is_returned_and_reproduces(svc):
    m = scale_tune()
    a = svc.continue_(ContinueRequest(m, bars=2))
    b = svc.continue_(ContinueRequest(m, bars=2, seed=a.seed))
    assert a.melodies == b.melodies


@pytest.mark.parametrize("lock,key", [("detected", Key(2, "minor")), ("Eb major", Key(3, "major"))])
def test_key_lock_keeps_every_note_in_scale(svc, lock, key):
    res = svc.continue_(ContinueRequest(scale_tune(), bars=8, variations=4, seed=2, temperature=2.0, key_lock=lock))
    notes = [n for c in res.continuations for n in c.notes]
    assert notes, "the debug model should produce notes at temperature 2"
    assert all(n.pitch % 12 in key.scale_pitch_classes() for n in notes)


def test_pitch_range_guard(svc):
    res = svc.continue_(ContinueRequest(scale_tune(), bars=8, variations=4, seed=3, temperature=2.0,
                                        pitch_range=(60, 72)))
    assert all(60 <= n.pitch <= 72 for c in res.continuations for n in c.notes)


@pytest.mark.parametrize("change,match", [
    (dict(bars=0), "Bars 0"), (dict(bars=33), "Bars 33"), (dict(temperature=-1), "Temperature -1"),
    (dict(variations=9), "Variations 9"), (dict(seed=-3), "Seed -3"), (dict(key_lock="H major"), "H"),
])
def test_bad_continue_requests(svc, change, match):
    with pytest.raises((RequestError, ValueError), match=match):
        svc.continue_(ContinueRequest(scale_tune(), **change))


def test_empty_melody_is_refused(svc):
    with pytest.raises(RequestError, match="no notes"):
        svc.continue_(ContinueRequest(Melody(notes=(), total_steps=16)))


def test_interpolate_shapes_and_endpoints(svc):
    a, b = scale_tune(), scale_tune().transpose(5)
    res = svc.interpolate(InterpolateRequest(a, b, steps=5, seed=0))
    assert len(res.clips) == 5
    assert res.clips[0].notes == a.notes and res.clips[-1].notes == b.notes
    assert len({c.total_steps for c in res.clips}) == 1
    assert res.morph.total_steps == 5 * res.clips[0].total_steps
    assert res.clips[0].total_steps == a.total_steps  # 2-bar clips stay 2 bars: no silent bars added


def test_interpolate_long_clips_morph_along_one_path_keeping_their_form(svc):
    """8 bars that play their first 4 bars twice: every step of the morph plays its bars 5-8 as its
    bars 1-4, as A and B do; no word of chunks."""
    four = scale_tune().concat(scale_tune().transpose(3))
    eight = four.concat(four)
    twelve = eight.concat(scale_tune()).concat(scale_tune())
    res = svc.interpolate(InterpolateRequest(twelve, eight.transpose(-2), steps=5, seed=0, temperature=1.0))
    assert res.clips[0].total_steps == 128 and not any("chunk" in n for n in res.notices)
    assert any("Clip A (12 bars) was cut to its first 8 bars" in n for n in res.notices)
    for clip in res.clips[1:-1]:
        bars = tk.bar_rows(clip)
        assert (bars[4:] == bars[:4]).all()


def test_interpolate_pickup_and_meter_mismatch(svc):
    res = svc.interpolate(InterpolateRequest(scale_tune(pickup=4), scale_tune(ts=(3, 4)), steps=3, seed=0,
                                             pacing="linear"))
    assert any("pickup" in n for n in res.notices) and any("4/4" in n for n in res.notices)
    # each clip keeps its own meter, in whole bars of it; the middle step takes B's (t = 0.5)
    assert [c.time_signature for c in res.clips] == [(4, 4), (3, 4), (3, 4)]
    assert all(c.total_steps % c.bar_steps == 0 for c in res.clips)
    assert res.clips[1].num_bars == res.clips[2].num_bars == res.clips[0].num_bars


@pytest.mark.parametrize("change,match", [(dict(steps=2), "Steps 2"), (dict(steps=12), "Steps 12"),
                                          (dict(temperature=3), "Temperature 3")])
def test_bad_interpolate_requests(svc, change, match):
    with pytest.raises(RequestError, match=match):
        svc.interpolate(InterpolateRequest(scale_tune(), scale_tune(), **change))


def test_sample_count_length_and_seed(svc):
    a = svc.sample(SampleRequest(count=3, seed=9))
    b = svc.sample(SampleRequest(count=3, seed=9))
    assert a.melodies == b.melodies and len(a.melodies) == 3
    assert all(m.total_steps == 64 for m in a.melodies)
    waltz = svc.sample(SampleRequest(count=1, seed=9, time_signature=(3, 4)))
    assert waltz.melodies[0].total_steps == 48 and waltz.melodies[0].time_signature == (3, 4)  # 4 bars


def test_slerp_endpoints():
    import torch

    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)


def test_sampling_sees_the_inputs_training_sees(svc, monkeypatch):
    """Step-by-step sampling (lookback built from a growing history) scores each step exactly as
    the training path scores the finished melody."""
    import numpy as np
    import torch

    from musicgen_app import tokens as tk
    from musicgen_app.service import engine
    from musicgen_app.training.batches import lstm_batch, lstm_chunks

    seen = []
    real = engine.steer
    monkeypatch.setattr(engine, "steer", lambda logits, *a: seen.append(logits.clone()) or real(logits, *a))
    m = Melody(notes=tuple(Note(4 * i, 60 + (i % 5), 4) for i in range(16)), total_steps=64)
    primer = tk.encode(m).tokens
    out = svc.generate_lstm(primer, m, 40, 2, 1.0, torch.Generator().manual_seed(3))
    lags = svc.lstm.config.lookback_bars
    for row, new in enumerate(out):
        whole = tk.decode(np.concatenate([primer, new]), m)
        inp, feats, _ = lstm_batch(lstm_chunks([whole], whole.total_steps, lags), np.arange(1))
        with torch.inference_mode():
            logits, _ = svc.lstm(inp, feats)
        stepwise = torch.stack([s[row] for s in seen])
        assert torch.allclose(stepwise, logits[0, len(primer) - 1:len(primer) + 39], atol=1e-4)


def test_new_bars_are_whole_bars_of_the_input_meter(svc):
    # a 3/4 tune with a one-beat pickup that ends one beat into a bar: the continuation starts there
    m = Melody(notes=tuple(Note(4 * i, 67 + i % 3, 4) for i in range(8)), total_steps=32, time_signature=(3, 4),
               pickup_steps=4)
    res = svc.continue_(ContinueRequest(m, bars=2, variations=1, seed=3))
    assert res.continuations[0].pickup_steps != 0  # the raw continuation starts mid-bar
    bars = res.new_bars(0)
    assert bars.pickup_steps == 0 and bars.total_steps == 3 * bars.bar_steps  # the input's last bar + 2 new
    pad = bars.total_steps - res.continuations[0].total_steps
    assert pad == 4 and all(n.start >= pad for n in bars.notes)
    assert [(n.start - pad, n.pitch) for n in bars.notes] == [(n.start, n.pitch) for n in res.continuations[0].notes]


def test_generate_falls_back_on_the_gaussian_where_the_gan_cannot_sample(svc):
    res = svc.sample(SampleRequest(count=2, seed=4, time_signature=(7, 8)))  # the debug GAN knows 4 meters
    assert any("not trained on 7/8" in n and "Gaussian" in n for n in res.notices)
    same = svc.sample(SampleRequest(count=2, seed=4, time_signature=(7, 8), sampler="gaussian"))
    assert [m.notes for m in res.melodies] == [m.notes for m in same.melodies] and not same.notices
    without = MelodyService(svc.lstm, svc.vae)
    assert any("not installed" in n for n in without.sample(SampleRequest(count=1, seed=1)).notices)
    with pytest.raises(RequestError, match="Sampler"):
        svc.sample(SampleRequest(count=1, sampler="magic"))


def test_even_pacing_splits_the_change_along_the_path_evenly():
    # a path whose tokens change only in the middle fifth: linear steps would copy A, then B
    def path(us, temperature):
        return [np.full(64, 10 + int(np.clip((t - 0.4) / 0.2, 0, 1) * 60)) for t in us]

    ts = paced_ts(path, 5, grid=33)
    assert ts[0] == 0 and ts[-1] == 1 and np.all(np.diff(ts) > 0)
    assert 0.38 < ts[1] < ts[2] < ts[3] < 0.62  # the interior steps all fall where the melody changes
    flat = paced_ts(lambda us, temperature: [np.zeros(64, np.int64) for _ in us], 4)
    assert np.allclose(flat, np.linspace(0, 1, 4))  # nothing changes: equal spacing


def test_interpolate_pacing_is_a_choice(svc):
    a, b = scale_tune(), scale_tune().transpose(5)
    even = svc.interpolate(InterpolateRequest(a, b, steps=5, seed=0))
    linear = svc.interpolate(InterpolateRequest(a, b, steps=5, seed=0, pacing="linear"))
    assert len(even.clips) == len(linear.clips) == 5
    with pytest.raises(RequestError, match="Pacing"):
        svc.interpolate(InterpolateRequest(a, b, pacing="fast"))


def test_more_like_an_earlier_variation(svc):
    m = scale_tune()
    first = svc.continue_(ContinueRequest(m, bars=2, variations=2, seed=4))
    res = svc.continue_(ContinueRequest(m, bars=2, variations=3, seed=5, like=first.continuations[1]))
    assert len(res.continuations) == 3 and all(c.total_steps == 2 * m.bar_steps for c in res.continuations)


@pytest.mark.parametrize("like,match", [
    ("variation 1", "must be a melody .*not str"),
    (Melody(notes=(Note(0, 60, 4),), total_steps=48), "48 steps long but this Continue writes 32; ask for as many "
                                                      "bars"),
    (Melody(notes=(Note(0, 60, 4),), total_steps=24, time_signature=(3, 4)), "in 3/4 .* the melody is in 4/4"),
    (Melody(notes=(Note(0, 60, 4),), total_steps=32, pickup_steps=4), "starts 4 steps before a bar line"),
])
def test_a_variation_to_be_like_must_fit_the_continuation(svc, like, match):
    with pytest.raises(RequestError, match=match):
        svc.continue_(ContinueRequest(scale_tune(), bars=2, like=like))


def test_stay_close_is_a_setting_from_0_to_1(svc):
    for bad in (-0.1, 1.5, "close"):
        with pytest.raises(RequestError, match=rf"Stay close {bad!r}.* from 0 to 1"):
            svc.continue_(ContinueRequest(scale_tune(), stay_close=bad))


@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (6, 8), (2, 4)])
def test_generate_writes_four_bars_in_every_meter(svc, ts):
    """Every sampler writes 4 whole bars, as the README promises: not the 5 bars of 3/4 or the 8 of
    2/4 that fit the VAE's window."""
    from musicgen_app.models.style import StyleConfig, fit_style

    bar = Melody(notes=(), time_signature=ts).bar_steps
    clips = [Melody(notes=tuple(Note(s, 60 + (s // 2 + k) % 8, 2) for s in range(0, 8 * bar, 2)),
                    total_steps=8 * bar, time_signature=ts) for k in (0, 3)]
    style = fit_style(svc, clips, config=StyleConfig(hidden=32, steps=30))
    for sampler, extra in (("bank", {}), ("bank", {"ends_on_tonic": True}), ("gan", {}), ("gaussian", {}),
                           ("style", {"style": style})):
        res = svc.sample(SampleRequest(count=3, seed=1, time_signature=ts, sampler=sampler, **extra))
        assert [(m.time_signature, m.num_bars, m.pickup_steps) for m in res.melodies] == [(ts, 4, 0)] * 3, sampler
