"""The models on Ray Serve replicas (musicgen_app/deploy/ray_serve.py): the client's retry and messages
(a fake handle, fast), then two replicas of the debug model on a local Ray (marked e2e: a Ray start
costs ~10 s), then the app itself with --replicas 2. Needs the Ray extra (requirements-ray.txt,
installed by `make test`); skipped without it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray extra is not installed: pip install -r requirements-ray.txt")

from ray.exceptions import ActorDiedError, GetTimeoutError  # noqa: E402

from musicgen_app.deploy import ray_serve  # noqa: E402
from musicgen_app.deploy.ray_serve import ReplicaError, ReplicatedService, Served  # noqa: E402
from musicgen_app.errors import RequestError  # noqa: E402
from musicgen_app.io.examples import example_path  # noqa: E402
from musicgen_app.io.importer import load_melody  # noqa: E402
from musicgen_app.service import ContinueRequest, InterpolateRequest, MelodyService, SampleRequest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def waltz():
    return load_melody(example_path("Waltz (3/4, MIDI)")).melody


@pytest.fixture(scope="module")
def embedded():
    return MelodyService.debug()


# -- the client, on a fake handle -------------------------------------------------------------------
class FakeResponse:
    def __init__(self, outcome):
        self.outcome, self.cancelled = outcome, False

    def result(self, timeout_s=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def cancel(self):
        self.cancelled = True


class FakeHandle:
    """Answers each call with the next outcome (an exception is raised) and keeps the arguments."""

    def __init__(self, *outcomes):
        self.outcomes, self.calls, self.responses = list(outcomes), [], []

    def __getattr__(self, method):
        handle = self

        class Method:
            @staticmethod
            def remote(*args):
                handle.calls.append((method, args))
                handle.responses.append(FakeResponse(handle.outcomes.pop(0)))
                return handle.responses[-1]

        return Method


def test_a_call_whose_replica_died_is_retried_with_the_seed_drawn_on_the_face(waltz):
    handle = FakeHandle(ActorDiedError(), Served("result", None, "r2", 12))
    service = ReplicatedService(handle)
    assert service.continue_(ContinueRequest(waltz, bars=2)) == "result"
    (m1, (first,)), (m2, (second,)) = handle.calls
    assert m1 == m2 == "continue_" and first.seed is not None and second == first  # the same seed both times
    assert service.retries == 1 and service.served == {"r2": 1}


def test_a_call_lost_twice_or_unanswered_is_a_clear_message(waltz):
    service = ReplicatedService(FakeHandle(ActorDiedError(), ActorDiedError()))
    with pytest.raises(ReplicaError, match="lost this request twice.*Try again"):
        service.sample(SampleRequest(count=1))
    handle = FakeHandle(GetTimeoutError())
    with pytest.raises(ReplicaError, match="no answer within 7 s"):
        ReplicatedService(handle, timeout_s=7).interpolate(InterpolateRequest(waltz, waltz))
    assert handle.responses[0].cancelled and len(handle.calls) == 1  # a slow call is not sent twice


def test_a_refusal_from_a_replica_is_raised_as_itself_and_not_retried(waltz):
    handle = FakeHandle(Served(None, RequestError("Bars 99 is out of range"), "r1", 11))
    with pytest.raises(RequestError, match="Bars 99"):
        ReplicatedService(handle).continue_(ContinueRequest(waltz, seed=3))
    assert len(handle.calls) == 1


# -- two replicas on a local Ray --------------------------------------------------------------------
def _children(pid: int) -> set[int]:
    """Every living descendant of ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p} - found
        found |= kids
        todo += kids
    return found


def _listening(pids: set[int]) -> list[str]:
    """The TCP addresses that ``pids`` listen on, as 'address:port (pid)'."""
    inodes = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            continue
    out = []
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                host, port = f[1].split(":")
                raw = bytes.fromhex(host)  # 32-bit words in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
                addr = socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, raw)
                out.append(f"{addr}:{int(port, 16)} ({inodes[f[9]]})")
    return out


def _loopback(entry: str) -> bool:
    return entry.startswith(("127.", "::1:", "::ffff:127."))


