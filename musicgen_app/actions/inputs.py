"""A user's melody inputs: where each came from, and the history that Undo walks back.

Per-user state, immutable: every change returns a new :class:`InputHistory`, so a failed request
leaves the one on screen as it was. The page keeps one history per input panel in ``gr.State``;
the API reads one input per call with :func:`resolve_api_input`.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ImportFailed, RequestError
from ..io.examples import example_names, example_path
from ..io.importer import ImportResult, load_melody, parse_text
from ..io.quantize import TrackInfo
from ..melody import Melody, snap_to_key
from ..settings import parse_time_signature

MAX_HISTORY = 50  # inputs kept for Undo per input panel; older ones are dropped


@dataclass(frozen=True)
class InputOrigin:
    """Where an input came from, so a track change can read it again.

    ``value`` is the example's name, the uploaded file's path, the recording's path or the typed
    text; a model's result (``"result"``) has none and cannot be re-read. A recording (``"audio"``)
    also keeps the tempo it was read at (``qpm``, quarter notes a minute; None: estimated) and
    whether its pitches were snapped to the estimated key (``snap``), its meter (``meter``) and, when
    it was recorded to the page's count-in, the seconds into it at which bar 1 starts (``downbeat``);
    a file (``"file"``) may keep a tempo too, used when it is a recording (the API's ``audio_qpm``).
    """

    kind: Literal["example", "file", "audio", "text", "result"]
    value: str = ""
    qpm: float | None = None
    snap: bool = False
    meter: tuple[int, int] = (4, 4)
    downbeat: float | None = None

    @property
    def rereadable(self) -> bool:
        return self.kind != "result"


@dataclass(frozen=True)
class InputEntry:
    """One melody given as input, and what the import found."""

    melody: Melody
    label: str
    origin: InputOrigin
    tracks: tuple[TrackInfo, ...] = ()  # every candidate track, for the picker
    track: int | None = None
    notices: tuple[str, ...] = ()
    # a recording's io.audio.Transcription (what was heard, for the panel's view); left out of ==
    # and hash (it holds arrays), so Gradio can tell whether a history changed
    transcription: object | None = field(default=None, compare=False)

    @classmethod
    def result(cls, melody: Melody, label: str) -> InputEntry:
        return cls(melody, label, InputOrigin("result"))


@dataclass(frozen=True)
class InputHistory:
    """The inputs given so far; the last is the current one."""

    entries: tuple[InputEntry, ...] = ()

    @property
    def current(self) -> InputEntry | None:
        return self.entries[-1] if self.entries else None

    def push(self, entry: InputEntry) -> InputHistory:
        return InputHistory((self.entries + (entry,))[-MAX_HISTORY:])

    def replace_current(self, entry: InputEntry) -> InputHistory:
        return InputHistory(self.entries[:-1] + (entry,))

    def undo(self) -> InputHistory:
        if len(self.entries) < 2:
            raise RequestError("Nothing to undo: this is the first input.")
        return InputHistory(self.entries[:-1])


def _entry(result: ImportResult, label: str, origin: InputOrigin) -> InputEntry:
    return InputEntry(result.melody, label, origin, tuple(result.tracks), result.track, tuple(result.notices),
                      result.transcription)


def audio_origin(path, qpm=None, snap=False, meter="4/4", downbeat=None) -> InputOrigin:
    """A recording's origin from the page's values: the file, the tempo box (empty or 0: estimated),
    the snap-to-key box, the meter ('3/4') and the count-in's downbeat (seconds; empty: no count-in,
    and ignored without a tempo, which the count-in was played at)."""
    try:
        qpm = float(qpm) if qpm not in (None, "") and float(qpm) else None
    except (TypeError, ValueError):
        raise RequestError(f"Tempo {str(qpm)[:20]!r} is not a number; give quarter notes a minute, or leave it "
                           "empty to have it estimated.") from None
    try:
        downbeat = float(downbeat) if downbeat not in (None, "") and qpm else None
    except (TypeError, ValueError):
        downbeat = None  # the page's own value; a stray one means no count-in
    return InputOrigin("audio", str(path), qpm, bool(snap), parse_time_signature(meter or "4/4"), downbeat)


def read_input(origin: InputOrigin, track: int | None = None) -> InputEntry:
    """Read an example, a file, a recording or typed text into an :class:`InputEntry`."""
    if origin.kind == "example":
        return _example(origin.value, track)
    if origin.kind == "file":  # a recording uploaded as a file is read at ``origin.qpm`` (None: estimated)
        path = Path(origin.value)
        return _entry(load_melody(path, track=track, qpm=origin.qpm, time_signature=origin.meter,
                                  downbeat=origin.downbeat), path.name, origin)
    if origin.kind == "audio":
        return _recording(origin)
    if origin.kind == "text":
        return _entry(parse_text(origin.value), "Typed notes", origin)
    raise ImportFailed("A model's result cannot be read again; pick an example, upload a file or type notes.")


def _recording(origin: InputOrigin) -> InputEntry:
    path = Path(origin.value)
    entry = _entry(load_melody(path, qpm=origin.qpm, time_signature=origin.meter, downbeat=origin.downbeat),
                   path.name, origin)
    if not origin.snap:
        return entry
    melody, moved = snap_to_key(entry.melody)
    said = (f"Snapped {moved} note{'s' if moved != 1 else ''} to the scale of {melody.key.name}." if moved else
            f"Every note was already in the scale of {melody.key.name}; none snapped.")
    return dataclasses.replace(entry, melody=melody, notices=entry.notices + (said,))


@functools.lru_cache(maxsize=32)
def _example(name: str, track: int | None) -> InputEntry:
    """Examples are read once per process (entries are immutable): every page load shows one."""
    return _entry(load_melody(example_path(name), track=track), name, InputOrigin("example", name))


def resolve_api_input(file, notes, example, track=None, name: str = "the melody", qpm=None,
                      meter=None, downbeat=None) -> InputEntry:
    """The API's rule: a file wins over typed notes, which win over an example name. ``qpm``,
    ``meter`` and ``downbeat``: the tempo a recording given as the file was played at (empty:
    estimated), its meter such as "3/4" (empty: 4/4) and the seconds into it at which bar 1 starts
    (empty: found from the notes; needs the tempo); other files carry their own."""
    track = _track(track)
    if file:
        origin = audio_origin(file, qpm, meter=meter)
        return read_input(InputOrigin("file", str(file), origin.qpm, meter=origin.meter,
                                      downbeat=api_downbeat(downbeat, origin.qpm)), track)
    if notes and str(notes).strip():
        return read_input(InputOrigin("text", str(notes)))
    if example and str(example).strip():
        return read_input(InputOrigin("example", str(example).strip()), track)
    raise ImportFailed(f"Give {name}: a file, typed notes (ABC or tinyNotation) or an example name "
                       f"({', '.join(example_names())}).")


def api_downbeat(value, qpm: float | None) -> float | None:
    """The API's and the CLI's ``downbeat`` for a recording: seconds (0 or more) into it at which bar 1
    starts; empty: None. Unlike the page's own count-in value, a bad one is refused."""
    seconds = _optional_number(value, lambda x: 0 <= x <= 600, (
        f"Downbeat {str(value)[:20]!r} is not a time in the recording; give the seconds from its start at which "
        "bar 1 starts (such as 2.4), or leave it empty to find bar 1 from the notes."))
    if seconds is not None and qpm is None:
        raise RequestError(f"A downbeat at {seconds:g} s needs the tempo the recording was played at (the bar "
                           "lines follow from it); give the tempo too, or leave the downbeat empty.")
    return seconds


def _track(value) -> int | None:
    """Empty: let the importer choose; else a track number as the track list shows it (0, 1, ...)."""
    number = _optional_number(value, lambda x: x.is_integer() and x >= 0, (
        f"Track {str(value)[:20]!r} is not a track number; leave it empty to let the studio choose, or give the "
        "number shown in the track list (0, 1, ...)."))
    return None if number is None else int(number)


def _optional_number(value, ok, refusal: str) -> float | None:
    """``value`` as a number (not a bool) for which ``ok`` holds; empty: None; anything else: ``refusal``."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
        if not ok(number):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise RequestError(refusal) from None
    return number
