"""Everything a user can hand in (a file, a recording or typed notes) -> one :class:`ImportResult`.

    load_melody(path_or_bytes, filename=..., track=...)   MIDI, MusicXML (.musicxml/.xml/.mxl), ABC
    load_melody("hum.wav", qpm=96)                         a recording: WAV, FLAC, OGG, MP3 (io/audio.py)
    parse_text("4/4 c4 d e f g2 g")                       typed ABC or music21 tinyNotation

The format is recognised by content (``MThd`` header, a zip archive, a MusicXML root element, ABC
``X:``/``K:`` fields, an audio or video container's signature) and only then by the file extension.
Files over 5 MB (recordings: over ``audio.MAX_BYTES``) are refused before any parsing. Every
failure is one of the :mod:`musicgen_app.errors` import errors with a message that says what to do;
third-party parser exceptions never leave this module. A melody longer than 64 bars is trimmed (a
notice, not an error). Polyphony is reduced to the top line and onsets are snapped to the sixteenth
grid by :mod:`musicgen_app.io.quantize`, which also picks the default track.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import music21 as m21

from ..errors import (
    CorruptFileError,
    CorruptRecordingError,
    FileTooLargeError,
    ImportFailed,
    MusicgenError,
    NoNotesError,
    NotMusicError,
    UnsupportedMeterError,
)
from ..melody import Melody, meter_problem
from . import audio
from .midi import midi_to_melody
from .quantize import (
    ImportResult,
    QuantizeReport,
    TrackInfo,
    choose_track,
    describe_track,
    pitch_range_notice,
    trim_bars,
)
from .sandbox import run_bounded
from .score import part_candidates, part_notes, read_score, score_title, stream_to_melody

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024
# MIDI files up to this many bytes are read in process: mido reads them in a small part of the sandbox's
# time budget (bench/bench_bounds.py times large ones). Larger files, and every score, go to the sandbox.
MIDI_IN_PROCESS_BYTES = 256 * 1024
MAX_BARS = 64
MIDI_EXTENSIONS = (".mid", ".midi", ".kar", ".smf")
XML_EXTENSIONS = (".musicxml", ".xml")
ABC_EXTENSIONS = (".abc",)
TEXT_EXTENSIONS = (".txt", ".tiny", "")
# A recording's child process: 5 minutes of audio take about ten times what 30 s take
# (bench/eval_transcription.py), and the libraries need more memory than a score parser.
AUDIO_TIME_BUDGET_SECONDS = 60.0
AUDIO_MEMORY_BUDGET_BYTES = 3 * 2**30
HOW_TO_TYPE = ("Type ABC (with a K: line, e.g. 'K:G' then 'GABc dedB') or tinyNotation such as "
               "'4/4 c4 d e f g2 g' (letters are notes, c = middle C, c' an octave up, C an octave "
               "down; numbers are durations: 4 = quarter, 8 = eighth; r is a rest).")


# -- entry points ----------------------------------------------------------------------------------
def load_melody(source: str | os.PathLike | bytes, *, filename: str | None = None, track: int | None = None,
                qpm: float | None = None, time_signature: tuple[int, int] = (4, 4), downbeat: float | None = None,
                bounded: bool = True) -> ImportResult:
    """Read a file (a path, or its bytes with ``filename`` for the extension and the name).

    ``qpm``: a recording's tempo in quarter notes a minute (None: estimated); other files carry theirs.
    ``time_signature``, ``downbeat``: a recording's meter, and the seconds into it at which bar 1
    starts when it was recorded to a count-in (see :func:`.audio.audio_to_melody`).
    ``bounded``: parse scores, recordings, and MIDI files over ``MIDI_IN_PROCESS_BYTES``, in a child
    process under the time and memory budget of :mod:`.sandbox` (off only for trusted files, e.g. in a
    process pool).
    """
    data, filename = _read_source(source, filename)
    fmt = detect_format(data, filename)
    if fmt == "audio":
        if bounded:
            return run_bounded(_parse_audio, data, filename, qpm, time_signature, downbeat,
                               what=filename or "The recording", seconds=AUDIO_TIME_BUDGET_SECONDS,
                               memory=AUDIO_MEMORY_BUDGET_BYTES)
        return _parse_audio(data, filename, qpm, time_signature, downbeat)
    if bounded and (fmt != "midi" or len(data) > MIDI_IN_PROCESS_BYTES):
        return run_bounded(_parse, data, fmt, filename, track, what=filename or "The file")
    return _parse(data, fmt, filename, track)


def parse_text(text: str, *, bounded: bool = True) -> ImportResult:
    """Typed notes: ABC (recognised by its ``K:``/``X:``/``M:`` fields) or tinyNotation."""
    if not isinstance(text, str) or not text.strip():
        raise NotMusicError(f"Nothing was typed. {HOW_TO_TYPE}")
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise FileTooLargeError(f"The typed text is over {MAX_BYTES // 2**20} MB; type a shorter melody.")
    if bounded:
        return run_bounded(_parse_text, text, what="The typed notes")
    return _parse_text(text)


def _parse(data: bytes, fmt: str, filename: str, track: int | None) -> ImportResult:
    stem = Path(filename).stem if filename else ""
    try:
        if fmt == "midi":
            return _from_midi(data, track, stem)
        if fmt == "tinynotation":
            return _from_text(_decode(data), track, stem)
        return _from_score_bytes(data, fmt, track, stem)
    except MusicgenError:
        raise
    except Exception as exc:  # last line of defence: a parser bug must still reach the user as ours
        log.warning("unexpected failure reading %r as %s: %s: %s", filename, fmt, type(exc).__name__, exc)
        raise CorruptFileError(
            f"{filename or 'The file'} could not be read; it may be damaged. Export it again, or try MIDI or "
            "MusicXML.") from exc


def _parse_audio(data: bytes, filename: str, qpm: float | None, time_signature: tuple[int, int] = (4, 4),
                 downbeat: float | None = None) -> ImportResult:
    try:
        return audio.audio_to_melody(data, qpm, time_signature=tuple(time_signature), max_bars=MAX_BARS,
                                     filename=filename or None, downbeat=downbeat)
    except MusicgenError:
        raise
    except Exception as exc:  # see _parse
        log.warning("unexpected failure transcribing %r: %s: %s", filename, type(exc).__name__, exc)
        raise CorruptRecordingError(
            f"{filename or 'The recording'} could not be transcribed; it may be damaged. Record or export it "
            "again as WAV, FLAC, OGG or MP3.") from exc


def _parse_text(text: str) -> ImportResult:
    try:
        return _from_text(text, None, "Typed melody")
    except MusicgenError:
        raise
    except Exception as exc:  # see _parse
        log.warning("unexpected failure reading typed notes: %s: %s", type(exc).__name__, exc)
        raise NotMusicError(f"The typed notes could not be read. {HOW_TO_TYPE}") from exc


# -- source and format -------------------------------------------------------------------------------
def _read_source(source, filename: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        limit = _byte_limit(data[:16], filename or "")
        if len(data) > limit:
            raise FileTooLargeError(_too_large(filename or "The upload", len(data), limit))
        return data, filename or ""
    if not isinstance(source, (str, os.PathLike)):
        raise ImportFailed(f"Cannot read {type(source).__name__}; pass a file path or the file's bytes.")
    path = Path(source)
    if not path.is_file():
        raise ImportFailed(f"The file {path.name!r} is gone (uploads are kept for an hour); upload it again.")
    size = path.stat().st_size
    if size > MAX_BYTES:  # refused before reading more than its first bytes
        with path.open("rb") as f:
            limit = _byte_limit(f.read(16), path.name)
        if size > limit:
            raise FileTooLargeError(_too_large(path.name, size, limit))
    return path.read_bytes(), filename or path.name


def _is_audio(head: bytes, name: str) -> bool:
    if Path(name).suffix.lower() in audio.AUDIO_EXTENSIONS:
        return True
    try:
        return bool(audio.sniff(head))
    except MusicgenError:  # a video: refused with its own message once read
        return True


def _byte_limit(head: bytes, name: str) -> int:
    return audio.MAX_BYTES if _is_audio(head, name) else MAX_BYTES


def _too_large(name: str, size: int, limit: int = MAX_BYTES) -> str:
    if limit == audio.MAX_BYTES:
        return (f"{name} is {size / 2**20:.0f} MB, over the {limit // 2**20} MB limit for recordings; trim it to "
                f"the melody (at most {audio.MAX_SECONDS / 60:g} minutes).")
    return (f"{name} is {size / 2**20:.1f} MB, over the {limit // 2**20} MB limit; "
            "upload a single melody or a shorter excerpt.")


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def _looks_like_text(data: bytes) -> str | None:
    try:
        text = _decode(data)
    except UnicodeDecodeError:
        return None
    if "\x00" in text:
        return None
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\t\n\r\f")
    return text if controls <= len(text[:4096]) * 0.02 else None


# Files people upload by mistake, by their first bytes (recordings and videos are sniffed by io/audio.py).
OTHER_FORMATS = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip archive"), (b"PK", "a zip archive"),
    (b"\x7fELF", "a program"),
)
ABC_FIELD = re.compile(r"^\s*[XK]:", re.MULTILINE)
ABC_ANY_FIELD = re.compile(r"^\s*[XKMLTQ]:", re.MULTILINE)
XML_ROOT = re.compile(r"<\s*score-(partwise|timewise)\b")


def detect_format(data: bytes, filename: str = "") -> str:
    """'midi', 'mxl', 'musicxml', 'abc', 'tinynotation' or 'audio', by content first, then by extension.

    'audio' covers recordings and what only looks like one (a video, a damaged file named .wav):
    io/audio.py says which.
    """
    ext = Path(filename).suffix.lower() if filename else ""
    label = filename or "The file"
    known = MIDI_EXTENSIONS + XML_EXTENSIONS + ABC_EXTENSIONS + (".mxl",) + audio.AUDIO_EXTENSIONS
    if not data:
        err = CorruptFileError if ext in known else NotMusicError
        raise err(f"{label} is empty (0 bytes); the upload may have failed. Try again.")
    if data[:4] == b"MThd":
        return "midi"
    if data[:4] == b"PK\x03\x04":
        return "mxl"
    try:
        if audio.sniff(data[:1024]):
            return "audio"
    except MusicgenError:  # a video or a codec we cannot decode: io/audio.py refuses it in words
        return "audio"
    text = _looks_like_text(data)
    if text is not None:
        head = text[:8192]
        if XML_ROOT.search(head):
            return "musicxml"
        if ABC_FIELD.search(head):
            return "abc"
    # Content was not conclusive: trust a music extension, so a damaged file says "damaged".
    if ext in MIDI_EXTENSIONS:
        return "midi"
    if ext == ".mxl":
        return "mxl"
    if ext in XML_EXTENSIONS:
        return "musicxml"
    if ext in ABC_EXTENSIONS:
        return "abc"
    if ext in audio.AUDIO_EXTENSIONS:
        return "audio"
    if text is not None and ext in TEXT_EXTENSIONS:
        return "tinynotation"
    kind = next((name for magic, name in OTHER_FORMATS if data.startswith(magic)), None)
    what = f"looks like {kind}, not notes" if kind else "is not a music file we can read"
    raise NotMusicError(
        f"{label} {what}. Upload MIDI (.mid), MusicXML (.musicxml, .xml, .mxl), ABC (.abc) or a recording (WAV, "
        "FLAC, OGG, MP3), or type the notes.")


# -- per format ------------------------------------------------------------------------------------
def _finish(melody: Melody, tracks: list[TrackInfo], track: int, notices: list[str], fmt: str,
            report: QuantizeReport | None, stem: str) -> ImportResult:
    if not melody.name and stem:
        melody = melody.replace(name=stem)
    melody, trimmed = trim_bars(melody, MAX_BARS)
    notices = list(notices)
    if trimmed:
        notices.append(trimmed)
    folded = pitch_range_notice(melody)
    if folded:
        notices.append(folded)
    return ImportResult(melody, tracks, track, notices, fmt, report)


def _from_midi(data: bytes, track: int | None, stem: str) -> ImportResult:
    melody, report = midi_to_melody(data, track, name=stem, max_bars=MAX_BARS)
    return _finish(melody, report.tracks, report.track, report.notices, "midi", report.quantize, stem)


def _from_score_bytes(data: bytes, fmt: str, track: int | None, stem: str) -> ImportResult:
    if fmt == "abc":
        text = _looks_like_text(data)
        if text is None:
            raise CorruptFileError("The ABC file is not readable text; save it as UTF-8 and upload it again.")
        return _from_score(_abc_text(text), "abc", track, stem)
    return _from_score(data, fmt, track, stem)


def _from_score(data: bytes | str, fmt: str, track: int | None, stem: str) -> ImportResult:
    score, notices = read_score(data, fmt)
    infos, notes = part_candidates(score)
    track = choose_track(infos, notes, track, "the score")
    melody, facts = stream_to_melody(score, track, name=score_title(score),
                                              meter_fallback=True)
    return _finish(melody, infos, track, notices + facts.notices + facts.report.notices,
                   "mxl" if fmt == "mxl" else fmt, facts.report, stem)


def _abc_text(text: str) -> str:
    """Typed ABC often lacks the X: line or a K: line; music21 needs both."""
    text = text.strip() + "\n"
    if not re.search(r"^\s*K:", text, re.MULTILINE):
        # K: ends the header: put it after the last header field (or first, if there is none).
        lines = text.splitlines()
        last_header = max((i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z]:", line)), default=-1)
        lines.insert(last_header + 1, "K:C")
        text = "\n".join(lines) + "\n"
    if not re.search(r"^\s*X:", text, re.MULTILINE):
        text = "X:1\n" + text
    if not re.search(r"^\s*[LM]:", text, re.MULTILINE):
        # ABC's default note length without a meter is an eighth; music21 wants it spelled out.
        text = re.sub(r"^(\s*X:[^\n]*\n)", r"\1L:1/8\n", text, flags=re.MULTILINE)
    return text


def _unreadable_tiny_tokens(text: str) -> list[str]:
    """The tokens music21's tinyNotation would silently skip (it ignores what it cannot read)."""
    patterns = [re.compile(p) for p, _ in m21.tinyNotation.Converter().tokenMap]
    bad = []
    for token in text.split():
        core = re.sub(r"^\w+\{", "", token).rstrip("}")
        if core and not any(p.match(core) for p in patterns):
            bad.append(token)
    return bad


