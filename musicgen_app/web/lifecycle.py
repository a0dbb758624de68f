"""A request's bounds, and an orderly stop.

Every handler runs inside :func:`handling` (entered by :func:`.refusals.user_errors`): its parses
share one deadline (:func:`musicgen_app.io.sandbox.request_budget`), the temp store's room it
reserves is held until it returns (:func:`musicgen_app.actions.tempfiles.request_scope`), and it is
counted as in flight. So is every event of Gradio's queue, from reading its inputs to shaping its
result files (:func:`.queue_adapter.counted_events`), which happens after the handler returns.

On SIGTERM (or Ctrl-C) :func:`stop` refuses new work with a message that says the studio is
shutting down, gives the requests in flight ``grace`` seconds to finish, removes the temp store,
stops the parser's processes and ends the process with ``os._exit(0)``. Exiting through the
interpreter's teardown instead, with model and audio threads still running in native code, could
abort the process ("terminate called without an active exception", exit -6) and delete the store
under a request that was still writing into it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time

from ..actions.tempfiles import TempStore, request_scope
from ..io import sandbox

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 8.0  # docker stop waits 10 s before SIGKILL
STOPPING_MESSAGE = "The studio is shutting down, so this request was not finished; try again in a minute."

_in_flight = 0
_changed = threading.Condition()
_stopping = threading.Event()
_on_stop: list = []


def on_stop(fn) -> None:
    """Run ``fn()`` in :func:`stop` once the requests in flight are done, before the process ends
    (``os._exit`` skips atexit handlers): e.g. disconnecting from Ray's replicas."""
    _on_stop.append(fn)


def stopping() -> bool:
    return _stopping.is_set()


@contextlib.contextmanager
def in_flight():
    """Counted as in flight while inside: :func:`stop` waits for it (ShuttingDown once stopping)."""
    global _in_flight
    if _stopping.is_set():
        raise sandbox.ShuttingDown(STOPPING_MESSAGE)
    with _changed:
        _in_flight += 1
    try:
        yield
    finally:
        with _changed:
            _in_flight -= 1
            _changed.notify_all()


@contextlib.contextmanager
def handling():
    """One handler's run: counted in flight, one parse deadline, its temp room held until it ends."""
    with in_flight(), sandbox.request_budget(), request_scope():
        yield


def stop(store: TempStore, grace: float = STOP_GRACE_SECONDS) -> None:
    """Refuse new work, let what is in flight finish (at most ``grace`` s), clean up, exit 0."""
    _stopping.set()
    sandbox.stop()
    deadline = time.monotonic() + grace
    with _changed:
        while _in_flight and time.monotonic() < deadline:
            _changed.wait(deadline - time.monotonic())
        left = _in_flight
    if left:
        log.warning("stopping with %d request(s) still running", left)
    sandbox.shut_down()
    for fn in _on_stop:
        try:
            fn()
        except Exception:  # the rest of the stop goes on
            log.exception("while stopping")
    store.close()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def stop_on_signals(store: TempStore, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM and SIGINT run :func:`stop` (once; a second signal while stopping is ignored)."""

    def handler(signum, _frame):
        if _stopping.is_set():
            return
        log.info("%s: stopping", signal.Signals(signum).name)
        stop(store, grace)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