@pytest.mark.e2e
class TestTwoReplicas:
    @pytest.fixture(scope="class")
    def replicas(self):
        # two requests a replica at most, so that four at once are two on each (the app's: 8)
        service = ray_serve.start(2, debug=True, timeout_s=30, max_ongoing=2)
        try:
            yield service
        finally:
            ray_serve.stop()

    def test_ray_listens_on_127_0_0_1_only(self, replicas):
        listening = _listening(_children(os.getpid()))
        assert listening and all(_loopback(a) for a in listening), listening

    def test_both_replicas_serve_and_give_what_the_embedded_service_gives(self, replicas, embedded, waltz):
        reqs = [ContinueRequest(waltz, bars=4, variations=2, seed=s, ending="free") for s in range(8)]
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(replicas.continue_, reqs))
        assert [r.melodies for r in results] == [embedded.continue_(q).melodies for q in reqs]
        assert [r.seed for r in results] == list(range(8))
        assert len(replicas.served) == 2, replicas.served  # four at a time, at most two on one replica
        morph = InterpolateRequest(waltz, waltz.transpose(5), steps=3, seed=2)
        assert replicas.interpolate(morph).morph == embedded.interpolate(morph).morph
        sample = SampleRequest(count=2, seed=4)
        assert replicas.sample(sample).melodies == embedded.sample(sample).melodies

    def test_a_style_learnt_on_a_replica_samples_on_any(self, replicas, embedded, waltz):
        jig = load_melody(example_path("Jig (6/8, MIDI)")).melody
        style = replicas.learn_style([waltz, jig])
        req = SampleRequest(count=2, seed=1, sampler="style", style=style)
        assert replicas.sample(req).melodies == embedded.sample(req).melodies

    def test_a_refusal_comes_back_as_our_error(self, replicas, waltz):
        with pytest.raises(RequestError, match="Key lock 'H major' is not one of the choices"):
            replicas.continue_(ContinueRequest(waltz, key_lock="H major"))

    def test_a_replica_killed_mid_request_loses_nothing_and_is_replaced(self, replicas, embedded, waltz):
        # Sixteen long requests, two at a time on each replica (max_ongoing=2), the rest waiting at the
        # handle; one replica is killed 0.3 s in. With the debug model a request is short, and in 3 of
        # 13 runs the kill lost no request of ours (none was running on that replica just then), so
        # no retry was needed: the kill is tried up to 6 times before a retry must have happened (with
        # 3 tries a clean-clone run once saw no retry at all: 3 misses in a row).
        reqs = [ContinueRequest(waltz, bars=32, variations=8, seed=10 + s) for s in range(16)]
        short = ContinueRequest(waltz, bars=1, variations=1, seed=0, ending="free")
        known = set(replicas.served)
        for _ in range(6):
            deadline = time.monotonic() + 30
            while len(_alive(replicas.pids)) < 2 and time.monotonic() < deadline:  # both replicas' pids known
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(replicas.continue_, [short] * 4))
            known |= set(replicas.served)
            with ThreadPoolExecutor(16) as pool:
                futures = [pool.submit(replicas.continue_, r) for r in reqs]
                time.sleep(0.3)
                os.kill(min(_alive(replicas.pids)), signal.SIGKILL)
                results = [f.result() for f in futures]
            for got, req in zip(results, reqs):  # nothing lost or mixed up, whether retried or not
                assert got.seed == req.seed and got.melodies == embedded.continue_(req).melodies
            if replicas.retries:
                break
        assert replicas.retries >= 1
        # Serve starts a new replica within seconds; until then the other one serves
        deadline = time.monotonic() + 30
        while not set(replicas.served) - known and time.monotonic() < deadline:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(replicas.continue_, [short] * 4))
            time.sleep(0.5)
        assert set(replicas.served) - known, f"no new replica after 30 s: {replicas.served}"


def _alive(pids: dict[str, int]) -> set[int]:
    """The replicas' process ids that are still running."""
    return {pid for pid in pids.values() if Path(f"/proc/{pid}").exists()}


# -- the app with --replicas 2 ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica_pids(app_pid: int) -> list[int]:
    pids = []
    for pid in _children(app_pid):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ServeReplica"):
                pids.append(pid)
        except OSError:
            pass
    return sorted(pids)


@pytest.mark.e2e
def test_the_app_on_two_replicas_keeps_serving_when_one_is_killed(tmp_path):
    from gradio_client import Client

    port, log = _free_port(), tmp_path / "app.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False")
    for name in ("GRADIO_TEMP_DIR", "MUSICGEN_DEBUG_MODEL", "MUSICGEN_REPLICAS", "MUSICGEN_RAY_ADDRESS"):
        env.pop(name, None)
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--debug-model", "--no-mcp", "--replicas", "2"]
    with open(log, "wb") as out:
        app = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert app.poll() is None, f"app.py exited with {app.returncode}:\n{log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(url + "gradio_api/info", timeout=5):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"app.py did not answer in 120 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
        replicas = _replica_pids(app.pid)
        assert len(replicas) == 2, replicas
        listening = _listening(_children(app.pid) | {app.pid})
        assert all(_loopback(a) for a in listening), listening
        client = Client(url, verbose=False)

        def call(seed: int):
            return client.predict(notes="4/4 c4 d e f g2 g", bars=4, variations=4, seed=seed, api_name="/continue")

        before = call(1)
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(call, 1) for _ in range(4)]
            time.sleep(0.3)
            os.kill(replicas[0], signal.SIGKILL)
            after = [f.result() for f in futures]  # retried on the other replica: none fails
        assert all(a[3]["seed"] == 1 for a in after)
        midi = [Path(p).read_bytes() for p in before[0]]
        assert all([Path(p).read_bytes() for p in a[0]] == midi for a in after)
        assert call(2)[3]["seed"] == 2
        ray_pids = ray_serve._ray_processes(app.pid)
    finally:
        app.terminate()  # SIGTERM: the app's own handler exits, and its local Ray with it
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
    assert app.returncode == 0, log.read_text()[-3000:]
    # The replicas, the raylet, the GCS and Ray's agents end with the app (web/lifecycle.on_stop runs
    # ray_serve.stop before the process ends)
    deadline = time.monotonic() + 15
    while True:
        left = {p: _name(p) for p in ray_pids if _name(p)}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"Ray's processes outlived the app: {left}"


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""
