"""Gradio's queue internals, used in one place: a quieter idle poll, and whether the client of the
running event has gone. Not public API; tests/test_ui.py checks both against a real queue, so a
Gradio upgrade that changes them fails a test instead of silently doing nothing."""

from __future__ import annotations

from gradio.context import LocalContext


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
    return event is not None and not event.alive
