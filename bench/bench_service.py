"""Model time of the three service calls, on the shipped checkpoints.

    .venv/bin/python bench/bench_service.py [--repeats 20] [--threads 1] [--clients 16] [--per-client 5]

Prints the median and p95 over repeated calls (after a warm-up) and the goal of each:
continue 8 bars x 4 variations and interpolate 4 bars x 7 steps <= 150 ms; Generate 8 x 4 bars
<= 60 ms with each sampler, with the corpus bank's attribute controls set, and "more like" two clips;
Generate 8 x 16 bars <= 150 ms and interpolate 16 bars x 7 steps <= 300 ms.

Then Continue 8 x 4 under load: ``--clients`` threads each calling it ``--per-client`` times at once,
as the app's workers do, so the engine (service/engine.py) steps their rows together. Prints the
throughput beside one client's, the latency, and the model CPU per request (the process's CPU time
over the requests: only the model runs here)      goal: <= 60 ms of model CPU per Continue 8 x 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.service import ContinueRequest, InterpolateRequest, MelodyService, SampleRequest  # noqa: E402
from musicgen_app.training import corpus  # noqa: E402

GOAL_MS = 150
GENERATE_GOAL_MS = 60
LONG_GOALS_MS = {"generate": 150, "interpolate": 300}  # 8 x 16 bars; 16 bars x 7 steps
LOAD_CPU_GOAL_MS = 60


def four_bar_clips(n: int, bars: int = 4):
    """The first ``bars`` bars of the first ``n`` 4/4 test tunes that have them."""
    clips = []
    for m in corpus.load_corpus().split("test"):
        if m.time_signature == (4, 4) and m.total_steps >= m.pickup_steps + 16 * bars:
            clips.append(m.slice(m.pickup_steps, m.pickup_steps + 16 * bars))
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
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=5)
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
    a16, b16 = four_bar_clips(2, 16)
    cases["sample 8 x 16 bars, bank"] = (LONG_GOALS_MS["generate"], lambda s: svc.sample(
        SampleRequest(count=8, seed=s, bars=16)))
    cases["interpolate 16 bars x 7 steps"] = (LONG_GOALS_MS["interpolate"], lambda s: svc.interpolate(
        InterpolateRequest(a16, b16, steps=7, seed=s)))
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
    if args.clients:
        # every request on one input (musicians clicking Continue again: the LSTM's state after the
        # input is remembered), then each request on an input of its own (the state found each time)
        load(svc, [a], args.clients, args.per_client, "one input")
        load(svc, four_bar_clips(2 * args.clients * args.per_client + 1)[1:], args.clients, args.per_client,
             "a new input each request")


def load(svc, melodies, clients: int, per_client: int, what: str) -> None:
    """Continue 8 x 4 from 1 and from ``clients`` threads at once (see the module docstring),
    request k on ``melodies[k % len(melodies)]``."""
    print(f"Continue 8 bars x 4 variations under load ({per_client} calls per client, {what})")
    base = None
    for n in (1, clients):
        # with inputs of their own, the clients' run gets ones the lone client's run did not prime
        inputs = melodies[len(melodies) // 2:] if n > 1 and len(melodies) > 1 else melodies
        times, cpu, engine, _, wall = run_clients(svc, inputs, n, per_client)
        calls = n * per_client
        rate = calls / wall
        base = base or rate
        cpu_ms = 1000 * cpu / calls
        verdict = "met" if cpu_ms <= LOAD_CPU_GOAL_MS else "NOT met"
        p95 = times[min(len(times) - 1, int(0.95 * calls))]
        print(f"  {n:>2} clients: {rate:5.2f} req/s ({rate / base:.2f}x one client's), latency median "
              f"{1000 * statistics.median(times):6.0f} ms p95 {1000 * p95:6.0f} ms; model CPU {cpu_ms:5.1f} ms a "
              f"request (engine thread {1000 * engine['cpu_s'] / calls:5.1f} ms, "
              f"{engine['block_steps'] / max(engine['steps'], 1):.1f} requests a step on average)"
              f"   goal <= {LOAD_CPU_GOAL_MS} ms: {verdict}")


def run_clients(svc, melodies, n: int, per_client: int):
    """``n`` threads each calling Continue 8 x 4 ``per_client`` times, the k-th request of the run on
    ``melodies[k % len(melodies)]`` -> (sorted latencies, process CPU, the engine's stats over the
    run, wall time)."""
    times, lock, seeds = [], threading.Lock(), iter(range(10_000, 10_000 + n * per_client))

    def client():
        for _ in range(per_client):
            with lock:
                seed = next(seeds)
            melody = melodies[(seed - 10_000) % len(melodies)]
            t = time.perf_counter()
            svc.continue_(ContinueRequest(melody, bars=8, variations=4, seed=seed))
            with lock:
                times.append(time.perf_counter() - t)

    threads = [threading.Thread(target=client) for _ in range(n)]
    cpu, before, wall = time.process_time(), svc.engine.stats.snapshot(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = svc.engine.stats.snapshot()
    return sorted(times), cpu, {k: after[k] - before[k] for k in after}, None, wall


if __name__ == "__main__":
    main()
