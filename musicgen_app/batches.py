"""Melodies -> model tensors: LSTM chunks and VAE windows, with transposition augmentation.

Shared by training and evaluation so both see exactly the same encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import tokens as tk
from .melody import Melody

IGNORE = -100


@dataclass
class SeqSet:
    """Rows of equal length: tokens (N, T), features of each step (N, T, 3), lengths (N,)."""

    tokens: np.ndarray
    feats: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


def lstm_chunks(melodies: list[Melody], length: int) -> SeqSet:
    """Each melody cut into rows of ``length + 1`` steps that overlap by one step.

    Row r predicts its steps 1..length from steps 0..length-1; padding is marked by ``lengths``.
    """
    rows, feats, lens = [], [], []
    for m in melodies:
        toks = tk.encode(m).tokens
        f = tk.melody_features(m)
        for s in range(0, max(1, len(toks) - 1), length):
            seg = toks[s:s + length + 1]
            if len(seg) < 2:
                continue
            row = np.full(length + 1, tk.HOLD, np.int64)
            frow = np.zeros((length + 1, 3), np.int64)
            row[:len(seg)] = seg
            frow[:len(seg)] = f[s:s + length + 1]
            rows.append(row)
            feats.append(frow)
            lens.append(len(seg))
    return SeqSet(np.stack(rows), np.stack(feats), np.array(lens))


def vae_windows(melodies: list[Melody], window: int, stride_bars: int = 1, min_notes: int = 4) -> SeqSet:
    """Windows of ``window`` steps starting on bar lines, each re-encoded as its own clip."""
    rows, feats = [], []
    for m in melodies:
        toks = tk.encode(m).tokens
        f = tk.melody_features(m)
        first = m.pickup_steps if m.pickup_steps else 0
        for s in range(first, len(toks) - window + 1, m.bar_steps * stride_bars):
            seg = toks[s:s + window].copy()
            if seg[0] == tk.HOLD:
                seg[0] = tk.REST  # a note held over the window's start is cut, as Melody.slice does
            if int((seg >= 2).sum()) < min_notes:
                continue
            rows.append(seg)
            feats.append(f[s:s + window])
    if not rows:
        return SeqSet(np.zeros((0, window), np.int64), np.zeros((0, window, 3), np.int64), np.zeros(0, np.int64))
    return SeqSet(np.stack(rows), np.stack(feats), np.full(len(rows), window))


def transpose_rows(tokens: np.ndarray, rng: np.random.Generator, low: int = -5, high: int = 6) -> np.ndarray:
    """Shift each row's pitch tokens by a random interval that keeps every pitch in range."""
    pitch = tokens >= 2
    big = np.where(pitch, tokens, 10_000).min(axis=1)
    small = np.where(pitch, tokens, -10_000).max(axis=1)
    lo = np.maximum(low, 2 - big)
    hi = np.minimum(high, tk.NUM_CLASSES - 1 - small)
    lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    shift = np.floor(rng.random(len(tokens)) * (hi - lo + 1)).astype(np.int64) + lo
    return np.where(pitch, tokens + shift[:, None], tokens)


def lstm_batch(data: SeqSet, idx: np.ndarray, rng: np.random.Generator | None = None):
    """-> inputs (B, T), next-step features (B, T, 3), targets (B, T) with IGNORE on padding."""
    toks = data.tokens[idx]
    if rng is not None:
        toks = transpose_rows(toks, rng)
    T = toks.shape[1] - 1
    target = toks[:, 1:].copy()
    target[np.arange(T)[None, :] >= (data.lengths[idx] - 1)[:, None]] = IGNORE
    return (torch.from_numpy(toks[:, :-1]), torch.from_numpy(data.feats[idx, 1:]), torch.from_numpy(target))


def vae_batch(data: SeqSet, idx: np.ndarray, rng: np.random.Generator | None = None):
    toks = data.tokens[idx]
    if rng is not None:
        toks = transpose_rows(toks, rng)
    return torch.from_numpy(np.ascontiguousarray(toks)), torch.from_numpy(data.feats[idx])
