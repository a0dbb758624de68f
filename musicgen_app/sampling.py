"""Drawing one token per row from logits: temperature, optional mask, a caller's generator."""

from __future__ import annotations

import math

import torch

from . import tokens as tk


def pitch_mask(allowed_pitch_classes=None, pitch_range=None) -> torch.Tensor:
    """Additive logit mask over the 90 tokens: 0 where allowed, -inf where not (HOLD/REST always allowed)."""
    mask = torch.zeros(tk.NUM_CLASSES)
    for tok in range(2, tk.NUM_CLASSES):
        p = tk.token_to_pitch(tok)
        if allowed_pitch_classes is not None and p % 12 not in allowed_pitch_classes:
            mask[tok] = -math.inf
        if pitch_range is not None and not pitch_range[0] <= p <= pitch_range[1]:
            mask[tok] = -math.inf
    return mask


def sample_logits(logits: torch.Tensor, temperature: float, gen: torch.Generator | None, mask=None) -> torch.Tensor:
    """(B, C) logits -> (B,) tokens; temperature 0 means argmax. ``mask`` is added to the logits."""
    if mask is not None:
        logits = logits + mask
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
