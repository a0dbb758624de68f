"""Re-measure the pitch guard's table (musicgen_app/service/pitch_guard.py) and print what it keeps.

    PYTHONPATH=. .venv/bin/python bench/eval_pitch_guard.py    # ~1 minute; needs data/corpus.npz, data/classical.npz

On the train split of the folk corpus, every 4-bar primer and the tune's own next 4 bars
(pitch_guard.continuation_windows): how far the real continuation notes go below the primer's lowest
note and above its highest, by the primer's register (mean pitch) and range, in the cells of
pitch_guard.REGISTER_EDGES x RANGE_EDGES. A cell's margin is the 99.75th percentile of each side
(rounded up, at least the old fifth), so each cell keeps >= 99.5 % of its notes. Prints that table
(and whether pitch_guard.MARGINS still equals it), then the share of continuation notes kept by the
old guard (input range +- 7 semitones) and the new one on the train, valid and test splits and on the
classical top lines (data/classical.npz, scripts/make_classical.py), which no choice here looked at.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.service import pitch_guard  # noqa: E402
from musicgen_app.service.pitch_guard import MARGINS, OLD_MARGIN, RANGE_EDGES, REGISTER_EDGES  # noqa: E402
from musicgen_app.training import corpus  # noqa: E402

QUANTILE = 0.9975  # per side, so that a cell keeps >= 99.5 % of its notes


def excursions(windows) -> dict[str, np.ndarray]:
    """Per continuation note: semitones below the primer's lowest note and above its highest (negative
    when inside), and the primer's register and range cell."""
    below, above, row, col = [], [], [], []
    for primer, after in windows:
        pitches = np.array([n.pitch for n in primer.notes])
        below.append(pitches.min() - after)
        above.append(after - pitches.max())
        n = len(after)
        row.append(np.full(n, np.searchsorted(REGISTER_EDGES, pitches.mean(), side="right")))
        col.append(np.full(n, np.searchsorted(RANGE_EDGES, pitches.max() - pitches.min(), side="right")))
    return {k: np.concatenate(v) for k, v in (("below", below), ("above", above), ("row", row), ("col", col))}


def measure_table(ex: dict[str, np.ndarray]) -> tuple[tuple[tuple[int, int], ...], ...]:
    table = []
    for r in range(len(REGISTER_EDGES) + 1):
        cells = []
        for c in range(len(RANGE_EDGES) + 1):
            cell = (ex["row"] == r) & (ex["col"] == c)
            cells.append(tuple(max(OLD_MARGIN, int(np.ceil(np.quantile(ex[side][cell], QUANTILE))))
                               for side in ("below", "above")))
        table.append(tuple(cells))
    return tuple(table)


def print_table(ex: dict[str, np.ndarray], table) -> None:
    print(f"margins (below, above) and notes per cell; rows: mean pitch split at {REGISTER_EDGES}, "
          f"columns: range split at {RANGE_EDGES} semitones")
    for r, row in enumerate(table):
        cells = []
        for c, (lo, hi) in enumerate(row):
            cell = (ex["row"] == r) & (ex["col"] == c)
            kept = np.mean((ex["below"][cell] <= lo) & (ex["above"][cell] <= hi))
            cells.append(f"({lo:2d}, {hi:2d}) n={cell.sum():6d} kept {100 * kept:5.2f} %")
        print("  " + " | ".join(cells))


def main() -> None:
    tunes = corpus.load_corpus()
    train = pitch_guard.continuation_windows(tunes.split("train"))
    ex = excursions(train)
    table = measure_table(ex)
    print(f"train split: {len(train)} windows, {len(ex['below'])} continuation notes")
    print_table(ex, table)
    print("pitch_guard.MARGINS is " + ("this table" if table == MARGINS else f"NOT this table; measured:\n{table}"))
    sets = {f"folk {s}": pitch_guard.continuation_windows(tunes.split(s)) for s in ("train", "valid", "test")}
    classical = corpus.load_corpus(corpus.DATA / "classical.npz").melodies
    sets["classical"] = pitch_guard.continuation_windows(classical)
    print("\n| continuation notes kept | windows | notes | old guard (+-7) | new guard |\n|---|---|---|---|---|")
    for name, windows in sets.items():
        old, new = pitch_guard.kept_share(windows, pitch_guard.old_guard), pitch_guard.kept_share(windows)
        notes = sum(len(after) for _, after in windows)
        print(f"| {name} | {len(windows)} | {notes} | {100 * old:.2f} % | {100 * new:.2f} % |")


if __name__ == "__main__":
    main()
