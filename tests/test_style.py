""""More like these" (models/style.py): clips -> windows, validation, seeded fitting and sampling,
progress, bytes round trip; and with the shipped VAE, that a style fitted to a few real clips
samples codes closer to those clips than the prior does."""

from pathlib import Path

import pytest
import torch

from musicgen_app.errors import CheckpointError, RequestError
from musicgen_app.melody import Melody, Note
from musicgen_app.models.style import (
    StyleConfig,
    StyleModel,
    fit_style,
    nearest_distance,
    rebarred,
    style_windows,
)
from musicgen_app.service import MelodyService
from musicgen_app.training import corpus

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "vae.safetensors"
FAST = StyleConfig(hidden=32, steps=60)
torch.set_num_threads(1)


def tune(bars: int, ts=(4, 4), pickup: int = 0, shift: int = 0) -> Melody:
    """A scale pattern of quarter notes (eighths in x/8) filling ``bars`` bars after the pickup."""
    probe = Melody(notes=(), time_signature=ts)
    step = probe.bar_steps // ts[0]
    total = pickup + bars * probe.bar_steps
    notes = tuple(Note(s, 60 + shift + (s // step) % 8, step) for s in range(0, total, step))
    return Melody(notes=notes, total_steps=total, time_signature=ts, pickup_steps=pickup)


@pytest.fixture(scope="module")
def debug_svc():
    return MelodyService.debug()


def test_two_clips_of_eight_bars_give_ten_windows_one_bar_apart():
    tokens, feats, notices = style_windows([tune(8), tune(8, shift=2)], 64, (4, 4))
    assert tokens.shape == (10, 64) and feats.shape == (64, 3) and notices == []
    first = tokens[0]
    assert (tokens[1][:48] == first[16:]).all()  # the next window starts one bar later


def test_short_and_long_clips():
    tokens, _, _ = style_windows([tune(2), tune(70)], 64, (4, 4))
    assert len(tokens) == 1 + (64 - 4 + 1)  # a short clip is one window; a long one is cut to 64 bars
    _, _, notices = style_windows([tune(2), tune(70)], 64, (4, 4))
    assert notices == ["Clip 2 (70 bars) was cut to its first 64 bars."]


def test_pickup_is_placed_before_a_bar_line():
    m = rebarred(tune(2, ts=(3, 4), pickup=4), (3, 4))
    assert m.pickup_steps == 0 and m.notes[0].start == 8 and m.total_steps % 12 == 0
    # read in 6/8 (same bar length) it keeps its bar lines; in 2/4 the pickup fills to an 8-step line
    assert rebarred(tune(2, ts=(4, 4), pickup=4), (2, 4)).notes[0].start == 4


@pytest.mark.parametrize("clips, match", [
    ([tune(4)], r"2 to 20 clips, got 1; add clips"),
    ([tune(4)] * 21, r"at most 20 clips, got 21"),
    ([tune(4), Melody(notes=(), total_steps=16, name="silence")], r"Clip 2 \('silence'\) has no notes"),
    ([tune(4), tune(4), tune(4, ts=(3, 4))], r"Clip 3 is in 3/4.*4/4 of most clips.*12 sixteenths against 16"),
    ([tune(4, ts=(6, 8)), tune(4, ts=(6, 8)), tune(4, ts=(2, 4)), tune(4, ts=(2, 4))],
     r"Clips 3, 4 are in 2/4.*6/8"),
    ("not a list", r"list of melodies, not a str"),
])
def test_validation_quotes_the_value_and_says_what_to_do(debug_svc, clips, match):
    with pytest.raises(RequestError, match=match):
        fit_style(debug_svc, clips, config=FAST)


def test_meters_whose_bars_divide_share_the_most_common_one(debug_svc):
    style = fit_style(debug_svc, [tune(16, ts=(2, 4)), tune(4), tune(4, shift=3)], config=FAST)
    assert style.time_signature == (4, 4) and style.meter == "4/4"
    assert style.windows == 5 + 1 + 1  # the 2/4 clip is read as 8 bars of 4/4


def test_seeded_fit_and_sampling_are_deterministic(debug_svc):
    clips = [tune(8), tune(8, shift=3)]
    a = fit_style(debug_svc, clips, seed=1, config=FAST)
    b = fit_style(debug_svc, clips, seed=1, config=FAST)
    c = fit_style(debug_svc, clips, seed=2, config=FAST)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    za = a.sample(5, g(0))
    assert za.shape == (5, debug_svc.vae.config.z_dim)
    assert torch.equal(za, b.sample(5, g(0))) and not torch.equal(za, c.sample(5, g(0)))
    assert not torch.equal(za, a.sample(5, g(1)))
    torch.manual_seed(123)  # the global generator plays no part, in sampling or in fitting
    assert torch.equal(za, a.sample(5, g(0)))
    assert torch.equal(fit_style(debug_svc, clips, seed=1, config=FAST).sample(5, g(0)), za)
    with pytest.raises(RequestError, match="at least one sample, not 0"):
        a.sample(0, g(0))


def test_progress_rises_to_one(debug_svc):
    seen = []
    fit_style(debug_svc, [tune(8), tune(8, shift=3)], lambda f, msg: seen.append((f, msg)), config=FAST)
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) > 10
    assert all(a < b for a, b in zip(fractions, fractions[1:]))
    assert all(isinstance(m, str) and m for _, m in seen)


def test_bytes_round_trip(debug_svc):
    style = fit_style(debug_svc, [tune(4, pickup=4), tune(8, shift=1)], config=FAST)
    blob = style.to_bytes()
    back = StyleModel.from_bytes(blob)
    assert back.time_signature == style.time_signature and back.config == style.config
    assert (back.clips, back.windows, back.notices) == (style.clips, style.windows, style.notices)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    assert torch.equal(back.sample(4, g()), style.sample(4, g()))
    assert torch.equal(back.clip_bars, style.clip_bars) and torch.equal(back.pitch_classes, style.pitch_classes)
    back.check_vae(debug_svc.vae)
    with pytest.raises(RequestError, match="another VAE"):
        back.check_vae(MelodyService.debug(seed=1).vae)
    with pytest.raises(CheckpointError, match="not a saved style"):
        StyleModel.from_bytes(blob[:100])
    with pytest.raises(CheckpointError, match="not a saved style"):
        StyleModel.from_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00" + b'{"a": 1}        ')


def test_the_style_knows_the_clips_bars_and_keeps_the_melodies_that_copy_fewest(debug_svc):
    """Two clips of the same 8-note scale pattern: 2 distinct bars with notes (an empty bar does
    not count). A melody made of the clips' bars copies all of them; selection keeps new ones."""
    clips = [tune(4), tune(4, shift=0).replace(notes=tune(4).notes[:8], total_steps=3 * 16)]
    style = fit_style(debug_svc, clips, config=FAST)
    assert style.clip_bars.shape == (2, 16)
    assert style.pitch_classes.tolist() == [3] * 8 + [0] * 4  # tune() climbs C..G chromatically
    copy, new = tune(4), tune(4, shift=2)
    assert style.copies([copy, new]).tolist() == [1.0, 0.0]
    assert list(style.select([copy, new, copy, new], 2)) == [1, 3]
    bias = style.decoding_bias(3)
    assert bias.shape == (3, 90) and bias[0, 60 - 19] == bias[0, 67 - 19] == 0
    assert bias[0, 68 - 19] < -2.5  # 1.5 ln(3.5 / 0.5)


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped VAE checkpoint")
def test_style_samples_lie_near_the_clips_and_cover_them():
    """Three held-out tunes (the first 8 bars of each: 15 windows), 64 samples, distances in the
    prior's whitened units per dimension (style.nearest_distance). Near: each sample's distance to
    its nearest clip code, against prior samples'. Cover: each clip code's distance to its nearest
    sample, against a model that collapsed onto the clips' mean code (what an untrained decoder
    gives). Measured: near 0.50 against 1.26; cover 0.35 against 0.89 (0.40 of it); broken variants
    fail the 0.5 ratio: 100 steps instead of 500 0.68, the clips' centre left out of the output 0.56,
    no output map at all 1.18, untrained 1.0."""
    svc = MelodyService.from_checkpoints()
    test = [m for m in corpus.load_corpus().split("test") if m.time_signature == (4, 4) and m.num_bars >= 9]
    clips = [m.slice(m.pickup_steps, m.pickup_steps + 8 * 16) for m in test[:3]]
    style = fit_style(svc, clips, seed=0)
    tokens, feats, _ = style_windows(clips, svc.window, (4, 4))
    with torch.inference_mode():
        codes, _ = svc.vae.encode(torch.from_numpy(tokens), torch.from_numpy(feats).expand(len(tokens), -1, -1))
    gen = torch.Generator().manual_seed(0)
    z = style.sample(64, gen)
    near_style = nearest_distance(z, codes, svc.vae).mean()
    near_prior = nearest_distance(svc.vae.sample_prior(64, gen), codes, svc.vae).mean()
    assert near_style < 0.7 * near_prior, (near_style, near_prior)
    cover_style = nearest_distance(codes, z, svc.vae).mean()
    cover_mean = nearest_distance(codes, codes.mean(0, keepdim=True), svc.vae).mean()
    assert cover_style < 0.5 * cover_mean, (cover_style, cover_mean)
