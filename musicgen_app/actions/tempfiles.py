"""The app's own temporary files: one folder per process, one subfolder per request, bounded.

Everything the studio writes for a user (MIDI, WAV, MusicXML, piano rolls, zips) goes into a fresh
subfolder of ``root/out``, so names never collide between users and a request's files can be found
(and deleted) together. Gradio serves only files under its cache folder; ``app.py`` points
``GRADIO_TEMP_DIR`` at ``root`` so outputs are served where they are written, and uploads land
there too; the process's ``owner.pid`` is in :attr:`TempStore.private`, which Gradio must not serve
(``launch(blocked_paths=...)``).

The store holds at most ``max_bytes``, whatever writes into it (a request's results, Gradio's
uploads). Room is taken before anything is written: :meth:`TempStore.request_dir` reserves what
the request will write (:func:`audio_bytes`; at most ``reserve``, the most any request writes) and
:meth:`TempStore.reserved` the size of an upload; a
reservation lasts until the :func:`request_scope` it was made in ends (no scope: it is only
checked). To make room, folders older than ``max_age`` go, then the oldest that nobody can still
need: a folder changed (written, or kept by an open page) within ``protect`` seconds is live, as
is one whose request is still running. When the live files and the reservations leave no room, the
request is refused with :class:`StoreFull`; nobody's result is removed for it. When there would be
room but for the reservations of requests still writing, a request waits for them (at most
``WAIT_SECONDS``): with many requests at once, a few write at a time.

A process's folder is removed when it exits (``close``, also on SIGTERM via ``app.py``), and
folders left by processes that died are removed when the next store starts.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .. import render
from ..errors import MusicgenError
from ..io.sandbox import ShuttingDown

MAX_AGE_SECONDS = 3600
MAX_BYTES = int(os.environ.get("MUSICGEN_TEMP_MAX_MB", "1024")) * 2**20
SWEEP_EVERY_SECONDS = 5  # listing and sizing the store takes milliseconds
# A result is live this long after it was written (or an open page last kept it): an API client
# has this long to download the files whose URLs it was given, and a page to load its players. Not
# longer: 16 clients' Continue requests write about 40 MB a second (8 bars x 4 variations of WAV
# each, 4 a second), so with results protected for a minute the 1 GB store filled and refused work.
PROTECT_SECONDS = float(os.environ.get("MUSICGEN_TEMP_PROTECT_S", "10"))
# The most one request writes: 8 variations' WAV of at most MAX_AUDIO_SECONDS (16-bit mono), and
# their MIDI, MusicXML and rolls (Generate's 16 short melodies and a medley write less): 228 MB.
REQUEST_RESERVE_BYTES = int(os.environ.get("MUSICGEN_TEMP_RESERVE_MB", "0")) * 2**20 or \
    8 * int((render.MAX_AUDIO_SECONDS + render.TAIL_SECONDS) * render.SAMPLE_RATE * 2) + 16 * 2**20
# Besides its audio, what a request writes at most: MIDI, MusicXML, zips and piano rolls.
FILES_BYTES = 4 * 2**20
# A request folder whose list of files has not changed for this long keeps its size until it does:
# a request writes each file whole, within milliseconds of creating it.
SETTLED_SECONDS = 2.0
WAIT_SECONDS = 30.0  # how long a request waits for others' reservations to end before it is refused
PREFIX = "musicgen-"
OWNER_FILE = "owner.pid"

_SCOPE: ContextVar[list | None] = ContextVar("temp_store_scope", default=None)
_TOKENS = itertools.count(1)


def audio_bytes(*melodies) -> int:
    """The room that the WAV files of ``melodies`` take (16-bit mono at render.SAMPLE_RATE, cut at
    render.MAX_AUDIO_SECONDS), and FILES_BYTES for the rest of a request's files."""
    seconds = sum(min(m.duration_seconds + render.TAIL_SECONDS, render.MAX_AUDIO_SECONDS) for m in melodies)
    return int(seconds * render.SAMPLE_RATE * 2) + FILES_BYTES


