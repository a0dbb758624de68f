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
    links to the session), each made when first read instead of all when the session opens, and
    made again when read after an event changed its component (Gradio made it twice an update)."""

    def __init__(self, blocks_config, ids: list[int]):
        super().__init__()
        self._blocks_config, self._ids, self._whole = blocks_config, ids, False
        self._stale: set[int] = set()
        self._values: dict = {}  # value set into a stale config, for when it is made

    def _make(self, key) -> dict:
        config = self._blocks_config.config_for_block(key, [], self._blocks_config.blocks[key])
        if key in self._values and "props" in config:
            config["props"]["value"] = self._values[key]
        self._values.pop(key, None)
        self._stale.discard(key)
        dict.__setitem__(self, key, config)  # where it was, if it was
        return config

    def __missing__(self, key):
        if key not in self._blocks_config.blocks:
            raise KeyError(key)
        return self._make(key)

    def __getitem__(self, key):
        return self._make(key) if key in self._stale else dict.__getitem__(self, key)

    def changed(self, key) -> None:
        """The component ``key`` was replaced: its config is made again when read (and any value set
        into the old one is dropped, as Gradio's remaking drops it)."""
        self._stale.add(key)
        self._values.pop(key, None)

    def set_value(self, key, value) -> None:
        """Gradio's ``_update_value_in_config``: the config's value, made first where it is not."""
        if key in self._stale or not dict.__contains__(self, key):
            self._stale.add(key)
            self._values[key] = value
        else:
            config = dict.__getitem__(self, key)
            if "props" in config:
                config["props"]["value"] = value

    def _fill(self) -> None:
        """Every config, in the order Gradio makes them (the blocks', then any set since)."""
        if not self._whole:
            made = dict(super().items())
            self.clear()
            for key in self._ids:
                if key not in made:
                    self._stale.add(key)
                dict.__setitem__(self, key, made.pop(key, None))
            self.update(made)
            self._whole = True
        for key in list(self._stale):
            if key in self._blocks_config.blocks:
                self._make(key)

    # every way to see them all fills them first (Gradio itself only walks items())
    items, keys, values, __iter__, __len__ = (_filled_first(getattr(dict, name))
                                              for name in ("items", "keys", "values", "__iter__", "__len__"))


def _no_config(*_) -> None:
    return None


class _LazySessionState(gradio.state_holder.SessionState):
    """Gradio's session, without making every component's config up front: with this page's 370
    blocks that took tens of ms of the event loop for each new session, which a curl-style API
    call opens every time and which reads none of them. An event's updates (a player's new label,
    a group shown) mark their component's config to be made again when read, where Gradio made it
    twice an update (15 ms of a Continue click's 31 ms of postprocessing on the page)."""

    def __init__(self, blocks):
        # Gradio's own __init__ for everything else, told of no blocks so it makes no config
        super().__init__(types.SimpleNamespace(default_config=blocks.default_config, blocks={}))
        self.config_values = _BlockConfigs(self.blocks_config,
                                           [k for k in self.blocks_config.blocks if k in blocks.blocks])

    def __setitem__(self, key: int, value) -> None:
        # Gradio's (a State's value, or the new component), less the config it makes there: of the
        # component being replaced, which _update_config then makes again for the new one
        self.blocks_config.config_for_block = _no_config  # this session's copy only
        try:
            super().__setitem__(key, value)
        finally:
            del self.blocks_config.config_for_block
        if key in self.blocks_config.blocks:
            self.config_values.changed(key)

    def _update_config(self, key: int) -> None:
        if self[key] is not None:
            self.config_values.changed(key)

    def _update_value_in_config(self, key: int, value) -> None:
        self.config_values.set_value(key, value)


def lazy_session_configs() -> None:
    """New sessions make their components' configs when first read (see _LazySessionState)."""
    if not hasattr(gradio.state_holder, "SessionState") or not hasattr(gradio.state_holder, "StateHolder"):
        raise RuntimeError("Gradio's state_holder no longer has SessionState; update web/api_sessions.py.")
    gradio.state_holder.SessionState = _LazySessionState  # what StateHolder.__getitem__ makes
