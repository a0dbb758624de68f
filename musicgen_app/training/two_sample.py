"""Classifier two-sample tests: can a classifier tell generated melodies from real ones?

    two_sample_accuracies(generated, real, seed=0) -> {"logistic": .., "trees": .., "cnn": .., "per_class": ..}

Each accuracy is measured on melodies the classifier did not train on (k-fold cross-validation)
over equal numbers of generated and real melodies (the larger set is subsampled, seeded), so 0.5
means the two sets cannot be told apart and 1.0 that every melody is told right (Lopez-Paz and
Oquab 2017, "Revisiting classifier two-sample tests"). Three classifiers, because each is blind
where another sees:

- ``logistic``: logistic regression on hand features (:func:`melody_features`); what it finds is a
  difference in those statistics, readable from its weights;
- ``trees``: gradient-boosted trees on the same features: thresholds and interactions (a range
  that is wide only when the notes are dense) that a linear model misses;
- ``cnn``: a small 1-D convolutional network over the model tokens and each step's position in the
  bar, which sees what no hand feature names (a rhythm cell, a cadence figure). Tokens are not
  transposed: key and register differences are differences.

Windows cut from one tune resemble each other, so a classifier that has seen some of a tune's
windows recognises the others: ``groups`` (the tune of each melody) keeps all of a tune's windows in
one fold. Without it, two sets of real windows from different tunes would look distinguishable.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional as F

from .. import tokens as tk
from ..melody import Melody
from .form_stats import leaps, phrase_returns, window_repeats
from .stats import window_features

CLASSIFIERS = ("logistic", "trees", "cnn")
FOLDS = 5
PAD = tk.NUM_CLASSES  # token id of the steps after a shorter melody's end


# -- hand features ------------------------------------------------------------------------------
def melody_features(m: Melody) -> np.ndarray:
    """A fixed-length description of one melody of any length (every entry is per note, per bar or
    a share), float64: stats.window_features (melody and bar statistics, onsets at each step of the
    bar, note lengths, intervals and pitch classes from the estimated tonic, silence, minor), then
    register (mean, lowest and highest pitch, in octaves above MIDI 0), the tonic's pitch class
    (one-hot) and form: repeated bars per 4-bar window and phrase returns exact and mostly (shares;
    0 where too short) and the share of intervals wider than an octave (form_stats).
    """
    pitches = np.array([n.pitch for n in m.notes], float)
    register = pitches if len(pitches) else np.full(1, 60.0)  # middle C for a silent melody
    tonic = np.zeros(12)
    tonic[m.key.tonic] = 1
    reps, returns = window_repeats(m), phrase_returns(m)
    form = [np.mean(reps) / 3 if reps else 0.0,
            np.mean([e for e, _ in returns]) if returns else 0.0,
            np.mean([s for _, s in returns]) if returns else 0.0,
            leaps([m])["interval_share"]]
    return np.concatenate([window_features(m), [register.mean() / 12, register.min() / 12, register.max() / 12],
                           tonic, form]).astype(np.float64)


# -- the token CNN ------------------------------------------------------------------------------
class TokenCNN(nn.Module):
    """Token and position-in-bar embeddings, dilated 1-D convolutions (receptive field 61 steps,
    about four bars of 4/4), mean and max pooled over the melody's steps, one logit (generated)."""

    def __init__(self, dim: int = 32, channels: int = 48, dilations: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        self.token = nn.Embedding(tk.NUM_CLASSES + 1, dim, padding_idx=PAD)
        self.position = nn.Embedding(tk.MAX_BAR_STEPS, dim)
        layers, width = [], dim
        for d in dilations:
            layers.append(nn.Conv1d(width, channels, 5, padding=2 * d, dilation=d))
            width = channels
        self.convs = nn.ModuleList(layers)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(2 * channels, 1)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """tokens, positions (B, T) int64 -> logits (B,)."""
        keep = (tokens != PAD).unsqueeze(1).float()  # (B, 1, T)
        x = (self.token(tokens) + self.position(positions)).transpose(1, 2)
        for conv in self.convs:
            x = F.gelu(conv(x)) * keep
        mean = x.sum(2) / keep.sum(2).clamp(min=1)
        peak = x.masked_fill(keep == 0, -1e4).amax(2)
        return self.out(self.drop(torch.cat([mean, peak], 1))).squeeze(1)


def token_rows(melodies: list[Melody]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens (N, T) padded with PAD to the longest melody, and each step's position in its bar (N, T)."""
    T = max(m.total_steps for m in melodies)
    tokens = np.full((len(melodies), T), PAD, np.int64)
    positions = np.zeros((len(melodies), T), np.int64)
    for i, m in enumerate(melodies):
        tokens[i, : m.total_steps] = tk.encode(m).tokens
        positions[i, : m.total_steps] = (np.arange(m.total_steps) - m.pickup_steps) % m.bar_steps
    return torch.from_numpy(tokens), torch.from_numpy(np.minimum(positions, tk.MAX_BAR_STEPS - 1))


def _predict(model: TokenCNN, tokens, positions, batch: int = 256) -> np.ndarray:
    model.eval()
    with torch.inference_mode():
        out = torch.cat([model(tokens[s : s + batch], positions[s : s + batch]) for s in range(0, len(tokens), batch)])
    model.train()
    return (out > 0).numpy()


def cnn_fold(tokens: torch.Tensor, positions: torch.Tensor, y: np.ndarray, groups: np.ndarray, train: np.ndarray,
             test: np.ndarray, seed: int, epochs: int = 12, batch: int = 32) -> np.ndarray:
    """Train a TokenCNN on rows ``train`` and predict rows ``test`` (bool, True = generated).

    About a seventh of the training rows (whole ``groups``) is held back to choose the epoch whose
    weights predict ``test``: too few epochs and the network has learnt nothing (reading 0.5 as
    "indistinguishable"), too many and it has learnt the training rows by heart."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    names, counts = np.unique(groups[train], return_counts=True)
    order = torch.randperm(len(names), generator=gen).numpy()
    last = int(np.searchsorted(np.cumsum(counts[order]), len(train) / 7))
    held = np.isin(groups[train], names[order[: last + 1]])
    inner, fit = train[held], train[~held]
    model = TokenCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    target = torch.from_numpy(y.astype(np.float32))
    best, best_state = -1.0, None
    for _ in range(epochs):
        fit = fit[torch.randperm(len(fit), generator=gen).numpy()]
        for s in range(0, len(fit), batch):
            rows = torch.from_numpy(fit[s : s + batch])
            loss = F.binary_cross_entropy_with_logits(model(tokens[rows], positions[rows]), target[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        acc = float((_predict(model, tokens[inner], positions[inner]) == y[inner].astype(bool)).mean())
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return _predict(model, tokens[test], positions[test])


# -- the test -----------------------------------------------------------------------------------
def balanced(generated: list[Melody], real: list[Melody], groups_generated, groups_real, seed: int):
    """Equal numbers of each (the larger set subsampled, seeded) -> melodies, labels (1 = generated) and
    groups, each tune's group id distinct from every generated melody's."""
    rng = np.random.default_rng(seed)
    n = min(len(generated), len(real))
    gi = np.sort(rng.choice(len(generated), n, replace=False))
    ri = np.sort(rng.choice(len(real), n, replace=False))
    gg = np.arange(len(generated)) if groups_generated is None else np.asarray(groups_generated)
    rg = np.arange(len(real)) if groups_real is None else np.asarray(groups_real)
    _, gg = np.unique(gg, return_inverse=True)
    _, rg = np.unique(rg, return_inverse=True)
    melodies = [generated[i] for i in gi] + [real[i] for i in ri]
    y = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
    return melodies, y, np.concatenate([gg[gi], gg.max() + 1 + rg[ri]])


def two_sample_accuracies(generated: list[Melody], real: list[Melody], seed: int = 0, folds: int = FOLDS,
                          classifiers: tuple[str, ...] = CLASSIFIERS, groups_generated=None, groups_real=None) -> dict:
    """Cross-validated accuracy (0-1; 0.5 = indistinguishable) of each of ``classifiers`` telling
    ``generated`` from ``real`` melodies, ``per_class``, the melodies of each set used, and
    ``seconds``, each classifier's time over all folds (features included).

    ``groups_generated`` / ``groups_real``: a group id per melody (e.g. its tune); a group's melodies
    stay in one fold. Default: every melody its own group. Folds keep the classes balanced
    (StratifiedGroupKFold, shuffled with ``seed``), as far as the groups allow.
    """
    unknown = set(classifiers) - set(CLASSIFIERS)
    if unknown:
        raise ValueError(f"Unknown classifiers {sorted(unknown)}; choose from {CLASSIFIERS}.")
    melodies, y, groups = balanced(generated, real, groups_generated, groups_real, seed)
    splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups))
    out, seconds = {"per_class": len(y) // 2}, {}
    # BLAS and OpenMP pools would take every core: the bench shares its machine
    with threadpool_limits(1):
        t = time.perf_counter()
        if {"logistic", "trees"} & set(classifiers):
            x = np.stack([melody_features(m) for m in melodies])
        seconds["features"] = time.perf_counter() - t
        if "logistic" in classifiers:
            t = time.perf_counter()
            out["logistic"] = _cross_validate(
                lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)), x, y, splits)
            seconds["logistic"] = time.perf_counter() - t
        if "trees" in classifiers:
            t = time.perf_counter()
            out["trees"] = _cross_validate(lambda: HistGradientBoostingClassifier(
                max_iter=150, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0, early_stopping=False,
                random_state=seed), x, y, splits)
            seconds["trees"] = time.perf_counter() - t
    if "cnn" in classifiers:
        t = time.perf_counter()
        tokens, positions = token_rows(melodies)
        pred = np.zeros(len(y), bool)
        for k, (train, test) in enumerate(splits):
            pred[test] = cnn_fold(tokens, positions, y, groups, train, test, seed + k)
        out["cnn"] = float((pred == y.astype(bool)).mean())
        seconds["cnn"] = time.perf_counter() - t
    return {**out, "seconds": seconds}


def _cross_validate(make, x: np.ndarray, y: np.ndarray, splits) -> float:
    correct = 0
    for train, test in splits:
        model = make().fit(x[train], y[train])
        correct += int((model.predict(x[test]) == y[test]).sum())
    return correct / len(y)