class StoreFull(MusicgenError):
    """The store cannot take more files without removing results someone may still need."""


@contextmanager
def request_scope():
    """The reservations made inside (by any store) last until this block ends: one per request
    handler, so a request's room is held while it writes and its files are counted after."""
    held: list = []
    token = _SCOPE.set(held)
    try:
        yield
    finally:
        _SCOPE.reset(token)
        for store, ticket in held:
            store.release(ticket)


class TempStore:
    """A per-process temp folder; :meth:`request_dir` gives each request its own subfolder."""

    def __init__(self, root: str | Path | None = None, max_age: float = MAX_AGE_SECONDS,
                 max_bytes: int = MAX_BYTES, sweep_every: float = SWEEP_EVERY_SECONDS, remove_at_exit: bool = True,
                 protect: float = PROTECT_SECONDS, reserve: int = REQUEST_RESERVE_BYTES):
        if root is None:
            remove_stale_stores()
            root = tempfile.mkdtemp(prefix=PREFIX)
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / OWNER_FILE).write_text(str(os.getpid()))
        self.out = self.root / "out"
        self.out.mkdir(exist_ok=True)
        self.private = [str(self.root / OWNER_FILE)]  # files here that are not the users'; never to be served
        self.max_age, self.max_bytes, self.sweep_every = max_age, max_bytes, sweep_every
        self.protect, self.reserve, self.wait = protect, reserve, WAIT_SECONDS
        self._last_sweep = 0.0
        self._settled: dict[Path, tuple[int, int]] = {}  # request folder -> (its mtime_ns, its size)
        self._lock = threading.Condition()
        self._reserved: dict[int, tuple[int, Path | None]] = {}  # ticket -> (bytes, the request's folder)
        self._closing = False
        if remove_at_exit:
            atexit.register(self.close)

    def close(self) -> None:
        """Refuse new files, remove every file, and ``owner.pid`` last: a folder that could not be
        removed whole keeps its owner, so the next start removes it."""
        with self._lock:
            self._closing = True
        for _ in range(3):  # a request still writing can leave a file behind once
            if not self.root.is_dir():
                return
            for path in self.root.iterdir():
                if path.name != OWNER_FILE:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            if [p.name for p in self.root.iterdir()] in ([OWNER_FILE], []):
                shutil.rmtree(self.root, ignore_errors=True)

    def request_dir(self, kind: str = "req", nbytes: int | None = None) -> Path:
        """A new empty folder for one request's outputs, with room held for it until the request's
        :func:`request_scope` ends: ``nbytes`` (what the request will write, see
        :func:`audio_bytes`), or the most any request writes (``reserve``) when it cannot say;
        :class:`StoreFull` when there is no room."""
        self.sweep()
        ticket = self.reserve_bytes(self.reserve if nbytes is None else min(nbytes, self.reserve), "this request",
                                    wait=self.wait)
        safe = re.sub(r"[^A-Za-z0-9_-]", "", kind) or "req"
        try:
            folder = Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=self.out))
        except FileNotFoundError:  # closed meanwhile
            self.release(ticket)
            raise ShuttingDown("The studio is shutting down; try again in a minute.") from None
        self._hold(ticket, folder)
        return folder

    @contextmanager
    def reserved(self, nbytes: int, what: str = "this upload", wait: float = 0.0):
        """Room for ``nbytes`` that something else writes here (Gradio's upload route), held for the block."""
        ticket = self.reserve_bytes(nbytes, what, wait)
        try:
            yield
        finally:
            self.release(ticket)

    def release(self, ticket: int) -> None:
        with self._lock:
            self._reserved.pop(ticket, None)
            self._lock.notify_all()

    def _hold(self, ticket: int, folder: Path) -> None:
        scope = _SCOPE.get()
        with self._lock:
            if scope is None:  # no request scope to end it: the room was checked, not held
                self._reserved.pop(ticket, None)
            elif ticket in self._reserved:
                self._reserved[ticket] = (self._reserved[ticket][0], folder)
        if scope is not None:
            scope.append((self, ticket))

    def reserve_bytes(self, nbytes: int, what: str, wait: float = 0.0) -> int:
        """Reserve ``nbytes``, removing old or unneeded folders to make room, waiting at most ``wait``
        seconds for other requests' reservations to end; a ticket for :meth:`release`."""
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                if self._closing:
                    raise ShuttingDown("The studio is shutting down; try again in a minute.")
                found, committed = self._census()
                if self._evict(found, need=committed + nbytes - self.max_bytes):
                    found, committed = self._census()
                if committed + nbytes <= self.max_bytes:
                    break
                on_disk = sum(size for _, size, _ in found)
                if on_disk + nbytes > self.max_bytes or time.monotonic() >= deadline or not self._reserved:
                    raise StoreFull(
                        f"The studio's temporary storage is full: its {self.max_bytes // 2**20} MB hold results "
                        f"made in the last {self.protect:g} seconds, which their owners may still download, and "
                        f"{what} needs {max(nbytes // 2**20, 1)} MB. Try again in a minute.")
                self._lock.wait(min(deadline - time.monotonic(), 1.0))  # a release wakes it
            ticket = next(_TOKENS)
            self._reserved[ticket] = (nbytes, None)
            return ticket

    def _census(self) -> tuple[list, int]:
        """(mtime, size, folder) of each folder, and the bytes committed: those on disk, and what the
        reservations may still add (a request's folder: its reservation less what it has written)."""
        found, on_disk = [], 0
        for folder in self._folders():
            try:
                found.append((folder.stat().st_mtime, self._folder_size(folder), folder))
            except FileNotFoundError:  # removed meanwhile
                continue
            on_disk += found[-1][1]
        sizes = {folder: size for _, size, folder in found}
        self._settled = {folder: known for folder, known in self._settled.items() if folder in sizes}
        pending = sum(max(n - sizes.get(folder, 0), 0) if folder else n for n, folder in self._reserved.values())
        return found, on_disk + pending

    def _folder_size(self, folder: Path) -> int:
        """The bytes in ``folder``; a request folder's from the last count while no file has come or
        gone since it settled (the census ran through every file of the store for every request:
        7 ms with 160 folders). Gradio's upload folders are always counted: an upload fills its file
        for as long as it streams."""
        stat = folder.stat()
        known = self._settled.get(folder)
        if known is not None and known[0] == stat.st_mtime_ns:
            return known[1]
        size = _size(folder)
        if folder.parent == self.out and time.time() - stat.st_mtime > SETTLED_SECONDS:
            self._settled[folder] = (stat.st_mtime_ns, size)
        return size

    def _evict(self, found: list, need: int, now: float | None = None) -> int:
        """Remove folders past ``max_age``, then the oldest not live ones while ``need`` > 0."""
        now = time.time() if now is None else now
        live = {folder for _, folder in self._reserved.values() if folder is not None}
        removed = 0
        for mtime, size, folder in sorted(found, key=lambda f: f[0]):
            old = now - mtime > self.max_age
            if folder in live or not (old or (need > 0 and now - mtime > self.protect)):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            need -= size
            removed += 1
        return removed

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
        try:
            inner = [p for p in self.out.iterdir() if p.is_dir()]
            return inner + [p for p in self.root.iterdir() if p.is_dir() and p != self.out]
        except FileNotFoundError:  # closed
            return []

    def sweep(self, now: float | None = None, force: bool = False) -> int:
        """Delete folders older than ``max_age``, then the oldest not live ones while the store is
        over ``max_bytes`` (it can be, briefly, by what Gradio writes unasked).

        At most once per ``sweep_every`` seconds unless forced; it lists and sizes files (a few ms),
        so it runs on the request path without a timer thread. Returns how many folders went.
        """
        now = time.time() if now is None else now
        with self._lock:
            if not force and now - self._last_sweep < self.sweep_every:
                return 0
            self._last_sweep = now
            found, committed = self._census()
            return self._evict(found, need=committed - self.max_bytes, now=now)

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
