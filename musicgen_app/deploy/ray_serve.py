"""MelodyService on N Ray Serve replicas, and the client that the Studio calls in its place.

    service = start(2, debug=True)            # a local Ray on 127.0.0.1, two replicas
    service = start(4, address="auto")        # an existing Ray cluster (head and workers)
    Studio.create(service, store)             # the faces work as with an embedded MelodyService

Each replica (:class:`MelodyReplica`) loads the checkpoints once and runs one torch thread; it takes
the service's request objects and returns its result objects (frozen Melodies, pickled by Ray).
Files stay on the face: MIDI, WAV and piano rolls are written by the app that serves them, into its
own size-capped temp store, so that nothing depends on a replica's disk when replicas run on other
machines, and the page's "first variation first" rendering order stays the face's choice.

:class:`ReplicatedService` has the methods the Studio calls on a MelodyService (``continue_``,
``interpolate``, ``sample``, ``learn_style``). A request without a seed gets one drawn here, so that
the one retry a call gets when its replica dies (SIGKILL, a lost machine: Ray does not retry such a
call) gives the result the first try would have given. A second loss, or no answer within
``timeout_s``, is a :class:`ReplicaError` that says so.

Ray's own processes listen on the node's address: a local Ray is made a one-node cluster on
127.0.0.1 (no other machine may join), and each replica's inter-deployment gRPC server, which Ray
binds to every interface, is bound to 127.0.0.1 as well.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from pathlib import Path

import ray
import torch
from ray import serve
from ray._private import ray_constants
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError
from ray.serve.exceptions import ReplicaUnavailableError

from ..errors import MusicgenError
from ..melody import Melody
from ..models import style
from ..models.style import StyleModel
from ..paths import CHECKPOINTS
from ..service import (
    ContinueRequest,
    ContinueResult,
    InterpolateRequest,
    InterpolateResult,
    MelodyService,
    SampleRequest,
    SampleResult,
)
from ..settings import draw_seed

log = logging.getLogger(__name__)

APP_NAME = "melody"
# Requests a replica takes at once. Its service's engine steps the rows of all of them together
# (service/engine.py), so more at once cost little more than one; Serve's default (5) would cap that
# batch. 2 replicas x 8 is the app's 16 requests at once.
MAX_ONGOING = 8
HEALTH_CHECK_S = 2.0
REAP_AFTER_S = 3.0  # how long stop() waits for a local Ray's processes to end by themselves
TIMEOUT_S = 60.0  # one call's answer, from a replica, before the face gives up on it
LOST = (ActorDiedError, ActorUnavailableError, ReplicaUnavailableError)


class ReplicaError(MusicgenError):
    """The model replicas did not answer: one died twice over, or none answered in time."""


@dataclasses.dataclass(frozen=True)
class Served:
    """A replica's answer: the result, or our exception that refused the request; and which replica
    (and process) answered. A refusal travels as a value: it is the asker's error, not the replica's."""

    result: object
    refusal: MusicgenError | None
    replica: str
    pid: int


class MelodyReplica:
    """One Ray Serve replica: a MelodyService of its own, loaded once."""

    def __init__(self, debug: bool = False, checkpoints: str | None = None, loopback: bool = False):
        if loopback:
            _bind_replica_grpc_to_loopback()
        torch.set_num_threads(1)
        self.service = MelodyService.debug() if debug else MelodyService.from_checkpoints(checkpoints or CHECKPOINTS)
        self.name = serve.get_replica_context().replica_id.unique_id
        threading.Thread(target=style.warm_up, name="style-warm-up", daemon=True).start()

    def continue_(self, req: ContinueRequest) -> Served:
        return self._serve(self.service.continue_, req)

    def interpolate(self, req: InterpolateRequest) -> Served:
        return self._serve(self.service.interpolate, req)

    def sample(self, req: SampleRequest) -> Served:
        return self._serve(self.service.sample, req)

    def learn_style(self, melodies: list[Melody], seed: int) -> Served:
        return self._serve(self.service.learn_style, melodies, None, seed)

    def _serve(self, method, *args) -> Served:
        try:
            return Served(method(*args), None, self.name, os.getpid())
        except MusicgenError as exc:
            return Served(None, exc, self.name, os.getpid())


def _bind_replica_grpc_to_loopback() -> None:
    """Ray Serve 2.60 binds each replica's inter-deployment gRPC server to "[::]:0" (every interface)
    after the replica's __init__; bind it to 127.0.0.1 instead. tests/test_ray_serve.py checks that
    no process of a local Ray listens beyond 127.0.0.1, so a Ray that changes this is noticed."""
    from ray.serve._private import replica

    bind = replica.add_port_to_grpc_server
    if getattr(bind, "loopback", False):
        return

    def loopback_bind(server, address: str):
        return bind(server, address.replace("[::]", "127.0.0.1", 1))

    loopback_bind.loopback = True
    replica.add_port_to_grpc_server = loopback_bind


def _seeded(req):
    """The request with a seed: its own, else one drawn as the service would draw it."""
    if req.seed is not None:
        return req
    return dataclasses.replace(req, seed=draw_seed())


class ReplicatedService:
    """What the Studio calls instead of a MelodyService: each call goes to a replica through
    ``handle`` (a Ray Serve DeploymentHandle of MelodyReplica) and waits at most ``timeout_s``."""

    def __init__(self, handle, timeout_s: float = TIMEOUT_S):
        self.handle = handle
        self.timeout_s = timeout_s
        self.served: collections.Counter[str] = collections.Counter()  # calls answered, per replica
        self.pids: dict[str, int] = {}  # replica -> its process id (on its machine)
        self.retries = 0  # calls tried again after their replica died
        self._lock = threading.Lock()

    def continue_(self, req: ContinueRequest) -> ContinueResult:
        return self._call("continue_", _seeded(req))

    def interpolate(self, req: InterpolateRequest) -> InterpolateResult:
        return self._call("interpolate", _seeded(req))

    def sample(self, req: SampleRequest) -> SampleResult:
        return self._call("sample", _seeded(req))

    def learn_style(self, melodies: list[Melody], progress=None, seed: int = 0) -> StyleModel:
        """As MelodyService.learn_style; the fit runs on a replica, so ``progress`` hears only its start."""
        if progress is not None:
            progress(0.05, "Learning the style")
        return self._call("learn_style", list(melodies), seed)

    def _call(self, method: str, *args):
        for attempt in (1, 2):
            response = getattr(self.handle, method).remote(*args)
            try:
                served = response.result(timeout_s=self.timeout_s)
            except LOST as exc:
                log.warning("%s: its replica died (%s); %s", method, type(exc).__name__,
                            "trying once more" if attempt == 1 else "giving up")
                with self._lock:
                    self.retries += attempt == 1
                continue
            except (GetTimeoutError, TimeoutError):
                response.cancel()
                raise ReplicaError(f"The model server gave no answer within {self.timeout_s:.0f} s; try again, "
                                   "or ask for fewer bars or variations.") from None
            with self._lock:
                self.served[served.replica] += 1
                self.pids[served.replica] = served.pid
            if served.refusal is not None:
                raise served.refusal
            return served.result
        raise ReplicaError("The model server lost this request twice (its replicas stopped while working on "
                           "it); nothing was written. Try again in a few seconds.")


def deployment(replicas: int, *, debug: bool = False, checkpoints: str | Path | None = None, loopback: bool = False,
               max_ongoing: int = MAX_ONGOING):
    """The Serve application: ``replicas`` MelodyReplicas, one CPU and ``max_ongoing`` requests each."""
    return serve.deployment(
        MelodyReplica, name="MelodyReplica", num_replicas=replicas, max_ongoing_requests=max_ongoing,
        ray_actor_options={"num_cpus": 1}, logging_config={"log_level": "WARNING"},
        # a replica that died is noticed (and replaced) within seconds, not Serve's default ten
        health_check_period_s=HEALTH_CHECK_S,
    ).bind(debug=debug, checkpoints=None if checkpoints is None else str(checkpoints), loopback=loopback)


def start(replicas: int, *, address: str | None = None, debug: bool = False, checkpoints: str | Path | None = None,
          timeout_s: float = TIMEOUT_S, max_ongoing: int = MAX_ONGOING) -> ReplicatedService:
    """Deploy ``replicas`` replicas and return the client. ``address``: an existing Ray cluster's
    ("auto" on one of its machines); None: a local one-node Ray on 127.0.0.1, shut down with this
    process. ``max_ongoing``: requests a replica takes at once (more wait at the face's handle).
    The first replicas to load the checkpoints take a few seconds each."""
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    local = address is None
    # ray.init sets a SIGTERM handler of its own; the app's (see app.py) stays in charge
    sigterm = signal.getsignal(signal.SIGTERM)
    if not ray.is_initialized():
        if local:
            # A one-node Ray: without this, Ray replaces 127.0.0.1 by the machine's network address.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
            ray_constants.ENABLE_RAY_CLUSTER = False
            ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=max(os.cpu_count() or 1, replicas),
                     object_store_memory=100 * 2**20, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
        if local:  # before Ray's own exit hook (atexit runs the last registered first)
            atexit.register(stop, graceful=False)
    serve.start(proxy_location="Disabled", logging_config={"log_level": "WARNING"})
    app = deployment(replicas, debug=debug, checkpoints=checkpoints, loopback=local, max_ongoing=max_ongoing)
    handle = serve.run(app, name=APP_NAME, route_prefix=None)
    return ReplicatedService(handle, timeout_s)


def stop(*, graceful: bool = True) -> None:
    """Disconnect; a local Ray's processes end with it. ``graceful``: let the replicas finish first."""
    if not ray.is_initialized():
        return
    ours = _ray_processes(os.getpid())  # a local Ray's, before ray.shutdown orphans them
    try:
        if graceful:
            serve.shutdown()
    finally:
        ray.shutdown()
        # Ray's agents may wait a minute for the stopped GCS to take their last report; they have
        # nothing left to do, so they stop now.
        deadline = time.monotonic() + REAP_AFTER_S
        while (alive := [pid for pid, started in ours.items() if _started(pid) == started]) and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in alive:
            log.info("stopping Ray process %d, left after ray.shutdown", pid)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _started(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/PID/stat): with its pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _ray_processes(pid: int) -> dict[int, str]:
    """The Ray processes among the descendants of ``pid`` (raylet, GCS, agents, workers) -> their
    start times. Only Ray's: the app's other children are not ours to stop."""
    found = {}
    for child, started in _descendants(pid).items():
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::") or b"/site-packages/ray/" in cmd:
            found[child] = started
    return found


def _descendants(pid: int) -> dict[int, str]:
    """Every living descendant of ``pid`` -> its start time (from /proc; empty where there is none)."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child in [c for c, pp in parents.items() if pp == parent and c not in found]:
            if (started := _started(child)) is not None:
                found[child] = started
                todo.append(child)
    return found
