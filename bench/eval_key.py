"""How often a key estimator agrees with the key the corpus files name.

    PYTHONPATH=. .venv/bin/python bench/eval_key.py                  # the shipped estimate_key and the variants
    PYTHONPATH=. .venv/bin/python bench/eval_key.py --bonus 0 0.05 0.1 0.2 0.3   # last-note weights tried
    PYTHONPATH=. .venv/bin/python bench/eval_key.py --windows        # also 4-bar windows (one a tune)
    PYTHONPATH=. .venv/bin/python bench/eval_key.py --bank           # also the code bank's stored window keys
    PYTHONPATH=. .venv/bin/python bench/eval_key.py --continue 100   # also Continue on keyless primers

The reference is each corpus melody's own key (data/corpus.npz): the key its file names, or where a
file gives only a key signature (or nothing), the key the estimator of the day chose when the
corpus was extracted, so the reference leans slightly towards the estimator used then
(Krumhansl-Kessler). Printed per split (train, valid, test, all) and per reference mode (all
splits): the share of melodies whose estimated key is the reference; and how the others miss it:
a fifth away (same mode, tonic 5 or 7 semitones off), parallel (same tonic, other mode), relative
(other mode, the minor tonic 3 semitones below the major one), another key of the same mode,
another key of the other mode.

Variants: the profiles (Krumhansl-Kessler, Bellman-Budge) with the Pearson correlation as the
score, as ``estimate_key`` computes it, plus ``--bonus`` added to the score of keys whose tonic is
the pitch class of the note that starts last. "shipped" is ``melody.estimate_key`` itself; the
variant equal to it must give the same figures. Choose a variant on train / valid; test is the
honest figure.

``--continue N``: Continue on N test primers (stats.primers: the first 4 bars of the test tunes) as
if their files named no key: each primer's key is ``estimate_key`` on its own notes, as the MIDI
importer finds it; 4 variations of 4 bars each, scored against the tune's file key (last note in
its tonic triad, ending on its tonic chord, notes in its scale; eval_phrasing.figures) for the
default ending, End on: tonic chord, and End on: free with key lock "detected".

``--windows``: 4-bar windows cut at a random bar line of each tune of at least 4 bars (seed 0), and
how often the estimate on the window alone is the tune's reference key. ``--bank``: how often
``estimate_key`` on each code-bank window agrees with the key stored beside it (all 100 % once the
bank's keys are recomputed with ``train_bank --keys``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app import melody as mel  # noqa: E402
from musicgen_app.training.corpus import SPLITS, load_corpus  # noqa: E402

# Krumhansl-Kessler probe-tone profiles (Krumhansl 1990, "Cognitive Foundations of Musical
# Pitch"), tonic first, for comparison.
KRUMHANSL_KESSLER = (np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]),
                     np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]))
PROFILES = {"Krumhansl-Kessler": KRUMHANSL_KESSLER,
            "Bellman-Budge": (mel.BELLMAN_BUDGE_MAJOR, mel.BELLMAN_BUDGE_MINOR)}
KINDS = ("same key", "a fifth away", "parallel", "relative", "other, same mode", "other, other mode")
KEYS = mel.Key.all()  # column j of the scores: KEYS[j]


def features(melodies) -> tuple[np.ndarray, np.ndarray]:
    """Duration-weighted pitch-class histograms (n, 12) and the last-starting note's pitch class (n,)
    (-1 for a melody without notes)."""
    hist, last = np.zeros((len(melodies), 12)), np.full(len(melodies), -1)
    for i, m in enumerate(melodies):
        for n in m.notes:
            hist[i, n.pitch % 12] += n.duration
        if m.notes:
            last[i] = max(m.notes, key=lambda n: n.start).pitch % 12  # the first of equal starts
    return hist, last


def estimate(hist: np.ndarray, last: np.ndarray, profiles, bonus: float, score: str = "correlation") -> np.ndarray:
    """Index into KEYS of each melody's best key, ties to the later key of (score, tonic, mode)."""
    if score == "correlation":  # as estimate_key scores
        s = mel.key_scores(hist, last, KEYS, profiles, bonus)
    else:  # dot product of the histogram's shares with the profile's
        major, minor = profiles
        p = np.stack([np.roll(major if k.mode == "major" else minor, k.tonic) for k in KEYS])  # (24, 12)
        s = (hist / np.maximum(hist.sum(1, keepdims=True), 1e-9)) @ (p / p.sum(1, keepdims=True)).T
        s = s + bonus * (np.array([k.tonic for k in KEYS])[None, :] == last[:, None])
    # ties: the later of (score, tonic, mode), as estimate_key breaks them
    order = np.lexsort((np.array([k.mode == "minor" for k in KEYS]), np.array([k.tonic for k in KEYS])))
    ranked = s[:, order]
    best_from_end = np.argmax(ranked[:, ::-1], axis=1)
    return order[len(order) - 1 - best_from_end]


