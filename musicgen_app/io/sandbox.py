"""Run a parser in a child process under a time and a memory budget.

A few kilobytes can hold minutes of work and gigabytes of memory for music21 (a small .mxl unzips
to megabytes of MusicXML; a long ABC file is slow to parse): ``bench/bench_bounds.py`` times such
files. The child is forked from a forkserver that has the importers and the transcription libraries
loaded already, so a call does not pay for importing them; it gets an RLIMIT_DATA cap of what it
started with plus its memory budget, and is killed when the time is up; the server thread that
asked only waits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import resource

from ..errors import MusicgenError, ParseBudgetError

log = logging.getLogger(__name__)

TIME_BUDGET_SECONDS = 6.0  # wall-clock seconds a parse may take
MEMORY_BUDGET_BYTES = 1024 * 2**20  # bytes a parse may add to the child's data segment (RLIMIT_DATA)

_CONTEXT = mp.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["musicgen_app.io.importer", "musicgen_app.io.audio_libraries"])


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

    Past ``seconds`` or ``memory`` (defaults: the module's budgets) raises :class:`ParseBudgetError`.
    ``fn`` and its arguments and result must pickle (module-level function, plain data).
    """
    seconds = TIME_BUDGET_SECONDS if seconds is None else seconds
    memory = MEMORY_BUDGET_BYTES if memory is None else memory
    receive, send = _CONTEXT.Pipe(duplex=False)
    proc = _CONTEXT.Process(target=_child, args=(send, fn, args, memory), daemon=True)
    proc.start()
    send.close()
    try:
        if not receive.poll(seconds):
            log.info("parse stopped after %.1f s", seconds)
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
    if status == "ok":
        return value
    if status == "error":
        raise value
    if status == "memory":
        raise ParseBudgetError(f"{what} needs more than {memory // 2**20} MB to read, so it was stopped; upload a "
                               "shorter excerpt, or export it as MIDI.")
    log.warning("parser crashed: %s", value)
    raise ParseBudgetError(f"{what} could not be read; it may be damaged. Export it again, or try MIDI.")


def warm_up() -> None:
    """Start the forkserver (and its import of the parsers) now rather than on the first upload."""
    run_bounded(abs, 0)
