"""Gradio's per-caller session store, kept from growing by API callers and cheap to open: the one
adapter over its internals (``Blocks.state_holder``: ``delete_state``, ``lock``, ``session_data``,
``time_last_used``; ``gradio.state_holder.SessionState`` and its ``config_values``), checked against a
real Gradio in tests/test_api_sessions.py."""

from __future__ import annotations

import threading
import time
import types

import gradio.state_holder
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


def _filled_first(method):
    def whole(self, *args):
        self._fill()
        return method(self, *args)
    return whole


class _BlockConfigs(dict):
    """A session's ``config_values`` (each component's config, as Gradio sends it to a page that deep
    links to the session), each made when first read instead of all when the session opens."""

    def __init__(self, blocks_config, ids: list[int]):
        super().__init__()
        self._blocks_config, self._ids, self._whole = blocks_config, ids, False

    def __missing__(self, key):
        if key not in self._blocks_config.blocks:
            raise KeyError(key)
        config = self[key] = self._blocks_config.config_for_block(key, [], self._blocks_config.blocks[key])
        return config

    def _fill(self) -> None:
        """Every config, in the order Gradio makes them (the blocks', then any set since)."""
        if self._whole:
            return
        made = dict(super().items())
        self.clear()
        for key in self._ids:
            self[key] = made.pop(key) if key in made else self.__missing__(key)
        self.update(made)
        self._whole = True

    # every way to see them all fills them first (Gradio itself only walks items())
    items, keys, values, __iter__, __len__ = (_filled_first(getattr(dict, name))
                                              for name in ("items", "keys", "values", "__iter__", "__len__"))


class _LazySessionState(gradio.state_holder.SessionState):
    """Gradio's session, without making every component's config up front: with this page's 370
    blocks that took tens of ms of the event loop for each new session, which a curl-style API
    call opens every time and which reads none of them."""

    def __init__(self, blocks):
        # Gradio's own __init__ for everything else, told of no blocks so it makes no config
        super().__init__(types.SimpleNamespace(default_config=blocks.default_config, blocks={}))
        self.config_values = _BlockConfigs(self.blocks_config,
                                           [k for k in self.blocks_config.blocks if k in blocks.blocks])


def lazy_session_configs() -> None:
    """New sessions make their components' configs when first read (see _LazySessionState)."""
    if not hasattr(gradio.state_holder, "SessionState") or not hasattr(gradio.state_holder, "StateHolder"):
        raise RuntimeError("Gradio's state_holder no longer has SessionState; update web/api_sessions.py.")
    gradio.state_holder.SessionState = _LazySessionState  # what StateHolder.__getitem__ makes
