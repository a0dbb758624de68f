"""Gradio's queue internals, used in one place: a quieter idle poll, whether the client of the
running event has gone, and our words for what Gradio refuses before a handler runs. Not public
API; tests/test_ui.py and tests/test_hostile.py check them against a real queue, so a Gradio upgrade
that changes them fails a test instead of silently doing nothing."""

from __future__ import annotations

import functools
import logging

import gradio as gr
import pydantic
from gradio.context import LocalContext
from gradio.exceptions import InvalidPathError

from ..io.sandbox import ShuttingDown
from .lifecycle import STOPPING_MESSAGE, in_flight, stopping
from .refusals import error_title

log = logging.getLogger(__name__)
FILE_HOW = ("give a file you uploaded to this studio: POST it to /gradio_api/upload and pass the path it returns, as "
            '{"path": <that path>, "meta": {"_type": "gradio.FileData"}} (a list of those for several files), or an '
            "http(s) URL of a file; gradio_client's handle_file() does this for you")


def quieter_queue(demo, poll_s: float) -> None:
    """Poll for work every ``poll_s`` (progress every ``max(poll_s, 0.05)``) instead of Gradio's 1 ms
    and 10 ms, which cost a few per cent of a core while the page sits idle and wake the event loop
    under load; a click waits on average poll_s / 2 more to start."""
    queue = demo._queue
    if not hasattr(queue, "sleep_when_free") or not hasattr(queue, "progress_update_sleep_when_free"):
        raise RuntimeError("Gradio's queue no longer has sleep_when_free; update web/queue_adapter.py.")
    queue.sleep_when_free = poll_s
    queue.progress_update_sleep_when_free = max(poll_s, 0.05)


def client_gone() -> bool:
    """Whether the page or client of the running event has gone (closed, reloaded, disconnected).

    Gradio drops a gone client's queued events itself and marks a running one dead, but cannot stop
    the thread that runs it; long handlers ask between their steps and stop.
    """
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    events = getattr(queue, "event_ids_to_events", None)
    if queue is not None and events is None:
        raise RuntimeError("Gradio's queue no longer has event_ids_to_events; update web/queue_adapter.py.")
    event = events.get(event_id) if events is not None and event_id else None
    if stopping():
        raise ShuttingDown(STOPPING_MESSAGE)
    return event is not None and not event.alive


def checked_inputs(demo, api_names: set[str]) -> None:
    """What Gradio refuses while reading an event's inputs (a file that was not uploaded, a malformed
    file object), said in our words instead of Gradio's, which name the server's folders. An API
    call with more values than its endpoint takes is refused (Gradio would drop the extra ones);
    one with fewer gets the defaults of those left out at the end, as gradio_client fills them (the
    parameters added last, such as audio_qpm, so positional callers' order holds)."""
    if not hasattr(demo, "preprocess_data"):
        raise RuntimeError("Gradio's Blocks no longer has preprocess_data; update web/queue_adapter.py.")
    preprocess = demo.preprocess_data

    @functools.wraps(preprocess)
    async def checked(block_fn, inputs, *args, **kwargs):
        name, wanted = getattr(block_fn, "api_name", None), block_fn.inputs
        if name in api_names and len(inputs) > len(wanted):
            labels = [getattr(b, "label", None) or "?" for b in wanted]
            raise gr.Error(f"/{name} takes {len(labels)} values ({', '.join(labels)}), not {len(inputs)}; remove the "
                           "extra ones.", title="Check the settings", print_exception=False)
        if name in api_names and isinstance(inputs, list):
            inputs = inputs + [getattr(b, "value", None) for b in wanted[len(inputs):]]
        try:
            return await preprocess(block_fn, inputs, *args, **kwargs)
        except (InvalidPathError, pydantic.ValidationError) as exc:
            log.info("refused a file input: %s", str(exc).splitlines()[0][:200])
            files = [b.label for b in block_fn.inputs if isinstance(b, gr.File)] or ["the file"]
            what = "is not a file this studio can read" if isinstance(exc, InvalidPathError) else "is not a file object"
            raise gr.Error(f"A value given for {' or '.join(files)} {what}: {FILE_HOW}.",
                           title="Could not use this melody", print_exception=False) from None

    demo.preprocess_data = checked


def counted_events(demo) -> None:
    """Each event Gradio runs counts as in flight (:func:`.lifecycle.in_flight`) until its result is
    shaped, so a stopping server removes no file that a result being sent still names; an event
    that starts while the server stops is refused in our words."""
    if not hasattr(demo, "process_api"):
        raise RuntimeError("Gradio's Blocks no longer has process_api; update web/queue_adapter.py.")
    process = demo.process_api

    @functools.wraps(process)
    async def counted(*args, **kwargs):
        try:
            with in_flight():
                return await process(*args, **kwargs)
        except ShuttingDown as exc:
            raise gr.Error(str(exc), title=error_title(exc), print_exception=False) from None

    demo.process_api = counted
