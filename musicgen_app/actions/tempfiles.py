"""The app's own temporary files: one folder per process, one subfolder per request, bounded.

Everything the studio writes for a user (MIDI, WAV, MusicXML, piano rolls, zips) goes into a fresh
subfolder of ``root/out``, so names never collide between users and a request's files can be found
(and deleted) together. Gradio serves only files under its cache folder; ``app.py`` points
``GRADIO_TEMP_DIR`` at ``root`` so outputs are served where they are written, and uploads land there
too. The store stays bounded: folders older than ``max_age`` go, and past ``max_bytes`` the oldest
go first; a process's folder is removed when it exits (``close``, also on SIGTERM via ``app.py``),
and folders left by processes that died are removed when the next store starts.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

MAX_AGE_SECONDS = 3600
MAX_BYTES = int(os.environ.get("MUSICGEN_TEMP_MAX_MB", "1024")) * 2**20
SWEEP_EVERY_SECONDS = 5  # listing and sizing the store takes milliseconds
PREFIX = "musicgen-"
OWNER_FILE = "owner.pid"


class TempStore:
    """A per-process temp folder; :meth:`request_dir` gives each request its own subfolder."""

    def __init__(self, root: str | Path | None = None, max_age: float = MAX_AGE_SECONDS,
                 max_bytes: int = MAX_BYTES, sweep_every: float = SWEEP_EVERY_SECONDS, remove_at_exit: bool = True):
        if root is None:
            remove_stale_stores()
            root = tempfile.mkdtemp(prefix=PREFIX)
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.out = self.root / "out"
        self.out.mkdir(exist_ok=True)
        self.max_age, self.max_bytes, self.sweep_every = max_age, max_bytes, sweep_every
        self._last_sweep = 0.0
        self._lock = threading.Lock()
        if remove_at_exit:
            atexit.register(self.close)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def request_dir(self, kind: str = "req") -> Path:
        """A new empty folder for one request's outputs (and an occasional sweep of old ones)."""
        self.sweep()
        safe = re.sub(r"[^A-Za-z0-9_-]", "", kind) or "req"
        return Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=self.out))

    def keep(self, folder: str | Path) -> bool:
        """Restart the age clock of one request folder (a page still shows its files); False when
        the folder is gone (swept for space or age) or is not one of this store's."""
        folder = Path(folder).resolve()
        if folder.parent != self.out or not folder.is_dir():
            return False
        try:
            for path in (*folder.iterdir(), folder):  # Gradio's own cache ages files by their ctime
                os.utime(path)
        except FileNotFoundError:  # swept meanwhile
            return False
        return True

    def _folders(self) -> list[Path]:
        """Request folders, and the folders Gradio keeps uploads in."""
        inner = [p for p in self.out.iterdir() if p.is_dir()]
        return inner + [p for p in self.root.iterdir() if p.is_dir() and p != self.out]

    def sweep(self, now: float | None = None, force: bool = False) -> int:
        """Delete folders older than ``max_age``, then the oldest while the store is over ``max_bytes``.

        At most once per ``sweep_every`` seconds unless forced; it lists and sizes files (a few ms),
        so it runs on the request path without a timer thread. Returns how many folders went.
        """
        now = time.time() if now is None else now
        with self._lock:
            if not force and now - self._last_sweep < self.sweep_every:
                return 0
            self._last_sweep = now
        found = []
        for folder in self._folders():
            try:
                found.append((folder.stat().st_mtime, _size(folder), folder))
            except FileNotFoundError:  # another thread swept it first
                continue
        removed = 0
        total = sum(size for _, size, _ in found)
        for mtime, size, folder in sorted(found, key=lambda f: f[0]):
            if now - mtime <= self.max_age and total <= self.max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            removed += 1
        return removed

    def size(self) -> int:
        return _size(self.root)


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_stores(parent: str | Path | None = None) -> int:
    """Remove stores left behind by processes that are gone (killed before they could clean up)."""
    removed = 0
    for folder in Path(parent or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        owner = folder / OWNER_FILE
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue  # not ours, or still being made
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