def kind_of(got: mel.Key, want: mel.Key) -> str:
    d = (got.tonic - want.tonic) % 12
    if got == want:
        return "same key"
    if got.mode == want.mode:
        return "a fifth away" if d in (5, 7) else "other, same mode"
    if d == 0:
        return "parallel"
    major, minor = (got, want) if got.mode == "major" else (want, got)
    return "relative" if (major.tonic - minor.tonic) % 12 == 3 else "other, other mode"


def table(rows: dict[str, list[tuple[mel.Key, mel.Key]]], splits: list[str]) -> list[str]:
    """rows: variant -> [(estimated, reference)] per melody; splits: each melody's split."""
    out = ["| estimator | " + " | ".join(SPLITS) + " | all | major tunes | minor tunes | "
           + " | ".join(KINDS[1:]) + " (all) |",
           "|---|" + "---|" * (len(SPLITS) + len(KINDS) + 2)]
    for name, pairs in rows.items():
        kinds = np.array([kind_of(g, w) for g, w in pairs])
        split = np.array(splits)
        cells = [f"{np.mean(kinds[split == s] == 'same key'):.1%}" for s in SPLITS]
        cells.append(f"**{np.mean(kinds == 'same key'):.1%}**")
        minor = np.array([w.mode == "minor" for _, w in pairs])
        cells += [f"{np.mean(kinds[minor == m] == 'same key'):.1%}" for m in (False, True)]
        cells += [f"{np.mean(kinds == k):.1%}" for k in KINDS[1:]]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def windows(corpus, rng: np.random.Generator) -> tuple[list, list, list]:
    """One 4-bar window a tune, at a random bar line: the windows, their tunes' keys and splits."""
    got, keys, splits = [], [], []
    for m, split in zip(corpus.melodies, corpus.splits):
        bars = (m.total_steps - m.pickup_steps) // m.bar_steps
        if bars < 4:
            continue
        b = int(rng.integers(bars - 3))
        w = m.slice(m.pickup_steps + b * m.bar_steps, m.pickup_steps + (b + 4) * m.bar_steps)
        if w.notes:
            got.append(w)
            keys.append(m.key)
            splits.append(split)
    return got, keys, splits


