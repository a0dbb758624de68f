"""Soak: rounds of mixed requests against the real server; RSS and temp folder size must plateau.

    PYTHONPATH=. .venv/bin/python bench/bench_soak.py [--rounds 3] [--per-round 100] [--clients 1]
                                                      [--debug-model]

First, what each kind of work costs in resident memory the first time it is asked for (the server
loads fonts, libraries and models lazily): one request of each kind in turn, with the server's RSS
after each. Then each round sends ``--per-round`` requests from ``--clients`` threads (Continue from
an example, from an upload, from typed notes and in another SoundFont, Interpolate, Generate, a
refused upload, and Continue over plain HTTP as curl calls it: a new Gradio session each time), then
prints the server's resident memory (from /proc) and the size of its temp folder. Growth should
stop after the first round: inputs' audio is cached up to 64 MB and the temp store is bounded
(``tempfiles.MAX_BYTES``: 1 GB, or MUSICGEN_TEMP_MAX_MB, and one hour). Loopback only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
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
    p.add_argument("--clients", type=int, default=1, help="threads sending each round's requests")
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
    recording = handle_file(str(sung_example(Path(tempfile.mkdtemp(prefix="bench-soak-")))))
    clips = [handle_file(str(ROOT / "musicgen_app" / "examples" / n)) for n in ("waltz_3-4.mid", "jig_6-8.mid")]
    from musicgen_app import render

    other_font = list(render.list_soundfonts())[-1]  # the server reads the same folder; the default is first
    first_use = [
        ("Continue 8 x 4 from an example (model, default SoundFont)",
         lambda: client.predict(example="Folk tune (2/4, ABC)", bars=8, variations=4, api_name="/continue")),
        ("Continue in another SoundFont", lambda: client.predict(example="Folk tune (2/4, ABC)", bars=2, variations=1,
                                                                 soundfont=other_font, api_name="/continue")),
        ("Continue from a MIDI upload", lambda: client.predict(melody_file=waltz, bars=4, variations=2,
                                                               api_name="/continue")),
        ("Interpolate", lambda: client.predict(a_example="Jig (6/8, MIDI)", b_example="Waltz (3/4, MIDI)", steps=5,
                                               api_name="/interpolate")),
        ("Generate 4 (corpus bank)", lambda: client.predict(count=4, api_name="/generate")),
        ("Generate 4 in the style of 2 clips", lambda: client.predict(count=4, sampler="style", clips=clips,
                                                                      api_name="/generate")),
        ("Continue from a recording (transcribed)", lambda: client.predict(melody_file=recording, bars=2,
                                                                           variations=1, api_name="/continue")),
        ("Continue over plain HTTP", curl),
    ]
    actions = [
        lambda: client.predict(example="Folk tune (2/4, ABC)", bars=8, variations=4, api_name="/continue"),
        lambda: client.predict(melody_file=waltz, bars=4, variations=2, api_name="/continue"),
        lambda: client.predict(notes="4/4 c4 d e f g2 g", bars=4, variations=1, soundfont=other_font,
                               api_name="/continue"),
        lambda: client.predict(a_example="Jig (6/8, MIDI)", b_example="Waltz (3/4, MIDI)", steps=5,
                               api_name="/interpolate"),
        lambda: client.predict(count=4, api_name="/generate"),
        lambda: client.predict(melody_file=bad, api_name="/continue"),
        curl,
    ]
    try:
        print(f"server pid {proc.pid}: RSS {rss_mb(proc.pid):.0f} MB after start")
        print("first use of each kind of work (RSS after it, and its increase):")
        before = rss_mb(proc.pid)
        for name, fn in first_use:
            fn()
            now = rss_mb(proc.pid)
            print(f"  {name:<58} {now:6.0f} MB  (+{now - before:.0f})")
            before = now
        for r in range(args.rounds):
            t0 = time.perf_counter()
            failures = run_round(actions, args.per_round, args.clients, AppError)
            roots = [d.parent for d in Path("/tmp").glob("musicgen-*/owner.pid")
                     if d.read_text().strip() == str(proc.pid)]
            size = folder_mb(roots[0]) if roots else float("nan")
            print(f"round {r + 1}: {args.per_round} requests from {args.clients} clients in "
                  f"{time.perf_counter() - t0:.0f} s, {failures} refused (1 in 7 is a damaged file on purpose), "
                  f"RSS {rss_mb(proc.pid):.0f} MB, temp folder {size:.0f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    left = [d for d in Path("/tmp").glob("musicgen-*/owner.pid") if d.read_text().strip() == str(proc.pid)]
    print(f"after SIGTERM: {'temp folder left behind' if left else 'temp folder removed'}")


def run_round(actions, n: int, clients: int, refused) -> int:
    """``n`` requests, the i-th of kind ``actions[i % len]``, from ``clients`` threads -> how many were refused."""
    jobs, lock, failures = iter(range(n)), threading.Lock(), [0]

    def client():
        while True:
            with lock:
                i = next(jobs, None)
            if i is None:
                return
            try:
                actions[i % len(actions)]()
            except refused:
                with lock:
                    failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures[0]


def sung_example(folder: Path) -> Path:
    """A WAV of the folk-tune example sung by the synthetic voice the transcription tests use."""
    import soundfile

    from musicgen_app.io.examples import example_path
    from musicgen_app.io.importer import load_melody
    from musicgen_app.training.audio_set import SAMPLE_RATE, sing

    melody = load_melody(example_path("Folk tune (2/4, ABC)")).melody
    path = folder / "sung.wav"
    soundfile.write(path, sing(melody.slice(0, 8 * melody.bar_steps)), SAMPLE_RATE)
    return path


if __name__ == "__main__":
    main()
