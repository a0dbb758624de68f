"""The app's own temporary files: one folder per process, one subfolder per request, swept hourly.

Everything the studio writes for a user (MIDI, WAV, MusicXML, piano rolls, zips) goes into a fresh
subfolder of :attr:`TempStore.root`, so names never collide between users and a request's files can
be found (and deleted) together. Gradio serves only files under its cache folder; ``app.py`` points
``GRADIO_TEMP_DIR`` at this root so outputs are served where they are written, without a copy.
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

MAX_AGE_SECONDS = 3600
SWEEP_EVERY_SECONDS = 60


class TempStore:
    """A per-process temp folder; :meth:`request_dir` gives each request its own subfolder."""

    def __init__(self, root: str | Path | None = None, max_age: float = MAX_AGE_SECONDS,
                 sweep_every: float = SWEEP_EVERY_SECONDS, remove_at_exit: bool = True):
        if root is None:
            root = tempfile.mkdtemp(prefix="musicgen-")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.out = self.root / "out"
        self.out.mkdir(exist_ok=True)
        self.max_age = max_age
        self.sweep_every = sweep_every
        self._last_sweep = 0.0
        self._lock = threading.Lock()
        if remove_at_exit:
            atexit.register(shutil.rmtree, self.root, ignore_errors=True)

    def request_dir(self, kind: str = "req") -> Path:
        """A new empty folder for one request's outputs (and an occasional sweep of old ones)."""
        self.sweep()
        safe = re.sub(r"[^A-Za-z0-9_-]", "", kind) or "req"
        return Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=self.out))

    def sweep(self, now: float | None = None, force: bool = False) -> int:
        """Delete request folders older than ``max_age``; at most once per ``sweep_every`` seconds.

        Runs on the request path (it is a directory listing, milliseconds), so no timer thread is
        needed. Returns how many folders were removed.
        """
        now = time.time() if now is None else now
        with self._lock:
            if not force and now - self._last_sweep < self.sweep_every:
                return 0
            self._last_sweep = now
        removed = 0
        for folder in self.out.iterdir():
            try:
                if now - folder.stat().st_mtime > self.max_age:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:  # another thread swept it first
                continue
        return removed
