"""Form of generated melodies against real ones: repeats, returning phrases, wide leaps, copies.

- :func:`repeated_bars`: bars that repeat an earlier bar of their 4-bar window (folk tunes repeat
  bars inside a phrase; a sampler that never does, or always does, sounds unlike them);
- :func:`phrase_returns`: 4-bar phrases after the first that bring back an earlier phrase, exactly,
  transposed, or mostly (the AABA, ABAB... of song forms), for melodies of 8 bars or more;
- :func:`leaps`: melodic intervals wider than an octave, rare in singable tunes;
- :class:`WindowIndex` and :func:`copy_share`: melodies whose tokens equal a training window of the
  same length outright (memorisation), beside the rate at which held-out windows do.

Bars are counted from the melody's first bar line (``pickup_steps``); a part bar at the end is left
out. Bars and phrases are compared as model tokens (:mod:`musicgen_app.tokens`): equal rows have the
same onsets, pitches and note-offs at the same steps, and a bar that opens on a held note differs
from one that opens on silence. A bar or phrase without an onset never counts as a repeat.
"""

from __future__ import annotations

import numpy as np

from .. import tokens as tk
from ..melody import Melody

PHRASE_BARS = 4
MOSTLY = 0.75  # share of event steps equal (after the best transposition) for "mostly returns"
WIDE_LEAP = 12  # semitones; an interval counts as wide when it is larger (an octave itself does not)


# -- repeated bars ------------------------------------------------------------------------------
def window_repeats(m: Melody, window_bars: int = PHRASE_BARS) -> list[int]:
    """Per consecutive window of ``window_bars`` whole bars (bars 1-4, 5-8, ...; a part window at
    the end is left out): how many of its bars 2..``window_bars`` equal an earlier bar of the same
    window (0 to ``window_bars`` - 1)."""
    rows = tk.bar_rows(m)
    out = []
    for w in range(0, len(rows) - window_bars + 1, window_bars):
        bars = rows[w : w + window_bars]
        out.append(sum(bool((bars[i] >= 2).any()) and any((bars[i] == bars[j]).all() for j in range(i))
                       for i in range(1, window_bars)))
    return out


def repeated_bars(melodies: list[Melody], window_bars: int = PHRASE_BARS) -> dict:
    """Repeated bars over every 4-bar window of ``melodies`` (see :func:`window_repeats`).

    per_window : float, mean count of repeated bars in a window (0 to 3 for 4-bar windows)
    share : float, the same as a share of the bars that could repeat (0-1)
    windows : int, windows counted
    """
    counts = [c for m in melodies for c in window_repeats(m, window_bars)]
    if not counts:
        return {"per_window": float("nan"), "share": float("nan"), "windows": 0}
    mean = float(np.mean(counts))
    return {"per_window": mean, "share": mean / (window_bars - 1), "windows": len(counts)}


# -- returning phrases --------------------------------------------------------------------------
def phrase_agreement(later: np.ndarray, earlier: np.ndarray) -> tuple[bool, float]:
    """Whether token row ``later`` is ``earlier`` again, exactly or moved by one interval (same
    holds and note-offs at the same steps, every pitch shifted by the same semitones), and the best
    share of event steps equal after shifting by one interval (0-1).

    Event steps are those where either row has a note-on or note-off: counting held steps too would
    let any two phrases of the same rhythm agree on most steps whatever their pitches.
    """
    pa, pb = later >= 2, earlier >= 2
    if not pa.any() or not pb.any():
        return False, 0.0
    both = pa & pb
    shifts = np.unique(later[both] - earlier[both]) if both.any() else np.zeros(1, np.int64)
    same_kind = (later == earlier) & ~pa & ~pb  # holds and note-offs agree
    events = (later != tk.HOLD) | (earlier != tk.HOLD)
    best = 0.0
    for d in shifts:
        equal = same_kind | (both & (later - earlier == d))
        best = max(best, float(equal[events].mean()))
    exact = bool((pa == pb).all() and (later[~pa] == earlier[~pb]).all() and len(shifts) == 1)
    return exact, best


def phrase_returns(m: Melody, phrase_bars: int = PHRASE_BARS, mostly: float = MOSTLY) -> list[tuple[bool, bool]]:
    """Per phrase of ``phrase_bars`` whole bars after the first (bars 5-8, 9-12, 13-16 ...): whether it
    returns an earlier phrase exactly or transposed, and whether it mostly does (>= ``mostly`` of
    event steps equal after the best transposition; see :func:`phrase_agreement`)."""
    rows = tk.bar_rows(m)
    n = len(rows) // phrase_bars
    phrases = [rows[i * phrase_bars : (i + 1) * phrase_bars].reshape(-1) for i in range(n)]
    out = []
    for k in range(1, n):
        found = [phrase_agreement(phrases[k], phrases[j]) for j in range(k)]
        out.append((any(e for e, _ in found), max(a for _, a in found) >= mostly))
    return out


def phrase_return_share(melodies: list[Melody], phrase_bars: int = PHRASE_BARS) -> dict:
    """Share (0-1) of the phrases after the first, pooled over ``melodies``, that return an earlier
    phrase: ``exact`` (or transposed) and ``mostly``; ``phrases`` counted (0: too short, NaN shares)."""
    flags = [f for m in melodies for f in phrase_returns(m, phrase_bars)]
    if not flags:
        return {"exact": float("nan"), "mostly": float("nan"), "phrases": 0}
    return {"exact": float(np.mean([e for e, _ in flags])), "mostly": float(np.mean([s for _, s in flags])),
            "phrases": len(flags)}


# -- wide leaps ---------------------------------------------------------------------------------
def leaps(melodies: list[Melody], above: int = WIDE_LEAP) -> dict:
    """Intervals between consecutive notes wider than ``above`` semitones.

    interval_share : float, share of all melodic intervals of ``melodies`` (pooled) that are wider
    melody_share : float, share of melodies with at least one
    """
    wide, total, with_one = 0, 0, 0
    for m in melodies:
        iv = np.abs(np.diff([n.pitch for n in m.notes]))
        k = int((iv > above).sum())
        wide, total, with_one = wide + k, total + len(iv), with_one + (k > 0)
    return {"interval_share": wide / max(total, 1), "melody_share": with_one / max(len(melodies), 1)}


# -- exact copies -------------------------------------------------------------------------------
class WindowIndex:
    """Digests of every window of ``steps`` steps of ``melodies`` in ``time_signature``, starting on
    each bar line (one-bar stride), re-encoded as a clip of its own as batches.vae_windows cuts them.
    Transpositions are not folded: a copy a fifth higher is not a copy here."""

    def __init__(self, melodies: list[Melody], steps: int, time_signature: tuple[int, int] = (4, 4)):
        self.steps = steps
        self.digests: set[bytes] = set()
        for m in melodies:
            if m.time_signature != time_signature:
                continue
            toks = tk.encode(m).tokens
            for s in range(m.pickup_steps, len(toks) - steps + 1, m.bar_steps):
                self.digests.add(tk.window_digest(tk.vae_window(toks, s, steps, steps)))

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, m: Melody) -> bool:
        return m.total_steps == self.steps and tk.window_digest(tk.clip_window(m)) in self.digests


def copy_share(melodies: list[Melody], index: WindowIndex) -> float:
    """Share (0-1) of ``melodies`` whose tokens equal a window in ``index`` outright."""
    return float(np.mean([m in index for m in melodies])) if melodies else float("nan")
