"""Gradio's per-caller session store, kept from growing by API callers: the one adapter over its
internals (``Blocks.state_holder``: ``delete_state``, ``lock``, ``session_data``, ``time_last_used``),
checked against a real Gradio in tests/test_api_sessions.py."""

from __future__ import annotations

import threading
import time

from gradio.context import LocalContext

# Gradio keeps a session for every caller it has not seen before, up to 10,000 of them: a copy of
# every component's config, about 0.5 MB with this page's 300 components. A curl-style call
# (/gradio_api/call/...) is a new caller each time, so 600 such calls held 300 MB more. The API
# keeps nothing in a session, so an API caller's session idle this long is dropped; a
# gradio_client that keeps calling keeps its own, and one back after a pause gets a new one.
SESSION_IDLE_SECONDS = 10.0


class ApiSessions:
    """The sessions the API endpoints were called from, and when; :meth:`touch` drops idle ones.
    Page sessions are never touched here, so their per-user state stays as Gradio keeps it."""

    def __init__(self, idle_seconds: float = SESSION_IDLE_SECONDS, clock=time.monotonic):
        self.idle_seconds, self.clock = idle_seconds, clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self) -> None:
        """In an API handler: note its session as used now, and forget those idle too long."""
        blocks, request = LocalContext.blocks.get(None), LocalContext.request.get(None)
        session, now = getattr(request, "session_hash", None), self.clock()
        with self._lock:
            if session:
                self._last[session] = now
            idle = [s for s, t in self._last.items() if now - t > self.idle_seconds]
            for s in idle:
                del self._last[s]
        holder = getattr(blocks, "state_holder", None)  # Gradio's, not public API: tests/test_api_sessions.py
        if holder is None:
            return
        for s in idle:
            holder.delete_state(s)
            with holder.lock:
                holder.session_data.pop(s, None)
                holder.time_last_used.pop(s, None)
