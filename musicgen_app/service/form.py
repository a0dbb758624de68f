"""Form: which bars of a tune come back, and the same returns given to new bars.

Folk tunes repeat: a bar comes back within a phrase, a phrase comes back after another (AABA,
ABAC, a first phrase repeated with a new ending), sometimes moved up or down (a sequence). The VAE
decodes each 4-bar window on its own and rarely repeats a bar exactly, so melodies decoded from
codes near a real tune's lose its form. Generate keeps it: the real bars a melody's codes came from
say which bars return (:func:`repeats`), and the decoded bars are made to return the same way
(:func:`give_form`). The melody's notes stay the decoder's; only its shape in time is the tune's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import tokens as tk

MAX_SHIFT = 12  # semitones a bar may move and still count as a return (a sequence, an octave)


@dataclass(frozen=True)
class Return:
    """Bar ``bar`` plays bar ``source`` again (an earlier bar), moved by ``shift`` semitones."""

    bar: int
    source: int
    shift: int = 0


def repeats(bars: np.ndarray) -> list[Return]:
    """Token rows of whole bars (n, bar_steps) -> each bar with notes that plays an earlier bar
    again: the first exact match, else the first moved one (same rhythm, every pitch moved by one
    interval of at most MAX_SHIFT)."""
    bars = np.asarray(bars, np.int64)
    notes = bars >= 2
    out = []
    for b in range(1, len(bars)):
        mine = notes[b]
        if not mine.any():
            continue
        earlier = bars[:b]
        same_rhythm = (notes[:b] == mine).all(1) & (earlier[:, ~mine] == bars[b, ~mine]).all(1)
        moves = bars[b, mine] - earlier[:, mine]  # (b, notes): one interval per earlier bar, if it moves as one
        by = moves[:, 0]
        fits = same_rhythm & (moves == by[:, None]).all(1) & (np.abs(by) <= MAX_SHIFT)
        exact, moved = np.nonzero(fits & (by == 0))[0], np.nonzero(fits & (by != 0))[0]
        if len(exact):
            out.append(Return(b, int(exact[0])))
        elif len(moved):
            out.append(Return(b, int(moved[0]), int(by[moved[0]])))
    return out


def move(bar: np.ndarray, shift: int) -> np.ndarray:
    """A bar's tokens moved by ``shift`` semitones, by an octave less (or more) where that leaves the range."""
    notes = bar >= 2
    if not shift or not notes.any():
        return bar.copy()
    lo, hi = int(bar[notes].min()), int(bar[notes].max())
    while hi + shift > tk.NUM_CLASSES - 1:
        shift -= 12
    while lo + shift < 2:
        shift += 12
    if hi + shift > tk.NUM_CLASSES - 1:  # wider than the range leaves room to move: played as it was
        shift = 0
    return np.where(notes, bar + shift, bar)


def give_form(tokens: np.ndarray, returns: list[Return], bar_steps: int) -> np.ndarray:
    """``tokens`` (a melody of whole bars) with ``returns`` (those of a source tune, see repeats):
    each bar that returns becomes, in order, the melody's own bar it returns to, moved as in the
    source. Returns beyond the melody's bars are left out."""
    bars = tokens.reshape(-1, bar_steps).copy()
    for r in returns:
        if r.bar < len(bars):
            bars[r.bar] = move(bars[r.source], r.shift)
    return bars.reshape(-1)
