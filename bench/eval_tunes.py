"""Generate against held-out tunes: can classifiers tell its melodies from real ones, and do they
have the form of real ones? On the shipped checkpoints and the corpus's test split, 4/4.

    PYTHONPATH=. .venv/bin/python bench/eval_tunes.py [--lengths 4,16] [--samplers bank,gan,gaussian]
                                                      [--samples 400] [--seed 0] [--repeats 10] [--real-stride 4]
                                                      [--split test|valid] [--no-floor] [--critic PATH|none]

For each length (bars) and sampler, ``--samples`` melodies from MelodyService.sample (as Generate
makes them, at most 16 a call, seeds ``seed * 1000 + call``) are compared with real windows of the
same length cut from the test split's 4/4 tunes (``--split valid``: the valid split's, for choosing
anything; the test split only for final figures) on bar lines, ``--real-stride`` bars apart (4 by
default; cut as train_gan.window_melodies cuts them; 8 and 16 bars only from tunes that long):

- classifier two-sample accuracy (training/two_sample.py; 0.5 = indistinguishable): logistic
  regression and boosted trees on hand features, and a token CNN, 5-fold, a tune's windows in one
  fold, on n/class melodies of each set (the smaller set's size; the larger is subsampled). The row
  "valid vs test" compares the valid split's windows with the test split's: the accuracy of two
  real sets, the floor a sampler can reach at these sizes (``--no-floor`` leaves it out);
- repeated bars per 4-bar window (0-3, and as a share of the 3 that could repeat), phrase returns
  (share of 4-bar phrases after the first that return an earlier one exactly or transposed /
  mostly; 8 bars and more), and the share of intervals wider than an octave / of melodies with one
  (training/form_stats.py);
- exact copies: share of melodies equal to a training window of the same length (one-bar stride,
  untransposed), beside the share of held-out test windows that are (the rate real new tunes have);
- Generate's model time: median wall and CPU milliseconds of ``--repeats`` calls of 8 melodies of
  that length (after a warm-up), one torch thread, as bench/bench_service.py times it; on a shared
  machine the CPU time is the steadier figure.

``--critic`` sets the realism critic the bank's Generate chooses by (models/realism.py: a checkpoint
path, or "none" for Generate without the choice); by default the shipped one, if any.

Lengths above 4 bars need SampleRequest.bars; without it they print "not available".
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.melody import Melody  # noqa: E402
from musicgen_app.models.realism import ENV_PATH  # noqa: E402
from musicgen_app.service import MelodyService, SampleRequest  # noqa: E402
from musicgen_app.training.corpus import load_corpus  # noqa: E402
from musicgen_app.training.form_stats import (  # noqa: E402
    WindowIndex,
    copy_share,
    leaps,
    phrase_return_share,
    repeated_bars,
)
from musicgen_app.training.train_gan import tune_windows  # noqa: E402
from musicgen_app.training.two_sample import two_sample_accuracies  # noqa: E402

FOUR_FOUR = (4, 4)
BAR_STEPS = 16
MAX_COUNT = 16  # SampleRequest.count's limit


def has_bars() -> bool:
    return "bars" in {f.name for f in dataclasses.fields(SampleRequest)}


def request(sampler: str, bars: int, count: int, seed: int) -> SampleRequest:
    extra = {"bars": bars} if has_bars() else {}
    return SampleRequest(count=count, sampler=sampler, seed=seed, time_signature=FOUR_FOUR, **extra)


def generate(svc: MelodyService, sampler: str, bars: int, n: int, seed: int) -> tuple[list[Melody], list[str]]:
    melodies, notices = [], set()
    for call in range((n + MAX_COUNT - 1) // MAX_COUNT):
        r = svc.sample(request(sampler, bars, min(MAX_COUNT, n - len(melodies)), seed * 1000 + call))
        melodies += r.melodies
        notices.update(r.notices)
    return melodies, sorted(notices)


def model_ms(svc: MelodyService, sampler: str, bars: int, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of Generate 8 x ``bars`` bars over ``repeats`` calls after one
    warm-up. On one thread the CPU time is the model's work alone; the wall time also counts waiting
    for a core that other processes hold."""
    svc.sample(request(sampler, bars, 8, 0))
    wall, cpu = [], []
    for i in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        svc.sample(request(sampler, bars, 8, i + 1))
        wall.append(1000 * (time.perf_counter() - t))
        cpu.append(1000 * (time.process_time() - c))
    return statistics.median(wall), statistics.median(cpu)


def form_cells(melodies: list[Melody], index: WindowIndex, bars: int) -> dict:
    rep, ret, lp = repeated_bars(melodies), phrase_return_share(melodies), leaps(melodies)
    return {"repeats": f"{rep['per_window']:.2f}, {rep['share']:.3f}",
            "returns": f"{ret['exact']:.2f} / {ret['mostly']:.2f}" if bars >= 8 else "",
            "leaps": f"{lp['interval_share']:.4f} / {lp['melody_share']:.3f}",
            "copies": f"{copy_share(melodies, index):.3f}"}


