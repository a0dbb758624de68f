"""The models on Ray Serve replicas (musicgen_app/deploy/ray_serve.py) against the embedded service.

    .venv/bin/python bench/bench_ray.py [--replicas 2] [--calls 40] [--clients 16] [--debug-model]

On the shipped checkpoints (the debug model with --debug-model), a local Ray on 127.0.0.1. Prints:
- memory: RSS and PSS of the local Ray's processes (raylet, GCS, agents, controller, replicas),
  and of the replicas alone, next to this process's own;
- per-call cost of the handle: a refused request (bars=0: refused before any model work, the
  refusal sent back) one at a time, the request's trip through Ray and back; and a 1-bar,
  1-variation Continue, embedded and through the handle by turns;
- throughput of Continue 8 bars x 4 variations with ``--clients`` callers at once: embedded (one
  engine in this process) and through the replicas, ``--calls`` calls each, requests/s and p95.
Needs the Ray extra (pip install -r requirements-ray.txt). The machine's load average is printed
with the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.deploy import ray_serve  # noqa: E402
from musicgen_app.errors import RequestError  # noqa: E402
from musicgen_app.io.examples import example_path  # noqa: E402
from musicgen_app.io.importer import load_melody  # noqa: E402
from musicgen_app.service import ContinueRequest, MelodyService  # noqa: E402


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB; PSS shares each shared page among the processes using it."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    kb = {line.split(":")[0]: int(line.split()[1]) for line in rollup if line.split(":")[0] in ("Rss", "Pss")}
    return kb.get("Rss", 0) / 1024, kb.get("Pss", 0) / 1024


def timed(fn, req) -> float:
    t = time.perf_counter()
    fn(req)
    return time.perf_counter() - t


def by_turns_ms(fns, req, n: int) -> list[float]:
    """Median ms of each of ``fns`` on ``req``, called by turns (so the machine's load hits all alike)."""
    times = [[] for _ in fns]
    for _ in range(n + 1):
        for fn, ts in zip(fns, times):
            ts.append(timed(fn, req))
    return [statistics.median(ts[1:]) * 1000 for ts in times]  # the first: warm-up


def refused(fn):
    def call(req):
        try:
            fn(req)
        except RequestError:
            return
        raise AssertionError("the request was not refused")

    return call


def throughput(fn, reqs, clients: int) -> tuple[float, float]:
    """(requests/s, p95 latency in s) of ``reqs`` through ``fn`` with ``clients`` at once."""
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(fn, reqs[:clients]))  # warm-up: every client once
        t = time.perf_counter()
        times = list(pool.map(lambda r: timed(fn, r), reqs))
        wall = time.perf_counter() - t
    return len(reqs) / wall, statistics.quantiles(times, n=20)[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--calls", type=int, default=40)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--debug-model", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    melody = load_melody(example_path("Waltz (3/4, MIDI)")).melody
    small = ContinueRequest(melody, bars=1, variations=1, seed=1, ending="free")
    reqs = [ContinueRequest(melody, bars=8, variations=4, seed=i) for i in range(args.calls)]
    model = "debug model" if args.debug_model else "shipped checkpoints"
    print(f"{model}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")

    embedded = MelodyService.debug() if args.debug_model else MelodyService.from_checkpoints()
    own_rss = memory_mb(os.getpid())[0]
    emb_rate, emb_p95 = throughput(embedded.continue_, reqs, args.clients)

    t = time.perf_counter()
    replicas = ray_serve.start(args.replicas, debug=args.debug_model)
    started = time.perf_counter() - t
    try:
        procs = ray_serve._ray_processes(os.getpid())
        mem = {pid: memory_mb(pid) for pid in procs}
        names = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() for pid in procs}
        rss, pss = sum(r for r, _ in mem.values()), sum(s for _, s in mem.values())
        rep = [mem[pid] for pid in procs if names[pid].startswith("ray::ServeReplica")]
        bad = dataclasses.replace(small, bars=0)
        emb_refused, ray_refused = by_turns_ms([refused(embedded.continue_), refused(replicas.continue_)], bad, 100)
        emb_small, ray_small = by_turns_ms([embedded.continue_, replicas.continue_], small, 60)
        ray_rate, ray_p95 = throughput(replicas.continue_, reqs, args.clients)
        load = os.getloadavg()[0]
    finally:
        ray_serve.stop()

    print(f"Ray start + {args.replicas} replicas ready: {started:.1f} s")
    print(f"memory: local Ray {len(procs)} processes RSS {rss:.0f} MB (PSS {pss:.0f} MB); "
          f"{len(rep)} replicas RSS {sum(r for r, _ in rep):.0f} MB (PSS {sum(s for _, s in rep):.0f} MB); "
          f"this process (embedded service, models loaded) RSS {own_rss:.0f} MB")
    print(f"a refused Continue (the handle's round trip), one at a time: embedded {emb_refused:.2f} ms, "
          f"through the handle {ray_refused:.1f} ms")
    print(f"Continue 1 bar x 1, one at a time, by turns: embedded {emb_small:.1f} ms, through the handle "
          f"{ray_small:.1f} ms ({ray_small - emb_small:+.1f} ms a call)")
    print(f"Continue 8 bars x 4, {args.clients} clients, {args.calls} calls: embedded {emb_rate:.1f} req/s "
          f"(p95 {emb_p95:.2f} s); {args.replicas} replicas {ray_rate:.1f} req/s (p95 {ray_p95:.2f} s); "
          f"served per replica {dict(replicas.served)}; load average {load:.1f}")


if __name__ == "__main__":
    main()
