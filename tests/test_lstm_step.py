"""The shipped LSTM's sampling step (packed weights, first-layer tables) computes what forward computes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.io.examples import EXAMPLES, example_path
from musicgen_app.io.importer import load_melody
from musicgen_app.models import fused_linear
from musicgen_app.models.checkpoints import load_checkpoint

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


# -- the fused linear adapter (private torch.ops.mkldnn ops) ----------------------------------------
def test_the_fused_linear_ops_work_in_this_torch():
    # Fails when a PyTorch upgrade removes or changes torch.ops.mkldnn._reorder_linear_weight or
    # _linear_pointwise: the app would still sample (plain F.linear, one warning) but slower.
    weight = torch.zeros(8, 16)
    assert fused_linear.expected(weight), f"torch {torch.__version__} without oneDNN: the fused path is expected here"
    assert fused_linear.problem() is None, fused_linear.problem()
    assert fused_linear.pack(weight).is_mkldnn
    assert not fused_linear.expected(weight.double()) and not fused_linear.expected(weight.half())


@pytest.mark.parametrize("rows", [1, 4, 7, 64])
def test_fused_linear_gives_what_f_linear_gives(rows):
    gen = torch.Generator().manual_seed(rows)
    x, weight, bias = (torch.randn(*s, generator=gen) for s in ((rows, 1536), (1536, 1536), (1536,)))
    packed = fused_linear.pack(weight)
    assert packed.is_mkldnn, f"pack kept the plain weight: {fused_linear.problem()}"
    expected = torch.nn.functional.linear(x, weight, bias)
    torch.testing.assert_close(fused_linear.linear(x, packed, bias), expected, rtol=1e-5, atol=1e-4)
    assert torch.equal(fused_linear.linear(x, weight, bias), expected)  # a plain weight: F.linear itself


def test_the_sampling_step_takes_the_fused_path(model, examples):
    toks, feats = examples
    assert_step_matches_forward(model, toks[:, :2], feats[:, :2])
    _, _, layers, head = model._sampling_weights()
    assert all(w.is_mkldnn for w, _ in layers), "MelodyLSTM.advance fell back to F.linear on this machine"


def test_missing_fused_ops_warn_once_and_fall_back(monkeypatch, caplog):
    fused_linear.problem.cache_clear()
    fused_linear._warn_once.cache_clear()

    def gone(*args):
        raise RuntimeError("No such operator mkldnn::_linear_pointwise")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", gone, raising=False)
    try:
        weight = torch.randn(8, 16)
        with caplog.at_level("WARNING", logger=fused_linear.__name__):
            assert fused_linear.pack(weight) is weight and fused_linear.pack(weight) is weight
        warnings = [r for r in caplog.records if r.name == fused_linear.__name__]
        assert len(warnings) == 1 and "No such operator" in warnings[0].getMessage()
    finally:
        monkeypatch.undo()
        fused_linear.problem.cache_clear()
        fused_linear._warn_once.cache_clear()
    assert fused_linear.pack(torch.randn(8, 16)).is_mkldnn
