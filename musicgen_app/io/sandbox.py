"""Run a parser in a child process under a time and a memory budget.

A few kilobytes can hold minutes of work and gigabytes of memory for music21 (a small .mxl unzips
to megabytes of MusicXML; a long ABC file is slow to parse): ``bench/bench_bounds.py`` times such
files. The child is forked from a forkserver that has the importers and the transcription libraries
loaded already, so a call does not pay for importing them; it gets an RLIMIT_DATA cap of what it
started with plus its memory budget, and is killed when the time is up; the server thread that
asked only waits. A request's parses share one deadline (:func:`request_budget`), so twenty clips
get the time of two files, not of twenty.

The forkserver and each child die with their parent, even a parent killed with SIGKILL: each asks
the kernel for SIGKILL when its parent goes (``PR_SET_PDEATHSIG``). The kernel sends it when the
*thread* that started the process ends, so :func:`warm_up` starts the forkserver from the main
thread (a forkserver that went with a worker thread is started again by the next parse).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
import time
from contextvars import ContextVar

from ..errors import MusicgenError, ParseBudgetError

log = logging.getLogger(__name__)

TIME_BUDGET_SECONDS = 6.0  # wall-clock seconds a parse may take
# wall-clock seconds all the parses of one request may take together: two inputs (Interpolate's A
# and B) at their full budget each; twenty style clips share it
REQUEST_BUDGET_SECONDS = 2 * TIME_BUDGET_SECONDS
MEMORY_BUDGET_BYTES = 1024 * 2**20  # bytes a parse may add to the child's data segment (RLIMIT_DATA)
_PR_SET_PDEATHSIG = 1

_CONTEXT = mp.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["musicgen_app.io.sandbox", "musicgen_app.io.importer",
                                 "musicgen_app.io.audio_libraries"])
_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("parse_deadline", default=None)  # (when, budget)
_STOPPING = threading.Event()


class ShuttingDown(MusicgenError):
    """The server is stopping: the request was not (or not fully) done; the client may retry later."""


def _die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when the parent goes; exit now if it has gone already (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent or parent == 1:  # gone before the request took effect
        os._exit(1)


def _imported_by_forkserver() -> bool:
    """Whether this import is the forkserver's preload (``multiprocessing.forkserver.main`` imports it)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "main" and frame.f_globals.get("__name__") == "multiprocessing.forkserver":
            return True
        frame = frame.f_back
    return False


if _imported_by_forkserver():
    _die_with_parent(os.getppid())


@contextlib.contextmanager
def request_budget(seconds: float | None = None):
    """Every parse inside shares one deadline, ``seconds`` (default REQUEST_BUDGET_SECONDS) from now;
    a block inside another keeps the outer deadline."""
    if _DEADLINE.get() is not None:
        yield
        return
    seconds = REQUEST_BUDGET_SECONDS if seconds is None else seconds
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def stop() -> None:
    """The server is stopping: parses from now on are refused, and one that a signal ends is said so."""
    _STOPPING.set()


def _stopping_error() -> ShuttingDown:
    return ShuttingDown("The studio is shutting down, so reading the file was stopped; try again in a minute.")


def _data_bytes() -> int:
    """The process's data segment now (what RLIMIT_DATA counts), 0 where /proc does not say."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child(conn, fn, args, memory: int) -> None:
    _die_with_parent(os.getppid())  # the forkserver
    limit = _data_bytes() + memory  # the preloaded libraries are not the parse's to pay for
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        conn.send(("ok", fn(*args)))
    except MusicgenError as exc:
        conn.send(("error", exc))
    except MemoryError:
        conn.send(("memory", None))
    except BaseException as exc:  # report, don't die silently: the parent turns it into our error
        conn.send(("crash", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_bounded(fn, *args, what: str = "The file", seconds: float | None = None, memory: int | None = None):
    """``fn(*args)`` in a child process; its result, or its :class:`MusicgenError` raised here.

    Past ``seconds`` or ``memory`` (defaults: the module's budgets), or past the deadline of the
    :func:`request_budget` it runs in, raises :class:`ParseBudgetError`; while the server stops,
    :class:`ShuttingDown`. ``fn`` and its arguments and result must pickle (module-level function,
    plain data).
    """
    seconds = TIME_BUDGET_SECONDS if seconds is None else seconds
    memory = MEMORY_BUDGET_BYTES if memory is None else memory
    deadline, budget, shared = *(_DEADLINE.get() or (None, None)), False
    if deadline is not None and deadline - time.monotonic() < seconds:
        seconds, shared = max(deadline - time.monotonic(), 0.0), True
    if _STOPPING.is_set():
        raise _stopping_error()
    if shared and seconds <= 0:
        raise _request_over(budget)
    receive, send = _CONTEXT.Pipe(duplex=False)
    proc = _CONTEXT.Process(target=_child, args=(send, fn, args, memory), daemon=True)
    proc.start()
    send.close()
    try:
        if not receive.poll(seconds):
            log.info("parse stopped after %.1f s", seconds)
            if shared:
                raise _request_over(budget)
            raise ParseBudgetError(f"{what} took longer than {seconds:g} s to read, so it was stopped; upload a "
                                   "shorter excerpt, or export it as MIDI.")
        status, value = receive.recv()
    except EOFError:  # the child died without a word: killed by the memory cap or a signal
        status, value = "memory", None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()
    if status == "memory" and (_STOPPING.is_set() or proc.exitcode in (-signal.SIGTERM, -signal.SIGINT)):
        raise _stopping_error()  # ended by the server's stop, not by its size
    if status == "ok":
        return value
    if status == "error":
        raise value
    if status == "memory":
        raise ParseBudgetError(f"{what} needs more than {memory // 2**20} MB to read, so it was stopped; upload a "
                               "shorter excerpt, or export it as MIDI.")
    log.warning("parser crashed: %s", value)
    raise ParseBudgetError(f"{what} could not be read; it may be damaged. Export it again, or try MIDI.")


def _request_over(budget: float) -> ParseBudgetError:
    return ParseBudgetError(f"Reading this request's files took longer than {budget:g} s in all, so it was stopped; "
                            "give fewer or shorter files, or export them as MIDI.")


def shut_down() -> None:
    """Stop the forkserver (and so any parse still running) now, as the server exits."""
    stop()
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # no public handle on it
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def warm_up() -> None:
    """Start the forkserver (and its import of the parsers) now rather than on the first upload;
    from the main thread (see the module's docstring). Its imports take seconds on a busy machine."""
    run_bounded(abs, 0, seconds=120)
