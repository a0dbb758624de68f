"""Measures shared by evaluation, training scripts, bench/ and tests: no command line here.

- LSTM likelihood on whole melodies: :func:`lstm_bits_per_step`, in bits (log2) per predicted step;
- next-step accuracy against the all-hold baseline: :func:`step_scores`;
- musical statistics of one melody (:func:`melody_stats`, :func:`bar_stats`) and of a generated set
  against a held-out one (:func:`compare_stats`, :func:`compare_bar_stats`, :func:`overlap`);
  :data:`TARGETS` names the six that the samplers' measurements report;
- held-out 4-bar primers (:func:`primers`), the inputs Continue is measured on.

``python -m musicgen_app.training.evaluate`` runs them on the shipped checkpoints and writes the
figures into checkpoints/MODEL_CARD.md.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import tokens as tk
from ..melody import Melody, estimate_key
from .batches import lstm_batch, lstm_chunks, lstm_scores

LN2 = math.log(2)
# The statistics the sampler measurements (train_gan, train_bank, bench/eval_style.py) compare:
# melody_stats' and bar_stats' keys, pitch-class entropy left out.
TARGETS = ("in_scale", "range", "mean_abs_interval", "notes_per_bar", "bar_self_similarity", "repeated_bars")


# -- LSTM likelihood and accuracy -------------------------------------------------------------------
def step_scores(pred: np.ndarray, target: np.ndarray) -> dict:
    """Accuracy (0-1) on all steps, on non-hold steps, and the all-hold baseline, for token ids."""
    nonhold = target != tk.HOLD
    return {"accuracy": float((pred == target).mean()),
            "nonhold_accuracy": float((pred[nonhold] == target[nonhold]).mean()) if nonhold.any() else 0.0,
            "all_hold_baseline": float((target == tk.HOLD).mean())}


def whole_melody_batches(melodies: list[Melody], lookback_bars: tuple[int, ...], size: int = 32):
    """LSTM batches of whole melodies (no truncated context), grouped by length to limit padding."""
    ordered = sorted(melodies, key=lambda m: m.total_steps)
    for i in range(0, len(ordered), size):
        group = ordered[i:i + size]
        data = lstm_chunks(group, max(m.total_steps for m in group), lookback_bars)
        yield lstm_batch(data, np.arange(len(data)))


def lstm_bits_per_step(model, melodies: list[Melody]) -> float:
    """Mean -log2 P per predicted step of ``model`` on whole melodies (each melody's first step given)."""
    nll, _, target = lstm_scores(model, whole_melody_batches(melodies, model.config.lookback_bars))
    return nll / len(target) / LN2


# -- musical statistics -----------------------------------------------------------------------------
def melody_stats(m: Melody, key=None) -> dict | None:
    """Statistics of one melody; None with fewer than 2 notes.

    in_scale : float, share of notes in ``key``'s scale (default: the key estimated from the notes)
    pc_entropy : float, bits, entropy of the pitch-class histogram
    notes_per_bar : float, notes per bar of ``m.bar_steps``
    range : int, semitones from lowest to highest pitch
    mean_abs_interval : float, semitones, mean absolute interval between consecutive notes
    """
    if len(m.notes) < 2:
        return None
    pitches = np.array([n.pitch for n in m.notes])
    key = key or estimate_key(m.notes)
    scale = key.scale_pitch_classes()
    pc = np.bincount(pitches % 12, minlength=12) / len(pitches)
    nz = pc[pc > 0]
    bars = max(m.total_steps / m.bar_steps, 1e-9)
    return {"in_scale": float(np.mean([p % 12 in scale for p in pitches])),
            "pc_entropy": float(-(nz * np.log2(nz)).sum()), "notes_per_bar": len(pitches) / bars,
            "range": int(pitches.max() - pitches.min()), "mean_abs_interval": float(np.abs(np.diff(pitches)).mean())}


def bar_stats(m: Melody) -> dict:
    """Bar self-similarity: mean over pairs of bars (not both empty) of the Jaccard index of their
    (position in bar, pitch) onsets. Repeated bars: share of bars after the first whose steps equal
    an earlier bar's exactly (bars without an onset do not count as repeats). Both 0-1."""
    B = m.bar_steps
    n_bars = m.total_steps // B
    sets = [set() for _ in range(n_bars)]
    for n in m.notes:
        if n.start // B < n_bars:
            sets[n.start // B].add((n.start % B, n.pitch))
    sims = [len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2) if a | b]
    toks = tk.encode(m).tokens[: n_bars * B].reshape(n_bars, B)
    repeats = sum(bool(sets[i]) and any((toks[i] == toks[j]).all() for j in range(i)) for i in range(1, n_bars))
    return {"bar_self_similarity": float(np.mean(sims)) if sims else 0.0, "repeated_bars": repeats / max(n_bars - 1, 1)}


def overlap(x: list[float], y: list[float], bins: int = 20) -> float:
    """Overlapping area of two normalised histograms on a shared range (1 = same distribution)."""
    lo, hi = min(min(x), min(y)), max(max(x), max(y))
    if hi <= lo:
        return 1.0
    hx, _ = np.histogram(x, bins=bins, range=(lo, hi))
    hy, _ = np.histogram(y, bins=bins, range=(lo, hi))
    return float(np.minimum(hx / hx.sum(), hy / hy.sum()).sum())


def compare_stats(generated: list[Melody], reference: list[Melody]) -> dict:
    """Per :func:`melody_stats` key: generated_mean, heldout_mean (of ``reference``) and their overlap."""
    g = [s for s in map(melody_stats, generated) if s]
    r = [s for s in map(melody_stats, reference) if s]
    out = {}
    for k in g[0]:
        gx, rx = [s[k] for s in g], [s[k] for s in r]
        out[k] = {"generated_mean": float(np.mean(gx)), "heldout_mean": float(np.mean(rx)),
                  "overlap": overlap(gx, rx)}
    return out


def compare_bar_stats(generated: list[Melody], reference: list[Melody]) -> dict:
    """:func:`compare_stats` for the :func:`bar_stats` keys."""
    g, r = [bar_stats(m) for m in generated], [bar_stats(m) for m in reference]
    return {
        k: {
            "generated_mean": float(np.mean([s[k] for s in g])),
            "heldout_mean": float(np.mean([s[k] for s in r])),
            "overlap": overlap([s[k] for s in g], [s[k] for s in r]),
        }
        for k in g[0]
    }


# -- held-out material ------------------------------------------------------------------------------
def primers(test: list[Melody], n: int) -> list[Melody]:
    """Up to ``n`` 4-bar primers, the first 4 whole bars (after the pickup) of tunes in ``test``
    that go on for at least one more bar, with >= 8 notes in the tune and >= 4 in the primer."""
    out = []
    for m in test:
        bars = 4 * m.bar_steps
        start = m.pickup_steps
        if m.total_steps >= start + bars + m.bar_steps and len(m.notes) >= 8:
            p = m.slice(start, start + bars)
            if len(p.notes) >= 4:
                out.append(p)
        if len(out) == n:
            break
    return out


DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)


