"""Drawing one token per row from logits: temperature, optional mask, a caller's generator."""

from __future__ import annotations

import torch


def sample_logits(logits: torch.Tensor, temperature: float, gen: torch.Generator | None, mask=None) -> torch.Tensor:
    """(B, C) logits -> (B,) tokens; temperature 0 means argmax. ``mask`` is added to the logits."""
    if mask is not None:
        logits = logits + mask
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
