"""The shipped LSTM's sampling step (packed weights, first-layer tables) computes what forward computes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.checkpoints import load_checkpoint
from musicgen_app.examples import EXAMPLES, example_path
from musicgen_app.io.importer import load_melody

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "lstm.safetensors"
STEPS = 64  # the shortest example has 80


@pytest.fixture(scope="module")
def examples():
    """Every example's first STEPS tokens and the features of the steps they predict, as one batch."""
    lags = load_checkpoint(CHECKPOINT, kind="lstm")[0].config.lookback_bars
    toks, feats = [], []
    positions = np.arange(1, STEPS + 1)
    for name in EXAMPLES:
        m = load_melody(example_path(name)).melody
        t = tk.encode(m).tokens[:STEPS + 1]
        metric = tk.melody_features(m, STEPS + 1)[positions]
        feats.append(tk.lstm_features(metric[None], t[None], m.bar_steps, lags, positions)[0])
        toks.append(t[:STEPS])
    return torch.from_numpy(np.stack(toks)), torch.from_numpy(np.stack(feats))


@pytest.fixture
def model():
    torch.set_num_threads(1)
    return load_checkpoint(CHECKPOINT, kind="lstm")[0].eval()


@torch.no_grad()
def assert_step_matches_forward(model, toks, feats):
    full, _ = model(toks, feats)
    L, B, H = model.config.layers, toks.shape[0], model.config.hidden
    dtype = model.head.weight.dtype
    state, outs = (torch.zeros(L, B, H, dtype=dtype), torch.zeros(L, B, H, dtype=dtype)), []
    for t in range(toks.shape[1]):
        logits, state = model.step(toks[:, t], feats[:, t], state)
        outs.append(logits)
    stepped = torch.stack(outs, 1)
    # fp32 sums in another order: 1e-5 apart on logits up to 13 (measured); argmax must not move
    assert torch.allclose(stepped, full, rtol=0, atol=5e-5), (stepped - full).abs().max()
    assert torch.equal(stepped.argmax(-1), full.argmax(-1))


def test_step_matches_forward_on_the_examples(model, examples):
    assert_step_matches_forward(model, *examples)


@pytest.mark.parametrize("name", ["embed.weight", "lookback.weight", "lstm.bias_ih_l0", "lstm.weight_hh_l0",
                                  "lstm.weight_ih_l1", "head.weight"])
def test_step_follows_a_weight_changed_in_place(model, examples, name):
    toks, feats = examples
    assert_step_matches_forward(model, toks[:, :4], feats[:, :4])  # builds the packed weights and tables
    with torch.no_grad():
        model.get_parameter(name).mul_(1.5)  # as an optimiser step or load_state_dict does
    assert_step_matches_forward(model, toks, feats)


def test_step_follows_the_model_to_float64(model, examples):
    toks, feats = examples
    assert_step_matches_forward(model, toks[:, :4], feats[:, :4])  # packed float32 weights
    assert_step_matches_forward(model.double(), toks, feats)  # new data: plain float64 weights


def test_a_model_that_has_sampled_can_be_copied(model, examples):
    toks, feats = examples
    assert_step_matches_forward(model, toks[:, :4], feats[:, :4])
    assert_step_matches_forward(copy.deepcopy(model), toks, feats)