def window_features(m: Melody) -> np.ndarray:
    """Simple description of one window for the two-sample classifier: melody_stats, bar_stats,
    onset share at each position in the bar, and histograms of durations, absolute intervals and
    pitch classes relative to the estimated tonic."""
    st = melody_stats(m) or {
        "in_scale": 0.0,
        "pc_entropy": 0.0,
        "notes_per_bar": len(m.notes) * m.bar_steps / m.total_steps,
        "range": 0,
        "mean_abs_interval": 0.0,
    }
    f = [*st.values(), *bar_stats(m).values()]
    B = m.bar_steps
    onset = np.zeros(B)
    dur = np.zeros(len(DURATIONS) + 1)
    pcs = np.zeros(12)
    for n in m.notes:
        onset[n.start % B] += 1
        dur[np.searchsorted(DURATIONS, n.duration)] += 1
        pcs[(n.pitch - m.key.tonic) % 12] += 1
    bars = m.total_steps / B
    pitches = np.array([n.pitch for n in m.notes])
    iv = np.bincount(np.minimum(np.abs(np.diff(pitches)), 13), minlength=14) if len(pitches) > 1 else np.zeros(14)
    rest = 1 - sum(n.duration for n in m.notes) / m.total_steps
    return np.concatenate(
        [
            f,
            onset / bars,
            dur / max(len(m.notes), 1),
            iv / max(iv.sum(), 1),
            pcs / max(len(m.notes), 1),
            [rest, float(m.key.mode == "minor")],
        ]
    ).astype(np.float64)