def keyless_continue(n: int) -> list[str]:
    """The ``--continue`` table (see the module docstring)."""
    import torch
    from eval_phrasing import figures

    from musicgen_app import tokens as tk
    from musicgen_app.service import ContinueRequest, MelodyService, phrasing
    from musicgen_app.training import stats

    torch.set_num_threads(1)
    svc = MelodyService.from_checkpoints()
    primers = stats.primers(load_corpus().split("test"), n)
    keyless = [p.replace(key=mel.estimate_key(p.notes)) for p in primers]
    right = np.mean([e.key == p.key for e, p in zip(keyless, primers)])
    out = [f"{len(primers)} test primers of 4 bars, their key estimated from their notes: the file's key {right:.1%}",
           "", "| continuation (4 bars, 4 variations) | last in tonic triad | tonic chord end | in scale | n |",
           "|---|---|---|---|---|"]
    for name, ending, lock in ((f"default ({phrasing.LIKE_REAL})", phrasing.LIKE_REAL, "off"),
                               ("tonic chord", "tonic chord", "off"), ("free, key lock detected", "free", "detected")):
        got = {"last in triad": [], "tonic chord end": [], "in scale": []}
        for i, (p, e) in enumerate(zip(primers, keyless)):
            k = phrasing.DEFAULT_CANDIDATES if ending != "free" else 1
            rows = phrasing.continue_with_ending(svc, ContinueRequest(e, bars=4, variations=4, seed=i, key_lock=lock),
                                                 ending, k).tokens
            for r in rows:
                f = figures(p, tk.decode(r, p.slice(p.total_steps, p.total_steps)))  # against the file's key
                got["last in triad"].append(f["last in triad"])
                got["tonic chord end"].append(f["tonic chord end"])
                got["in scale"] += f["in scale"]
        cells = " | ".join(f"{np.mean(v):.1%}" for v in got.values())
        out.append(f"| {name} | {cells} | {len(got['last in triad'])} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bonus", type=float, nargs="+", default=[0.0, mel.FINAL_TONIC_BONUS],
                    help="weights added to the score of keys on the last note's pitch class")
    ap.add_argument("--dot", action="store_true",
                    help="also score the profiles alone by the dot product of shares")
    ap.add_argument("--windows", action="store_true", help="also 4-bar windows, one a tune")
    ap.add_argument("--bank", type=Path, nargs="?", const=Path("checkpoints/code_bank.safetensors"),
                    help="also the code bank's stored window keys")
    ap.add_argument("--continue", dest="continue_primers", type=int, metavar="N",
                    help="also Continue on N keyless test primers")
    args = ap.parse_args()
    t0 = time.time()
    corpus = load_corpus()
    melodies, splits = corpus.melodies, corpus.splits
    refs = [m.key for m in melodies]
    print(f"{len(melodies)} corpus melodies ({', '.join(f'{s} {splits.count(s)}' for s in SPLITS)}), "
          f"loaded in {time.time() - t0:.0f} s", flush=True)

    def variants(items) -> dict[str, list[mel.Key]]:
        hist, last = features(items)
        out = {"shipped estimate_key": [mel.estimate_key(m.notes) for m in items]}
        for name, profiles in PROFILES.items():
            for bonus in args.bonus:
                for score in ("correlation", "dot") if args.dot and not bonus else ("correlation",):
                    label = name + (f" + {bonus:g} last note" if bonus else "") + (" (dot)" if score == "dot" else "")
                    out[label] = [KEYS[j] for j in estimate(hist, last, profiles, bonus, score)]
        return out

    est = variants(melodies)
    print("\nWhole melodies against their files' keys:\n")
    print("\n".join(table({k: list(zip(v, refs)) for k, v in est.items()}, splits)), flush=True)

    if args.windows:
        ws, keys, wsplits = windows(corpus, np.random.default_rng(0))
        est = variants(ws)
        print(f"\n4-bar windows ({len(ws)}, one a tune, at a random bar line) against their tune's key:\n")
        print("\n".join(table({k: list(zip(v, keys)) for k, v in est.items()}, wsplits)), flush=True)

    if args.bank:
        from musicgen_app.models.checkpoints import load_checkpoint
        from musicgen_app.models.code_bank import window_attributes
        from musicgen_app.settings import parse_time_signature

        bank, _ = load_checkpoint(args.bank, kind="code_bank")
        meters = [parse_time_signature(bank.config.meters[i]) for i in bank.meter.tolist()]
        stored = [mel.Key(int(t), "minor" if m else "major") for t, m in zip(bank.tonic.tolist(), bank.minor.tolist())]
        now = [window_attributes(row, ts) for row, ts in zip(bank.tokens.numpy(), meters)]
        same = np.mean([s == mel.Key(a["tonic"], "minor" if a["minor"] else "major") for s, a in zip(stored, now)])
        ends = np.mean([bool(a["ends_on_tonic"]) == bool(e) for a, e in zip(now, bank.ends_on_tonic.tolist())])
        print(f"\n{args.bank}: estimate_key gives the stored key of {same:.1%} of its {len(stored)} windows "
              f"(ends-on-tonic flag the same for {ends:.1%})")
    if args.continue_primers:
        print("\n" + "\n".join(keyless_continue(args.continue_primers)), flush=True)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
