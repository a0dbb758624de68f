"""Soak: rounds of mixed requests against the real server; RSS and temp folder size must plateau.

    PYTHONPATH=. .venv/bin/python bench/bench_soak.py [--rounds 3] [--per-round 100] [--debug-model]

Each round sends ``--per-round`` requests in turn (Continue from an example, from an upload and from
typed notes, Interpolate, Generate, a refused upload, and Continue over plain HTTP as curl calls it:
a new Gradio session each time), then prints the server's resident memory
(from /proc) and the size of its temp folder. Growth should stop after the first round: inputs'
audio is cached up to 64 MB and the temp store is bounded (``tempfiles.MAX_BYTES``: 1 GB, or
MUSICGEN_TEMP_MAX_MB, and one hour). Loopback only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_app import PlainContinue, free_port, start_server  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--per-round", type=int, default=100)
    p.add_argument("--debug-model", action="store_true")
    args = p.parse_args()
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-soak-{port}.log"
    proc = start_server(args.debug_model, port, log)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    waltz = handle_file(str(ROOT / "musicgen_app" / "examples" / "waltz_3-4.mid"))
    bad = handle_file(str(ROOT / "tests" / "data" / "corrupt" / "truncated.mid"))
    curl = PlainContinue(f"http://127.0.0.1:{port}/", notes="4/4 c4 d e f g2 g", bars=4, variations=1)
    actions = [
        lambda: client.predict(example="Folk tune (2/4, ABC)", bars=8, variations=4, api_name="/continue"),
        lambda: client.predict(melody_file=waltz, bars=4, variations=2, api_name="/continue"),
        lambda: client.predict(notes="4/4 c4 d e f g2 g", bars=4, variations=1, api_name="/continue"),
        lambda: client.predict(a_example="Jig (6/8, MIDI)", b_example="Waltz (3/4, MIDI)", steps=5,
                               api_name="/interpolate"),
        lambda: client.predict(count=4, api_name="/generate"),
        lambda: client.predict(melody_file=bad, api_name="/continue"),
        curl,
    ]
    try:
        print(f"server pid {proc.pid}: RSS {rss_mb(proc.pid):.0f} MB after start")
        for r in range(args.rounds):
            t0, failures = time.perf_counter(), 0
            for i in range(args.per_round):
                try:
                    actions[i % len(actions)]()
                except AppError:
                    failures += 1
            roots = [d.parent for d in Path("/tmp").glob("musicgen-*/owner.pid")
                     if d.read_text().strip() == str(proc.pid)]
            size = folder_mb(roots[0]) if roots else float("nan")
            print(f"round {r + 1}: {args.per_round} requests in {time.perf_counter() - t0:.0f} s, "
                  f"{failures} refused (1 in 7 is a damaged file on purpose), RSS {rss_mb(proc.pid):.0f} MB, "
                  f"temp folder {size:.0f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    left = [d for d in Path("/tmp").glob("musicgen-*/owner.pid") if d.read_text().strip() == str(proc.pid)]
    print(f"after SIGTERM: {'temp folder left behind' if left else 'temp folder removed'}")


if __name__ == "__main__":
    main()
