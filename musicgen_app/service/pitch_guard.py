"""The pitch guard of Continue: how far below and above the input a continuation may go.

:func:`pitch_guard` widens the input's pitch range by margins that depend on where the input sits
(its register: mean pitch of its notes) and how wide it is (its range), read from :data:`MARGINS`.
The table is measured by ``bench/eval_pitch_guard.py`` on the train split of the folk corpus: every
4-bar primer (from the first bar line, then every 4 bars) and the tune's own next 4 bars
(:func:`continuation_windows`). For each cell, a margin is the 99.75th percentile of how far the real
continuation notes go below the primer's lowest note (above its highest note), so a cell keeps at
least 99.5 % of its notes; it is never narrower than a fifth (7 semitones, :func:`old_guard`), so the
table only widens that simpler guard. The share of real continuation notes each guard keeps, on every
split and on classical top lines, is printed by the same script and recorded in
checkpoints/MODEL_CARD.md by ``python -m musicgen_app.training.evaluate``.

Real continuations go further where the input is narrow and where it sits high or low: a high primer
falls (up to 12 semitones below its lowest note), a low one climbs, a narrow one of a few notes has
not shown its whole range yet.
"""

from __future__ import annotations

import numpy as np

from .. import tokens as tk
from ..errors import MelodyError
from ..melody import Melody

OLD_MARGIN = 7  # old_guard's margin in semitones: a fifth each side of the input's range
REGISTER_EDGES = (67, 70, 73)  # the input's mean MIDI pitch: below 67 (G4), 67-69, 70-72, 73 (C#5) and up
RANGE_EDGES = (9, 12, 15)  # the input's range in semitones: below 9, 9-11, 12-14, 15 and up
# (below, above) in semitones, rows by register (low to high), columns by range (narrow to wide).
MARGINS = (
    ((7, 11), (7, 10), (7, 8), (7, 9)),
    ((7, 7), (7, 7), (7, 7), (7, 7)),
    ((7, 7), (7, 7), (7, 7), (7, 7)),
    ((12, 7), (11, 7), (7, 7), (7, 7)),
)
PRIMER_BARS = 4  # what the table was measured on: 4 bars of input, the next 4 bars of continuation
MIN_PRIMER_NOTES = 4


def margins(mean_pitch: float, pitch_span: int) -> tuple[int, int]:
    """(below, above) for an input of this mean pitch and range (semitones), from :data:`MARGINS`."""
    row = int(np.searchsorted(REGISTER_EDGES, mean_pitch, side="right"))
    col = int(np.searchsorted(RANGE_EDGES, pitch_span, side="right"))
    return MARGINS[row][col]


def pitch_guard(melody: Melody) -> tuple[int, int]:
    """(lowest, highest) pitch a continuation of ``melody`` may play, inclusive, within the model's
    21-108. Measured on the pitches the model sees: notes outside 21-108 are folded by octaves first,
    as tokens.encode does."""
    if not melody.notes:
        raise MelodyError("The melody has no notes, so there is no range to guard; give at least one note.")
    pitches = np.array([tk.fold_pitch(n.pitch) for n in melody.notes])
    low, high = int(pitches.min()), int(pitches.max())
    below, above = margins(float(pitches.mean()), high - low)
    return max(tk.MIN_PITCH, low - below), min(tk.MAX_PITCH, high + above)


def old_guard(melody: Melody) -> tuple[int, int]:
    """The simple guard the table is measured against: the input's range widened by a fifth each side."""
    low, high = melody.pitch_range
    return max(tk.MIN_PITCH, low - OLD_MARGIN), min(tk.MAX_PITCH, high + OLD_MARGIN)


def continuation_windows(melodies: list[Melody]) -> list[tuple[Melody, np.ndarray]]:
    """(primer, pitches of the real continuation) for every 4-bar primer of each melody that starts
    on a bar line (after the pickup, then every 4 bars) and is followed by 4 whole bars with a note;
    primers of fewer than :data:`MIN_PRIMER_NOTES` notes are left out."""
    out = []
    for m in melodies:
        span = PRIMER_BARS * m.bar_steps
        for start in range(m.pickup_steps, m.total_steps - 2 * span + 1, span):
            primer = m.slice(start, start + span)
            after = np.array([n.pitch for n in m.notes if start + span <= n.start < start + 2 * span])
            if len(primer.notes) >= MIN_PRIMER_NOTES and len(after):
                out.append((primer, after))
    return out


def kept_share(windows: list[tuple[Melody, np.ndarray]], guard=pitch_guard) -> float:
    """Share of the real continuation notes of ``windows`` that ``guard(primer)`` lets through."""
    kept = total = 0
    for primer, after in windows:
        low, high = guard(primer)
        kept += int(((after >= low) & (after <= high)).sum())
        total += len(after)
    return kept / total if total else 1.0
