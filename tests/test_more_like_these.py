""""More like these" through the service: learn a style from clips, then Generate samples near them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.errors import RequestError
from musicgen_app.models.style import StyleModel
from musicgen_app.service import MelodyService, SampleRequest
from musicgen_app.training import corpus

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def svc():
    return MelodyService.from_checkpoints()


@pytest.fixture(scope="module")
def clips():
    """Eight bars each of four held-out 6/8 tunes: a musician's jigs."""
    tunes = [m for m in corpus.load_corpus().split("test") if m.time_signature == (6, 8) and m.num_bars >= 8][:4]
    return [m.slice(0, 8 * m.bar_steps) for m in tunes]


def test_a_learnt_style_generates_in_the_clips_meter_and_near_them(svc, clips):
    seen = []
    style = svc.learn_style(clips, lambda f, msg: seen.append(f), seed=1)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    out = svc.sample(SampleRequest(count=6, seed=3, sampler="style", style=style))  # asked 4/4, given 6/8
    assert all(m.time_signature == (6, 8) for m in out.melodies)
    assert any("6/8" in n for n in out.notices)
    again = svc.sample(SampleRequest(count=6, seed=3, sampler="style", style=StyleModel.from_bytes(style.to_bytes())))
    assert [m.notes for m in again.melodies] == [m.notes for m in out.melodies]
    # nearer the clips' codes than the corpus sampler's codes are
    gen = torch.Generator().manual_seed(0)
    feats = torch.from_numpy(np.stack([data_feats(svc, c) for c in clips]))
    toks = torch.from_numpy(np.stack([data_tokens(svc, c) for c in clips]))
    mu, _ = svc.vae.encode(toks, feats)
    near = torch.cdist(style.sample(64, gen), mu).min(1).values.median()
    corpus = torch.cdist(svc.bank.sample(svc.vae, 64, gen, (6, 8), SampleRequest().attributes())[0], mu)
    assert near < corpus.min(1).values.median()


def data_tokens(svc, m):
    return tk.vae_window(tk.encode(m).tokens, 0, 2 * m.bar_steps, svc.window)


def data_feats(svc, m):
    return tk.metric_features(svc.window, m.time_signature, 0, m.steps_per_quarter)


def test_the_style_sampler_needs_a_style_and_takes_no_shape_controls(svc):
    with pytest.raises(RequestError, match="learn their style first"):
        svc.sample(SampleRequest(sampler="style"))
    with pytest.raises(RequestError, match="2 to 20 clips|Give 2"):
        svc.learn_style([])


@pytest.mark.parametrize("ts", [(4, 4), (3, 4), (6, 8), (2, 4)])
def test_generate_writes_four_bars_in_every_meter(svc, ts):
    """More like these, and the corpus bank (free and shaped), GAN and Gaussian samplers, write 4
    whole bars in every meter the page offers, as the README promises."""
    tunes = [m for m in corpus.load_corpus().split("test") if m.time_signature == ts and m.num_bars >= 8][:3]
    style = svc.learn_style([m.slice(0, 8 * m.bar_steps) for m in tunes], seed=1)
    for sampler, extra in (("style", {"style": style}), ("bank", {}), ("bank", {"ends_on_tonic": True}),
                           ("gan", {}), ("gaussian", {})):
        out = svc.sample(SampleRequest(count=4, seed=2, time_signature=ts, qpm=100, sampler=sampler, **extra))
        assert [(m.time_signature, m.num_bars) for m in out.melodies] == [(ts, 4)] * 4, sampler
        assert all(m.notes and m.total_steps == 4 * m.bar_steps for m in out.melodies)
