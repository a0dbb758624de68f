"""Melodies -> model tensors: LSTM chunks and VAE windows, with transposition augmentation.

Shared by training and evaluation so both see exactly the same encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .. import tokens as tk
from ..melody import Melody

IGNORE = -100


@dataclass
class SeqSet:
    """Rows of equal length: tokens (N, T), features of each step (N, T, F), lengths (N,).

    F is 3 metrical columns, then for LSTM rows 2 per lookback lag (tokens.lookback_features).
    """

    tokens: np.ndarray
    feats: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


def lstm_chunks(melodies: list[Melody], length: int, lookback_bars: tuple[int, ...] = ()) -> SeqSet:
    """Each melody cut into rows of ``length + 1`` steps that overlap by one step.

    Row r predicts its steps 1..length from steps 0..length-1; padding is marked by ``lengths``.
    Lookback features come from the whole melody, so a row's first bars still see the bars
    before the row.
    """
    rows, feats, lens = [], [], []
    for m in melodies:
        toks = tk.encode(m).tokens
        f = tk.lstm_features(tk.melody_features(m)[None], toks[None], m.bar_steps, lookback_bars)[0]
        for s in range(0, max(1, len(toks) - 1), length):
            seg = toks[s:s + length + 1]
            if len(seg) < 2:
                continue
            row = np.full(length + 1, tk.HOLD, np.int64)
            frow = np.zeros((length + 1, f.shape[1]), np.int64)
            row[:len(seg)] = seg
            frow[:len(seg)] = f[s:s + length + 1]
            rows.append(row)
            feats.append(frow)
            lens.append(len(seg))
    return SeqSet(np.stack(rows), np.stack(feats), np.array(lens))


def window_starts(m: Melody, toks: np.ndarray, window: int, stride_bars: int = 1, min_notes: int = 4) -> list[int]:
    """The steps where ``m``'s VAE windows start (bar lines after any pickup, ``stride_bars`` apart),
    leaving out windows with fewer than ``min_notes`` notes; ``toks`` are m's tokens."""
    first = m.pickup_steps if m.pickup_steps else 0
    return [s for s in range(first, len(toks) - window + 1, m.bar_steps * stride_bars)
            if int((tk.vae_window(toks, s, window, window) >= 2).sum()) >= min_notes]


def vae_windows(melodies: list[Melody], window: int, stride_bars: int = 1, min_notes: int = 4) -> SeqSet:
    """Windows of ``window`` steps starting on bar lines, each re-encoded as its own clip."""
    rows, feats = [], []
    for m in melodies:
        toks = tk.encode(m).tokens
        f = tk.melody_features(m)
        for s in window_starts(m, toks, window, stride_bars, min_notes):
            rows.append(tk.vae_window(toks, s, window, window))
            feats.append(f[s:s + window])
    if not rows:
        return SeqSet(np.zeros((0, window), np.int64), np.zeros((0, window, 3), np.int64), np.zeros(0, np.int64))
    return SeqSet(np.stack(rows), np.stack(feats), np.full(len(rows), window))


def transpose_rows(tokens: np.ndarray, rng: np.random.Generator, low: int = -5, high: int = 6,
                   lookback: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Shift each row's pitch tokens by a random interval that keeps every pitch in range.

    ``lookback`` (B, T, lags) holds tokens of the same rows from earlier bars: they move by the
    same interval (and bound it), so "what was played a bar ago" stays true after transposing.
    """
    both = tokens if lookback is None else np.concatenate([tokens, lookback.reshape(len(tokens), -1)], axis=1)
    pitch = (both >= 2) & (both < tk.NUM_CLASSES)
    big = np.where(pitch, both, 10_000).min(axis=1)
    small = np.where(pitch, both, -10_000).max(axis=1)
    lo = np.maximum(low, 2 - big)
    hi = np.minimum(high, tk.NUM_CLASSES - 1 - small)
    lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    shift = np.floor(rng.random(len(tokens)) * (hi - lo + 1)).astype(np.int64) + lo

    def move(x):
        return np.where((x >= 2) & (x < tk.NUM_CLASSES), x + shift.reshape((-1,) + (1,) * (x.ndim - 1)), x)

    return move(tokens), None if lookback is None else move(lookback)


def lstm_batch(data: SeqSet, idx: np.ndarray, rng: np.random.Generator | None = None):
    """-> inputs (B, T), next-step features (B, T, F), targets (B, T) with IGNORE on padding."""
    toks, feats = data.tokens[idx], data.feats[idx, 1:]
    n_lags = (feats.shape[-1] - 3) // 2
    if rng is not None:
        toks, back = transpose_rows(toks, rng, lookback=feats[..., 3:3 + n_lags] if n_lags else None)
        if n_lags:
            feats = np.concatenate([feats[..., :3], back, feats[..., 3 + n_lags:]], axis=-1)
    T = toks.shape[1] - 1
    target = toks[:, 1:].copy()
    target[np.arange(T)[None, :] >= (data.lengths[idx] - 1)[:, None]] = IGNORE
    return (torch.from_numpy(toks[:, :-1]), torch.from_numpy(np.ascontiguousarray(feats)), torch.from_numpy(target))


def vae_batch(data: SeqSet, idx: np.ndarray, rng: np.random.Generator | None = None):
    toks = data.tokens[idx]
    if rng is not None:
        toks, _ = transpose_rows(toks, rng)
    return torch.from_numpy(np.ascontiguousarray(toks)), torch.from_numpy(data.feats[idx])


@torch.no_grad()
def lstm_scores(model, batches) -> tuple[float, np.ndarray, np.ndarray]:
    """Total nats, argmax predictions and targets over every predicted step of ``batches``."""
    nll, preds, targets = 0.0, [], []
    for inp, feats, target in batches:
        logits, _ = model(inp, feats)
        mask = target != IGNORE
        nll += F.cross_entropy(logits[mask], target[mask], reduction="sum").item()
        preds.append(logits[mask].argmax(-1).numpy())
        targets.append(target[mask].numpy())
    return nll, np.concatenate(preds), np.concatenate(targets)