def _from_text(text: str, track: int | None, stem: str) -> ImportResult:
    body = text.strip()
    if ABC_ANY_FIELD.search(body):
        result = _from_score(_abc_text(body), "abc", track, stem)
        result.format = "abc"
        return result
    body = re.sub(r"^tinynotation:\s*", "", body, flags=re.IGNORECASE)
    bad = _unreadable_tiny_tokens(body)
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NotMusicError(f"Could not read {shown} as notes. {HOW_TO_TYPE}")
    for meter in re.findall(r"(?<![\w/])(-?\d+)/(-?\d+)(?![\w/])", body):
        problem = meter_problem(int(meter[0]), int(meter[1]))
        if problem:  # said here: tinyNotation would fail on it with a library message (a division by zero)
            raise UnsupportedMeterError(f"{problem} Type a time signature such as 4/4, 3/4 or 6/8.")
    try:
        score = m21.converter.parse("tinyNotation: " + body)
    except Exception as exc:  # tinyNotation raises TinyNotationException and friends: its words are not ours
        log.info("tinyNotation refused typed notes: %s: %s", type(exc).__name__, exc)
        raise NotMusicError(f"The typed notes could not be read. {HOW_TO_TYPE}") from exc
    notes = part_notes(score)
    if not notes:
        raise NoNotesError(f"No notes were typed, only {body[:40]!r}. {HOW_TO_TYPE}")
    info = describe_track(0, "Typed melody", notes)
    melody, facts = stream_to_melody(score, 0, name=stem or "Typed melody", meter_fallback=True)
    return _finish(melody, [info], 0, facts.notices + facts.report.notices, "tinynotation", facts.report, stem)