def accuracy_cells(acc: dict) -> dict:
    return {"n": str(acc["per_class"]), **{k: f"{acc[k]:.3f}" for k in ("logistic", "trees", "cnn")}}


COLUMNS = (("row", "", 22), ("n", "n/class", 7), ("logistic", "logistic", 8), ("trees", "trees", 7),
           ("cnn", "cnn", 7), ("repeats", "rep. bars/window, share", 23), ("returns", "returns exact / mostly", 22),
           ("leaps", ">octave intervals / melodies", 28), ("copies", "train copies", 12),
           ("ms", "8 x gen ms wall / CPU", 21))


def print_row(cells: dict) -> None:
    print("| " + " | ".join(f"{cells.get(k, ''):<{w}}" for k, _, w in COLUMNS) + " |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="4,16", help="bars, comma-separated (4, 8, 16)")
    ap.add_argument("--samplers", default="bank,gan,gaussian")
    ap.add_argument("--samples", type=int, default=400, help="melodies per sampler and length")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10, help="timed Generate calls per sampler and length")
    ap.add_argument("--real-stride", type=int, default=4,
                    help="bars between real windows (1: more, overlapping windows of the same few long tunes)")
    ap.add_argument("--split", choices=("test", "valid"), default="test",
                    help="the real windows compared against: valid for choosing, test for final figures")
    ap.add_argument("--no-floor", action="store_true", help="leave out the valid vs test row")
    ap.add_argument("--critic", default=None, help="realism critic checkpoint for Generate's bank, or none")
    args = ap.parse_args(argv)
    if args.critic is not None:
        os.environ[ENV_PATH] = args.critic
    torch.set_num_threads(1)
    t0 = time.time()
    svc = MelodyService.from_checkpoints()
    corpus = load_corpus()
    split = {s: [m for m in corpus.split(s) if m.time_signature == FOUR_FOUR] for s in ("train", "valid", "test")}
    log = lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log("checkpoints and corpus loaded")
    for bars in (int(x) for x in args.lengths.split(",")):
        print(f"\n### {bars} bars, 4/4")
        if bars != 4 and not has_bars():
            print(f"not available: SampleRequest has no `bars` field, so Generate writes {4} bars only")
            continue
        test, test_owner = tune_windows(split["test"], bars, args.real_stride)
        valid, valid_owner = tune_windows(split["valid"], bars, args.real_stride)
        index = WindowIndex(split["train"], bars * BAR_STEPS)
        log(f"{bars} bars: {len(test)} test windows of {len(set(test_owner))} tunes, {len(valid)} valid windows of "
            f"{len(set(valid_owner))} tunes, {len(index)} distinct training windows")
        print(f"Test: {len(test)} windows of {len(set(test_owner))} tunes ({args.real_stride} bars apart); valid: "
              f"{len(valid)} of {len(set(valid_owner))}; {args.samples} samples per sampler, seed {args.seed}; "
              f"samplers compared with the {args.split} windows.")
        print_row({k: title for k, title, _ in COLUMNS})
        print("|" + "|".join("-" * (w + 2) for *_, w in COLUMNS) + "|")
        print_row({"row": "test windows (real)", **form_cells(test, index, bars)})
        if args.split == "valid":
            print_row({"row": "valid windows (real)", **form_cells(valid, index, bars)})
        if not args.no_floor:
            t = time.time()
            acc = two_sample_accuracies(valid, test, seed=args.seed, groups_generated=valid_owner,
                                        groups_real=test_owner)
            log(f"valid vs test classifiers in {time.time() - t:.0f} s "
                f"({', '.join(f'{k} {v:.1f}' for k, v in acc['seconds'].items())})")
            print_row({"row": "valid vs test (floor)", **accuracy_cells(acc), **form_cells(valid, index, bars)})
        real, real_owner = (test, test_owner) if args.split == "test" else (valid, valid_owner)
        for sampler in args.samplers.split(","):
            t = time.time()
            melodies, notices = generate(svc, sampler, bars, args.samples, args.seed)
            t_gen = time.time() - t
            t = time.time()
            acc = two_sample_accuracies(melodies, real, seed=args.seed, groups_real=real_owner)
            t_acc = time.time() - t
            ms = model_ms(svc, sampler, bars, args.repeats) if args.repeats else None
            log(f"{bars} bars, {sampler}: {len(melodies)} samples in {t_gen:.0f} s, classifiers in {t_acc:.0f} s "
                f"({', '.join(f'{k} {v:.1f}' for k, v in acc['seconds'].items())}); notices {notices}")
            print_row({"row": sampler, **accuracy_cells(acc), **form_cells(melodies, index, bars),
                       "ms": f"{ms[0]:.0f} / {ms[1]:.0f}" if ms else ""})
    log("done")


if __name__ == "__main__":
    main()
