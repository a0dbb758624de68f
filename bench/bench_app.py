"""Click -> audio through the real server: start app.py, call its API with gradio_client, time it.

    PYTHONPATH=. .venv/bin/python bench/bench_app.py [--debug-model] [--calls 20] [--clients 16] [--page 20]

Measures, per action, the wall time of one ``client.predict`` (queue, model, rendering, writing the
files) plus fetching the audio files, as the page does before it can play them; MIDI and other
downloads are fetched only when clicked, so they are not counted:

* Continue: 8 bars x 4 variations from the 4/4 folk-tune example   goal: median <= 0.3 s on 2 cores
* Interpolate: two 4-bar clips, 7 steps
* Generate: 8 melodies
* The page (``--page N``): Continue clicked in chromium, until the first variation can play
  and until all four can, timed in the page from the click event   goal: median <= 0.4 s to the first
  to the player's new file; the next click ``--page-pause`` seconds later (1 s: a musician listens)
* Load: ``--clients`` concurrent clients x ``--per-client`` Continue requests each, twice: as plain
  HTTP (Gradio's documented ``/gradio_api/call/continue`` POST + event stream, as curl would) and
  with gradio_client (as a Python script would call it), each after one client alone, for the
  ratio of throughputs. The clients run on the server's cores; gradio_client burns about 0.1
  core-second a request of them, plain HTTP far less, so the plain run is nearer to what the server
  does for users on their own machines. Printed with each: the server's CPU per request and its
  model engine thread's share (Linux /proc).
                                    goal: 0 failures, p95 <= 2 s, >= 8 req/s, 16 clients >= 2.5x one,
                                          model CPU <= 60 ms a request

Loopback only; every loop is bounded. The server runs with the real checkpoints unless
--debug-model is given (or they are missing, which is then printed).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLIP_A = "4/4 c4 d e f g2 e c4 d e f g1"  # 4 bars of typed tinyNotation
CLIP_B = "4/4 g4 f e d c2 e g4 a b c' g1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(debug: bool, port: int, log: Path, replicas: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)]
    if debug:
        cmd.append("--debug-model")
    if replicas:
        cmd += ["--replicas", str(replicas)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("GRADIO_TEMP_DIR", None)
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"app.py exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=5):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"app.py did not start within 240 s; see {log}")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


IDLE_S = 10


def cpu_seconds(pid: int, thread: str | None = None) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc); with ``thread``, of its threads
    of that name (the engine names its thread "lstm-engine")."""
    stats = [Path(f"/proc/{pid}/stat")] if thread is None else [
        t / "stat" for t in Path(f"/proc/{pid}/task").iterdir() if (t / "comm").read_text().strip() == thread]
    total = 0
    for stat in stats:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def line(name: str, times: list[float], goal: str = "") -> None:
    med, p95 = statistics.median(times), pct(times, 95)
    print(f"{name:38} median {med:6.3f} s   p95 {p95:6.3f} s   n={len(times):3}   {goal}")


AUDIO_SRC = ("n => { const a = document.querySelector(`#variation-${n}-audio [data-testid=download-link]`); "
             "return a ? a.href : ''; }")


# Timed in the page (performance.now): from the click event to the moment a variation's player
# holds a new file, so Playwright's own round trips (its click's checks, its polling) are not counted.
PAGE_CLOCK = """() => {
  window.__clicked = null; window.__got = {};
  document.querySelector('#continue-go').addEventListener('click', () => {
    window.__clicked = performance.now(); window.__got = {}; }, true);
  new MutationObserver(() => {
    if (window.__clicked === null) return;
    for (const n of [1, 4]) {
      const a = document.querySelector(`#variation-${n}-audio [data-testid=download-link]`);
      const href = a ? a.href : '';
      if (href && href !== window.__was[n] && !(n in window.__got))
        window.__got[n] = performance.now() - window.__clicked;
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
}"""


