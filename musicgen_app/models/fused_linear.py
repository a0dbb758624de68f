"""``x @ weight.T + bias`` on oneDNN's blocked weight layout, for the few rows of a sampling step.

PyTorch's public linear calls BLAS, which reads the weight in its plain layout on every call. The
two ops used here (the ones torch.compile's weight freezing uses) reorder the weight once into
oneDNN's layout and multiply on it, which is quicker for a handful of rows; ``bench/bench_step.py``
measures the step that uses them. Both ops are private to PyTorch:

    torch.ops.mkldnn._reorder_linear_weight(weight, batch_size=None) -> packed weight
    torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "") -> x @ weight.T + bias

This module is the only place that names them. Where they are expected (:func:`expected`: a
PyTorch built with oneDNN, a CPU float32 weight) and are missing or no longer compute a linear
layer, :func:`pack` logs one warning and keeps the plain weight, so sampling stays correct but
slower; ``tests/test_lstm_step.py`` fails on such a machine instead of passing quietly.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def expected(weight: torch.Tensor) -> bool:
    """Whether :func:`pack` should reorder ``weight``: oneDNN is built in, the weight is CPU float32."""
    return torch.backends.mkldnn.is_available() and weight.device.type == "cpu" and weight.dtype == torch.float32


@functools.cache
def problem() -> str | None:
    """Why the fused ops cannot be used in this PyTorch (checked once, on a small weight), or None.

    Only meaningful where oneDNN is built in (see :func:`expected`).
    """
    gen = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(*s, generator=gen) for s in ((3, 16), (8, 16), (8,)))
    try:
        got = torch.ops.mkldnn._linear_pointwise(x, torch.ops.mkldnn._reorder_linear_weight(weight, None),
                                                 bias, "none", [], "")
    except (AttributeError, RuntimeError, TypeError) as exc:
        return f"torch.ops.mkldnn's private linear ops failed in torch {torch.__version__}: {exc}"
    if not torch.allclose(got, F.linear(x, weight, bias), rtol=1e-5, atol=1e-5):
        return f"torch.ops.mkldnn._linear_pointwise no longer computes x @ weight.T + bias in torch {torch.__version__}"
    return None


@functools.cache
def _warn_once(message: str) -> None:
    log.warning("%s; the LSTM samples with plain F.linear (same numbers to float rounding, slower). "
                "Update musicgen_app/models/fused_linear.py for this PyTorch.", message)


def pack(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (out_features, in_features) in the layout :func:`linear` reads fastest.

    A oneDNN tensor where :func:`expected` and the ops work; otherwise ``weight`` itself. The result
    cannot be pickled or deep-copied: keep it out of a module's saved state.
    """
    if not expected(weight):
        return weight
    reason = problem()
    if reason is not None:
        _warn_once(reason)
        return weight
    return torch.ops.mkldnn._reorder_linear_weight(weight, None)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x`` (rows, in_features) @ weight.T + ``bias`` (out_features,), for a weight from :func:`pack`."""
    if weight.is_mkldnn:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)
