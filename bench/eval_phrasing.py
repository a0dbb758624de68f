"""How continuations end and repeat, with and without an asked ending, against the real tunes.

    PYTHONPATH=. .venv/bin/python bench/eval_phrasing.py [--primers 200] [--timing 30] [--rolls DIR]
                                                         [--split test|valid|classical]
    PYTHONPATH=. .venv/bin/python bench/eval_phrasing.py --defaults [--split ...]   (the default ending)
    PYTHONPATH=. .venv/bin/python bench/eval_phrasing.py --ending-table             (phrasing.REAL_ENDINGS)

Held-out primers (stats.primers: 4 bars from the start of the split's tunes; choices are made on
``--split valid``, figures reported on test), 4 generated bars, 4 variations each, temperature 1.0
and 0.7. Rows: today's Continue (one pass, phrasing's candidates=1: the very rows continue_ gives
with End on: free), ``free`` and ``tonic chord`` endings chosen among K candidate last bars, the
default (tonic chord, K) at "Stay close" 0 and 1 besides its default, and the tunes' own next 4
bars. Columns (per continuation, or per bar):

- tonic chord / tonic end: phrasing.ends_on (the last note in the tonic triad / on the tonic, landing
  on the final bar's downbeat or middle beat); "last in triad": the last note's pitch alone;
- repeated bars: bars 2-4 with notes, equal (onsets, pitches, lengths) to an earlier bar of the
  continuation; primer copies: bars with notes equal to a bar of the primer;
- log2 p/note: phrasing.log_likelihood_per_note; in scale: notes in the primer's key's scale;
- asked: the share of variations flagged as ending as asked (tonic chord rows).

"More like variation N" (ContinueRequest.like): per primer, the default Continue's best variation
is the reference; 4 new variations are drawn with ``like`` = it (another seed), and 4 with the same
seed without it. Printed per group: steps equal to the reference's, note onsets of the reference
that the new variation has too (same step, same pitch), bars equal to the reference's same bar, and
whole copies of it; "unrelated" compares the default Continue's other 3 variations with the
reference.

``--defaults``: the default Continue (End on: like real tunes), End on: tonic chord and free beside
the real next 4 and 8 bars, temperature 1, "Stay close" at its default, with per continuation: last
note in the tonic triad, tonic chord end, a last note of a beat or more, repeated bars (and those
whose nearest equal bar is 2 or 4 bars back), primer copies, notes per bar, pitch range, log2
p/note; and over primers, the Pearson r of a primer's repeated bars (mean over its 4 variations)
with its real tune's next bars' and with its own (the primer's). ``--ending-table``: how real 4-bar
stretches end, per bar position mod 8 (train split).

Then the model time of one Continue of 8 bars x 4 variations per method (one thread), and with
--rolls, piano rolls of the first 8 primers' best variation, free and tonic chord.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from musicgen_app import tokens as tk  # noqa: E402
from musicgen_app import views  # noqa: E402
from musicgen_app.melody import Melody  # noqa: E402
from musicgen_app.service import (  # noqa: E402
    ContinueRequest,
    MelodyService,
    phrasing,  # noqa: E402
)
from musicgen_app.settings import spec  # noqa: E402
from musicgen_app.training import (
    corpus,  # noqa: E402
    stats,  # noqa: E402
)
from musicgen_app.training.corpus import load_corpus  # noqa: E402
from musicgen_app.training.evaluate import CLASSICAL  # noqa: E402

BARS = 4
STAY_CLOSE = spec(ContinueRequest, "stay_close").default


def bar_notes(m: Melody) -> list[tuple]:
    """Each bar's notes as (onset in bar, pitch, length), from step 0 (the primers have no pickup)."""
    return [tuple((n.start, n.pitch, n.duration) for n in m.slice(b * m.bar_steps, (b + 1) * m.bar_steps).notes)
            for b in range(m.total_steps // m.bar_steps)]


def figures(primer: Melody, cont: Melody) -> dict:
    key, bars, before = primer.key, bar_notes(cont), set(bar_notes(primer))
    last = cont.notes[-1].pitch % 12 if cont.notes else None
    pitches = [n.pitch for n in cont.notes] or [0]
    return {"long last": bool(cont.notes) and cont.notes[-1].duration >= cont.beat_steps,
            "notes per bar": len(cont.notes) / len(bars), "range": max(pitches) - min(pitches),
            "tonic chord end": phrasing.ends_on(cont, "tonic chord", key),
            "last in triad": last in phrasing.ending_pitch_classes("tonic chord", key),
            "tonic end": phrasing.ends_on(cont, "tonic", key),
            "repeated bars": [bool(b) and b in bars[:i] for i, b in enumerate(bars) if i],
            "repeat lag": [min((i - j for j in range(i) if bars[j] == b), default=0) if b else 0
                           for i, b in enumerate(bars) if i],
            "primer copies": [bool(b) and b in before for b in bars],
            "in scale": [n.pitch % 12 in key.scale_pitch_classes() for n in cont.notes]}


def real_pairs(test: list[Melody], n: int, bars: int = BARS) -> list[tuple[Melody, np.ndarray]]:
    """stats.primers' primers with the tokens of their tune's next ``bars`` bars (where it has them)."""
    primers = stats.primers(test, n)
    by_start = {}
    for m in test:  # walk the tunes as stats.primers does, to find each primer's own tune
        start, length = m.pickup_steps, BARS * m.bar_steps
        if m.total_steps >= start + length + bars * m.bar_steps:
            by_start.setdefault(m.slice(start, start + length), m)
    out = []
    for p in primers:
        m = by_start.get(p)
        if m is not None:
            start = m.pickup_steps + BARS * m.bar_steps
            out.append((p, tk.encode(m).tokens[m.pickup_steps:start + bars * m.bar_steps][p.total_steps:]))
    return out


def repeat_share(m: Melody) -> float:
    """Bars after the first that have notes and equal an earlier bar, as a share of those bars."""
    bars = bar_notes(m)
    return float(np.mean([bool(b) and b in bars[:i] for i, b in enumerate(bars) if i]))


def default_table(svc, melodies: list[Melody], n: int, bars: int) -> list[tuple[str, dict]]:
    """The ``--defaults`` rows for continuations of ``bars`` bars (see the module docstring)."""
    real = real_pairs(melodies, n, bars)
    primers = [p for p, _ in real]
    cols = ("last in triad", "tonic chord end", "long last", "repeated bars", "primer copies", "notes per bar",
            "range", "log2 p/note")

    def row(conts: list[list[Melody]], scores: list) -> dict:
        per = [[figures(p, c) for c in cs] for p, cs in zip(primers, conts)]
        flat = [f for fs in per for f in fs]
        out = {k: float(np.mean([np.mean(f[k]) for f in flat])) for k in cols[:-1]}
        out["repeated bars"] = float(np.mean([x for f in flat for x in f["repeated bars"]]))
        for lag in (2, 4):
            out[f"lag {lag} repeats"] = float(np.mean([x == lag for f in flat for x in f["repeat lag"]]))
        out["log2 p/note"] = float(np.mean(scores))
        reps = [np.mean([repeat_share(c) for c in cs]) for cs in conts]
        out["r with real"] = float(np.corrcoef(reps, real_reps)[0, 1])
        out["r with primer"] = float(np.corrcoef(reps, [repeat_share(p) for p in primers])[0, 1])
        out["n"] = len(flat)
        return out

    def grid(p):
        return p.slice(p.total_steps, p.total_steps)
    real_conts = [[tk.decode(r, grid(p))] for p, r in real]
    real_reps = [repeat_share(c[0]) for c in real_conts]
    with torch.inference_mode():
        real_scores = [phrasing.log_likelihood_per_note(svc.lstm, tk.encode(p).tokens, p, r[None])[0] for p, r in real]
    rows = [(f"real next {bars} bars", row(real_conts, real_scores))]
    default = spec(ContinueRequest, "ending").default
    methods = ((f"default ({default})", default, phrasing.DEFAULT_CANDIDATES),
               ("tonic chord", "tonic chord", phrasing.DEFAULT_CANDIDATES), ("free", "free", 1))
    for name, ending, k in methods[:1] + tuple(m for m in methods[1:] if m[1] != default):
        t0 = time.time()
        outs = [phrasing.continue_with_ending(svc, ContinueRequest(p, bars=bars, variations=4, seed=i), ending, k)
                for i, p in enumerate(primers)]
        conts = [[tk.decode(r, grid(p)) for r in o.tokens] for p, o in zip(primers, outs)]
        rows.append((name, row(conts, [s for o in outs for s in o.log2p_per_note])))
        print(f"{bars} bars, {name}: {time.time() - t0:.0f} s", flush=True)
    return rows


def default_markdown(rows: list[tuple[str, dict]]) -> str:
    cols = ["last in triad", "tonic chord end", "long last", "repeated bars", "lag 2 repeats", "lag 4 repeats",
            "r with real", "r with primer", "primer copies", "notes per bar", "range", "log2 p/note"]
    pct = {"last in triad", "tonic chord end", "long last", "repeated bars", "lag 2 repeats", "lag 4 repeats",
           "primer copies"}
    lines = ["| continuation | " + " | ".join(cols) + " | n |", "|---" * (len(cols) + 2) + "|"]
    for name, r in rows:
        cells = [f"{100 * r[c]:.1f} %" if c in pct else f"{r[c]:.2f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['n']} |")
    return "\n".join(lines)


def ending_table(melodies: list[Melody]) -> list[tuple[float, float, int]]:
    """Per bar position mod 8 (bars from the tune's first bar line to a bar line, 5 or more): of the
    4 bars before it with notes, the share whose last note is a cadence (ends_on tonic chord) and
    the share whose last note is in the tonic triad without landing, and how many there were."""
    kinds = [[] for _ in range(8)]
    for m in melodies:
        if len(m.notes) < 8:
            continue
        first = m.pickup_steps
        for e in range(5, (m.total_steps - first) // m.bar_steps + 1):
            w = m.slice(first + (e - 4) * m.bar_steps, first + e * m.bar_steps)
            if w.notes:
                cadence = phrasing.ends_on(w, "tonic chord", m.key)
                triad = w.notes[-1].pitch % 12 in phrasing.ending_pitch_classes("tonic chord", m.key)
                kinds[e % 8].append((cadence, triad and not cadence))
    return [(*np.mean(k, 0), len(k)) for k in kinds]


def method_rows(svc, primers, temperature, ending, candidates, stay_close=STAY_CLOSE):
    """Per primer, its PhrasedRows (4 variations of 4 bars, seed = the primer's index)."""
    return [phrasing.continue_with_ending(svc, ContinueRequest(p, bars=BARS, variations=4, seed=i,
                                                               temperature=temperature, stay_close=stay_close),
                                          ending, candidates)
            for i, p in enumerate(primers)]


def likeness(rows: np.ndarray, ref: np.ndarray, bar_steps: int) -> dict:
    """How close each of ``rows`` (N, n) is to ``ref`` (n,): per row, then averaged."""
    onsets = ref >= 2
    bars = (rows != ref).reshape(len(rows), -1, bar_steps).any(2) == 0  # the primers end on a bar line
    return {"steps equal": float((rows == ref).mean()),
            "onsets kept": float((rows[:, onsets] == ref[onsets]).mean()) if onsets.any() else None,
            "bars equal": float(bars.mean()), "copies": float((rows == ref).all(1).mean())}


def like_figures(svc, primers, temperature: float) -> dict[str, dict]:
    """The "more like" measurement (see the module docstring), averaged over primers."""
    out = {"like": [], "same seed, no like": [], "unrelated": []}
    for i, p in enumerate(primers):
        req = ContinueRequest(p, bars=BARS, variations=4, seed=i, temperature=temperature)
        first = svc.continue_(req)
        ref = phrasing.reference_tokens(first.continuations[0])
        ref[0] = tk.encode(first.continuations[0]).tokens[0]  # the figures compare every step
        rows = {name: phrasing.continue_with_ending(svc, dataclasses.replace(req, seed=i + 10_000, **change),
                                                    req.ending).tokens
                for name, change in (("like", {"like": first.continuations[0]}), ("same seed, no like", {}))}
        rows["unrelated"] = np.stack([tk.encode(c).tokens for c in first.continuations[1:]])
        for name, r in rows.items():
            r = r.copy()
            r[:, 0] = np.where(r[:, 0] == tk.HOLD, tk.REST, r[:, 0])  # as a continuation alone encodes it
            out[name].append(likeness(r, ref, p.bar_steps))
    return {name: {k: float(np.mean([f[k] for f in figs if f[k] is not None])) for k in figs[0]}
            for name, figs in out.items()}


def summarise(pairs: list[tuple[Melody, np.ndarray, float, bool]], ending: str = "free") -> dict:
    """(primer, continuation tokens, log2 p/note, flagged as asked) -> the table's figures."""
    per = [figures(p, tk.decode(row, p.slice(p.total_steps, p.total_steps))) for p, row, _, _ in pairs]
    out = {k: float(np.mean([f[k] for f in per])) for k in ("tonic chord end", "last in triad", "tonic end")}
    for k in ("repeated bars", "primer copies", "in scale"):
        out[k] = float(np.mean([x for f in per for x in f[k]]))
    out["log2 p/note"] = float(np.mean([s for _, _, s, _ in pairs]))
    out["asked"] = float(np.mean([a for *_, a in pairs])) if ending != "free" else None
    out["n"] = len(pairs)
    return out


def table(rows: list[tuple[str, dict]]) -> str:
    cols = ["tonic chord end", "last in triad", "tonic end", "repeated bars", "primer copies", "in scale",
            "log2 p/note", "asked"]
    lines = ["| method | " + " | ".join(cols) + " | n |", "|---" * (len(cols) + 2) + "|"]
    for name, r in rows:
        cells = ["-" if r[c] is None else f"{r[c]:.2f}" if c == "log2 p/note" else f"{100 * r[c]:.1f} %"
                 for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['n']} |")
    return "\n".join(lines)


def timing(svc, primers, candidates: int) -> list[tuple[str, float, float]]:
    """Per method: median ms of one Continue of 8 bars x 4 variations over ``primers``, and the
    median of its ratio to End on: free (one sampling pass, ranked) on the same primer. The methods take turns on each
    primer, so load from other work on the machine falls on all of them alike."""
    methods = [("End on: free (one pass, ranked)", lambda r: phrasing.continue_with_ending(svc, r, "free", 1)),
               ("tonic chord, K=8", lambda r: phrasing.continue_with_ending(svc, r, "tonic chord", 8)),
               (f"tonic chord, K={candidates}", lambda r: phrasing.continue_with_ending(svc, r, "tonic chord",
                                                                                          candidates)),
               (f"{phrasing.LIKE_REAL} (the default), K={candidates}",
                lambda r: phrasing.continue_with_ending(svc, r, phrasing.LIKE_REAL, candidates))]
    ms = np.zeros((len(primers), len(methods)))
    for i, p in enumerate(primers):
        req = ContinueRequest(p, bars=8, variations=4, seed=i)
        for j in np.roll(np.arange(len(methods)), i):
            t0 = time.perf_counter()
            methods[j][1](req)
            ms[i, j] = 1e3 * (time.perf_counter() - t0)
    return [(name, float(np.median(ms[:, j])), float(np.median(ms[:, j] / ms[:, 0])))
            for j, (name, _) in enumerate(methods)]


def rolls(svc, primers, candidates: int, folder: Path) -> None:
    for ending, k, name in (("free", 1, "rolls_free.png"), ("tonic chord", candidates, "rolls_tonic.png"),
                            (phrasing.LIKE_REAL, candidates, "rolls_default.png")):
        tiles = []
        for i, p in enumerate(primers):
            out = phrasing.continue_with_ending(svc, ContinueRequest(p, bars=BARS, variations=4, seed=i), ending, k)
            whole = tk.decode(np.concatenate([tk.encode(p).tokens, out.tokens[0]]), p)
            end = "ends on I" if phrasing.ends_on(whole, "tonic chord") else "does not end on I"
            title = f"{i}: {p.key.name} {p.time_signature[0]}/{p.time_signature[1]}, {ending}: {end}, " \
                    f"{out.log2p_per_note[0]:.2f} bits/note"
            tiles.append(views.piano_roll_png(whole, split_step=p.total_steps, title=title, width=700, height=220))
        print(f"wrote {views.tile_sheet(tiles, 2, folder / name)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--primers", type=int, default=200)
    ap.add_argument("--timing", type=int, default=30, help="primers timed per method (8 bars x 4)")
    ap.add_argument("--timing-only", action="store_true", help="stop after the timing")
    ap.add_argument("--candidates", type=int, default=phrasing.DEFAULT_CANDIDATES)
    ap.add_argument("--rolls", type=Path, help="folder for rolls_free.png, rolls_tonic.png and rolls_default.png")
    ap.add_argument("--like", type=int, default=100, help="primers of the 'more like' measurement")
    ap.add_argument("--split", choices=("test", "valid", "classical"), default="test",
                    help="valid for choosing, test to report; classical: out of domain")
    ap.add_argument("--defaults", action="store_true", help="only the default ending's table, at 4 and 8 bars")
    ap.add_argument("--ending-table", action="store_true", help="only how real tunes end (train split)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.ending_table:
        print("position mod 8: (cadence, triad without landing), windows")
        for e, (cadence, triad, n) in enumerate(ending_table(corpus.load_corpus().split("train"))):
            print(f"{e}: ({cadence:.2f}, {triad:.2f}), {n}")
        return
    svc = MelodyService.from_checkpoints()
    K = args.candidates
    test = load_corpus(CLASSICAL).melodies if args.split == "classical" else corpus.load_corpus().split(args.split)
    if args.rolls and args.defaults:
        args.rolls.mkdir(parents=True, exist_ok=True)
        rolls(svc, stats.primers(test, 8), K, args.rolls)
    if args.defaults:
        for bars in (4, 8):
            rows = default_table(svc, test, args.primers, bars)
            print(f"\n{args.split} primers, {bars} new bars, 4 variations each, temperature 1, stay close "
                  f"{STAY_CLOSE:g}\n\n{default_markdown(rows)}\n", flush=True)
        return
    primers = stats.primers(test, args.primers)
    for name, ms, ratio in timing(svc, primers[:args.timing], K):
        print(f"model time, 8 bars x 4 variations, {name}: {ms:.0f} ms, {ratio:.2f} x free "
              f"(medians over {args.timing} primers)", flush=True)
    if args.timing_only:
        return
    real = real_pairs(test, args.primers)
    with torch.inference_mode():
        real_scores = [phrasing.log_likelihood_per_note(svc.lstm, tk.encode(p).tokens, p, row[None])[0]
                       for p, row in real]
    rows = [("real next 4 bars", summarise([(p, row, s, False) for (p, row), s in zip(real, real_scores)]))]
    for temperature in (1.0, 0.7):
        for name, ending, k, close in (
                ("today (1 pass)", "free", 1, STAY_CLOSE), (f"free, K={K}", "free", K, STAY_CLOSE),
                ("tonic chord, K=8", "tonic chord", 8, STAY_CLOSE),
                (f"tonic chord, K={K}", "tonic chord", K, STAY_CLOSE),
                (f"tonic chord, K={K}, stay close 0", "tonic chord", K, 0.0),
                (f"tonic chord, K={K}, stay close 1", "tonic chord", K, 1.0)):
            t0 = time.time()
            out = method_rows(svc, primers, temperature, ending, k, close)
            pairs = [(p, row, s, a) for p, o in zip(primers, out)
                     for row, s, a in zip(o.tokens, o.log2p_per_note, o.satisfied)]
            rows.append((f"T={temperature} {name}", summarise(pairs, ending)))
            print(f"T={temperature} {name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n{len(primers)} {args.split} primers, {BARS} new bars, 4 variations each, stay close {STAY_CLOSE:g} "
          f"unless named; real: the {len(real)} tunes with {BARS} more bars after the primer\n")
    print(table(rows))
    for temperature in (1.0, 0.7) if args.like else ():
        figs = like_figures(svc, primers[:args.like], temperature)
        print(f"\nMore like the best variation, T={temperature}, {min(args.like, len(primers))} primers "
              "(default Continue otherwise):\n")
        cols = list(next(iter(figs.values())))
        print("| new variations | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 1) + "|")
        for name, f in figs.items():
            print(f"| {name} | " + " | ".join(f"{100 * f[c]:.1f} %" for c in cols) + " |")
    if args.rolls:
        args.rolls.mkdir(parents=True, exist_ok=True)
        rolls(svc, primers[:8], K, args.rolls)


if __name__ == "__main__":
    main()