def page_clicks(url: str, n: int, pause: float) -> None:
    """What a musician waits for: Continue clicked in the page until the first variation's player has
    the new file, and until every variation's player has (the second pass); the next click ``pause``
    seconds after the last player got its file (0: at once, while the page still draws the last
    click's players and scores). The browser runs on the same cores as the server."""
    from playwright.sync_api import sync_playwright

    first, every = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector("#continue-go")
        page.evaluate(PAGE_CLOCK)
        for i in range(n + 1):  # the first click warms up
            page.evaluate(f"() => {{ window.__was = {{1: ({AUDIO_SRC})(1), 4: ({AUDIO_SRC})(4)}}; }}")
            page.click("#continue-go")
            page.wait_for_function("() => 4 in window.__got", polling=5)
            got = page.evaluate("() => window.__got")
            if i:
                first.append(got["1"] / 1000)
                every.append(got["4"] / 1000)
            time.sleep(pause)
        browser.close()
    print(f"-- the page, {n} Continue clicks (8 bars x 4 variations, the default example), "
          f"{pause:g} s between a click's last player and the next click")
    line("click -> first variation playable", first, "goal: median <= 0.4 s")
    line("click -> all four playable", every)


def fetch_files(http: httpx.Client, files) -> None:
    """Download result files (a FileData dict or a list of them) as the page's players do."""
    for f in files if isinstance(files, list) else [files]:
        r = http.get(f["url"])
        r.raise_for_status()
        assert len(r.content) > 44


