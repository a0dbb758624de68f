"""Model time of the three service calls, on the shipped checkpoints.

    .venv/bin/python bench/bench_service.py [--repeats 20] [--threads 1]

Prints the median and p95 over repeated calls (after a warm-up) and the goal of each:
continue 8 bars x 4 variations and interpolate 4 bars x 7 steps <= 150 ms; Generate 8 x 4 bars
<= 60 ms with each sampler, with the corpus bank's attribute controls set, and "more like" two clips.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.service import ContinueRequest, InterpolateRequest, MelodyService, SampleRequest  # noqa: E402
from musicgen_app.training import corpus  # noqa: E402

GOAL_MS = 150
GENERATE_GOAL_MS = 60


def four_bar_clips(n: int):
    clips = []
    for m in corpus.load_corpus().split("test"):
        if m.time_signature == (4, 4) and m.total_steps >= m.pickup_steps + 64:
            clips.append(m.slice(m.pickup_steps, m.pickup_steps + 64))
        if len(clips) == n:
            return clips
    return clips


def timed(fn, repeats: int) -> list[float]:
    fn(0)  # warm-up: first calls allocate
    out = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i + 1)
        out.append((time.perf_counter() - t) * 1000)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    svc = MelodyService.from_checkpoints()
    a, b = four_bar_clips(2)
    cases = {
        "continue 8 bars x 4 variations": (GOAL_MS, lambda s: svc.continue_(ContinueRequest(a, bars=8, variations=4,
                                                                                            seed=s))),
        "interpolate 4 bars x 7 steps": (GOAL_MS, lambda s: svc.interpolate(InterpolateRequest(a, b, steps=7, seed=s))),
    }
    for sampler in ("bank", "gan", "gaussian"):
        cases[f"sample 8 x 4 bars, {sampler}"] = (GENERATE_GOAL_MS, lambda s, sampler=sampler: svc.sample(
            SampleRequest(count=8, seed=s, sampler=sampler)))
    cases["sample 8, bank, D minor, 3/bar"] = (GENERATE_GOAL_MS, lambda s: svc.sample(
        SampleRequest(count=8, seed=s, key="D minor", notes_per_bar=3.0, ends_on_tonic=True)))
    style = svc.learn_style([a, b])
    cases["sample 8, more like 2 clips"] = (GENERATE_GOAL_MS, lambda s: svc.sample(
        SampleRequest(count=8, seed=s, sampler="style", style=style)))
    print(f"MelodyService on the shipped checkpoints, {args.threads} torch threads, {args.repeats} calls each")
    for name, (goal, fn) in cases.items():
        ms = sorted(timed(fn, args.repeats))
        med, p95 = statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        verdict = "met" if med <= goal else "NOT met"
        print(f"  {name:<32} median {med:6.1f} ms   p95 {p95:6.1f} ms   goal <= {goal} ms: {verdict} "
              f"({goal / med:.2f}x headroom)")


if __name__ == "__main__":
    main()