class PlainContinue:
    """Continue over plain HTTP: POST the inputs, read the result from the event stream, fetch the
    audio. Every input is sent, the defaults taken from the server's /gradio_api/info."""

    def __init__(self, url: str, **inputs):
        self.http = httpx.Client(base_url=url, timeout=120)
        params = self.http.get("/gradio_api/info").json()["named_endpoints"]["/continue"]["parameters"]
        self.data = [inputs.get(p["parameter_name"], p.get("parameter_default")) for p in params]
        self.variations = self.data[[p["parameter_name"] for p in params].index("variations")]

    def __call__(self) -> None:
        event = self.http.post("/gradio_api/call/continue", json={"data": self.data}).json()["event_id"]
        kind = result = None
        with self.http.stream("GET", f"/gradio_api/call/continue/{event}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("complete", "error"):
                    result = json.loads(line[6:])
                    break
        if kind != "complete" or not result:
            raise RuntimeError(f"/continue ended with {kind}: {str(result)[:200]}")
        audio = result[2]
        assert len(audio) == self.variations
        fetch_files(self.http, audio)


def load(name: str, make_call, clients: int, per_client: int, pid: int) -> float:
    """``clients`` threads, each calling its own ``make_call()`` ``per_client`` times in a row ->
    the throughput (req/s)."""
    times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker():
        try:
            call = make_call()
        except Exception as exc:  # a client that cannot even connect counts all its requests as failed
            with lock:
                failures.extend([repr(exc)[:200]] * per_client)
            return
        for _ in range(per_client):
            t = time.perf_counter()
            try:
                call()
                with lock:
                    times.append(time.perf_counter() - t)
            except Exception as exc:
                with lock:
                    failures.append(repr(exc)[:200])

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    server, engine = cpu_seconds(pid), cpu_seconds(pid, "lstm-engine")
    t, cpu = time.perf_counter(), time.process_time()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=900)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    server, engine = cpu_seconds(pid) - server, cpu_seconds(pid, "lstm-engine") - engine
    print(f"-- {clients} concurrent clients x {per_client} Continue requests, {name}")
    if times:
        line("Continue under load", times, "goal: p95 <= 2 s" if clients > 1 else "")
    total = clients * per_client
    rate = len(times) / wall
    print(f"{'failures':38} {len(failures)} of {total}   goal: 0   throughput {rate:.2f} req/s over {wall:.1f} s"
          + ("   goal: >= 8 req/s" if clients > 1 else ""))
    done = max(len(times), 1)
    print(f"{'server CPU a request':38} {1000 * server / done:.0f} ms, of which the model engine's thread "
          f"{1000 * engine / done:.0f} ms   goal (model): <= 60 ms")
    # the clients run on the server's machine: what they burn, the server does not get
    cores = os.cpu_count() or 1
    print(f"{'clients own CPU':38} {cpu:.1f} s of {wall * cores:.1f} core-seconds ({cpu / (wall * cores) * 100:.0f} %)")
    for f in sorted(set(failures))[:5]:
        print("   ", f)
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--debug-model", action="store_true")
    p.add_argument("--replicas", type=int, default=0,
                   help="the models on N local Ray Serve replicas (server CPU figures then count the face only)")
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--clients", type=int, default=16, help="0: no load runs")
    p.add_argument("--per-client", type=int, default=10)
    p.add_argument("--page", type=int, default=0, metavar="N",
                   help="also click Continue N times in the page (Playwright + Debian's chromium)")
    p.add_argument("--page-pause", type=float, default=1.0, metavar="S",
                   help="seconds from a click's last player to the next click, as a musician listens (0: at once)")
    args = p.parse_args()

    from gradio_client import Client

    real = all((ROOT / "checkpoints" / f).is_file() for f in ("lstm.safetensors", "vae.safetensors"))
    debug = args.debug_model or not real
    if not real and not args.debug_model:
        print("checkpoints/*.safetensors missing: benchmarking the debug model instead")
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-app-")) / "app.log"
    t0 = time.perf_counter()
    proc = start_server(debug, port, log, args.replicas)
    url = f"http://127.0.0.1:{port}/"
    print(f"server {'debug model' if debug else 'real checkpoints'} up in {time.perf_counter() - t0:.1f} s "
          f"({os.cpu_count()} cores); log {log}")
    try:
        # Like the page: the audio is fetched (to play it); MIDI and the rest only when clicked.
        client = Client(url, verbose=False, download_files=False)
        http = httpx.Client(base_url=url)

        def cont(c=client):
            _, _, audio, _ = c.predict(example="Folk tune (2/4, ABC)", bars=8, variations=4,
                                       temperature=1.0, api_name="/continue")
            assert len(audio) == 4
            fetch_files(http, audio)

        def interp():
            *_, audio, _ = client.predict(a_notes=CLIP_A, b_notes=CLIP_B, steps=7, temperature=0.0,
                                          api_name="/interpolate")
            fetch_files(http, audio)

        def gen():
            midi, _, audio, _ = client.predict(count=8, api_name="/generate")
            assert len(midi) == 8
            fetch_files(http, audio)

        for fn in (cont, interp, gen):  # warm-up: first font load, first model call
            fn()
        idle = cpu_seconds(proc.pid)
        time.sleep(IDLE_S)
        print(f"server idle, no page open: {100 * (cpu_seconds(proc.pid) - idle) / IDLE_S:.1f} % of a core "
              f"over {IDLE_S} s (an app a musician keeps open)")
        print(f"-- sequential, {args.calls} calls each")
        line("Continue 8 bars x 4 variations", timed(cont, args.calls), "goal: median <= 0.3 s")
        line("Interpolate 4 bars x 7 steps", timed(interp, args.calls))
        line("Generate 8 melodies", timed(gen, args.calls))

        if args.page:
            page_clicks(url, args.page, args.page_pause)

        def gradio_client_call():
            c = Client(url, verbose=False, download_files=False)
            return lambda: cont(c)

        def plain():
            return PlainContinue(url, example="Folk tune (2/4, ABC)", bars=8, variations=4, temperature=1.0)

        for name, make in (("plain HTTP", plain), ("gradio_client", gradio_client_call)) if args.clients else ():
            one = load(name, make, 1, args.per_client, proc.pid)
            many = load(name, make, args.clients, args.per_client, proc.pid)
            print(f"{'throughput, ' + str(args.clients) + ' clients / 1':38} {many / one:.2f}x   goal: >= 2.5x")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
