"""From timed notes in quarter notes (any source) to a Melody on the step grid.

Both importers (MIDI via mido, scores via music21) produce :class:`RawNote` lists and hand them
here, so chords become one line, onsets snap to the grid, long pieces are trimmed and the melody
track is chosen the same way everywhere.

Which track is "the melody" (:func:`melody_likeness`): a melody plays one note at a time, sits in
the middle or upper register and has many notes. The score of a track is

    log(1 + notes) * (1 - chord_fraction) ** 2 * register

where ``chord_fraction`` is the share of notes that start together with, or while, another note of
the same track (0 for a solo line, near 1 for block chords) and ``register`` depends on the
track's median pitch: 1 at 60 (middle C), rising to 1.5 at 72 and above (the tune usually sits on
top, so a soprano beats an alto), falling to 0.25 at 42 and below (bass lines). A track named like
a melody ("melody", "lead", "vocal", "voice", "soprano", "tune") gets x1.5.
Drum tracks score 0 and are never chosen by default.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ..errors import DrumsOnlyError, MelodyError, NoNotesError, TrackChoiceError
from ..melody import MAX_QPM, MIN_QPM, PIANO_HIGH, PIANO_LOW, Key, Melody, Note, meter_problem

# A pickup read from the notes must place them at least this much better than no pickup does
# (chosen on the corpus's validation tunes; figures on the test split: bench/eval_pickup.py).
PICKUP_MARGIN = 0.02
MELODY_NAME_HINTS = ("melody", "lead", "vocal", "voice", "soprano", "tune", "melodie")


@dataclass(frozen=True)
class RawNote:
    onset: float  # quarter notes from the start
    duration: float  # quarter notes
    pitch: int
    velocity: int = 90


@dataclass
class QuantizeReport:
    max_onset_shift: float = 0.0  # in steps
    mean_onset_shift: float = 0.0
    chord_notes_dropped: int = 0
    notes_shortened: int = 0
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrackInfo:
    """One candidate track (MIDI track or channel, score part) for the UI's track choice.

    ``index`` is what ``importer.load_melody(track=...)`` takes; ``low``/``high`` are MIDI pitches
    (0 when the track has no notes); ``chord_fraction`` is explained in the module docstring.
    """

    index: int
    name: str
    notes: int
    low: int
    high: int
    is_drum: bool = False
    program: int = 0
    chord_fraction: float = 0.0

    @property
    def label(self) -> str:
        kind = "drums" if self.is_drum else f"{self.notes} notes, pitches {self.low}-{self.high}"
        return f"{self.index}: {self.name} ({kind})"


@dataclass
class ImportResult:
    """The melody taken from a file or a recording, the candidate tracks and what happened on the way.

    ``transcription`` is set for a recording: what the transcriber heard
    (:class:`musicgen_app.io.audio.Transcription`: notes in seconds, pitch curve, tempo, where the
    grid fell), for a view that lets the musician check it.
    """

    melody: Melody
    tracks: list[TrackInfo]
    track: int  # index into ``tracks`` of the track that became the melody
    notices: list[str] = field(default_factory=list)
    format: str = ""  # 'midi', 'musicxml', 'mxl', 'abc', 'tinynotation', or a recording's 'wav', 'flac', 'ogg', 'mp3'
    quantize: QuantizeReport | None = None
    transcription: object | None = None


def chord_fraction(notes: list[RawNote]) -> float:
    """Share of notes that start together with, or while, another note is sounding."""
    if len(notes) < 2:
        return 0.0
    ordered = sorted(notes, key=lambda n: (n.onset, -n.pitch))
    crowded = 0
    latest_end = -math.inf
    last_onset = None
    for n in ordered:
        # A tiny tolerance: legato playing overlaps a few ticks without being a chord.
        if n.onset < latest_end - 0.05 or (last_onset is not None and abs(n.onset - last_onset) < 1e-6):
            crowded += 1
        latest_end = max(latest_end, n.onset + n.duration)
        last_onset = n.onset
    return crowded / len(ordered)


def describe_track(index: int, name: str, notes: list[RawNote], *, is_drum: bool = False,
                   program: int = 0) -> TrackInfo:
    pitches = [n.pitch for n in notes]
    return TrackInfo(index, name, len(notes), min(pitches, default=0), max(pitches, default=0),
                     is_drum, program, round(chord_fraction(notes), 3))


def melody_likeness(info: TrackInfo, notes: list[RawNote]) -> float:
    """Higher is more melody-like; see the module docstring for the formula."""
    if info.is_drum or not notes:
        return 0.0
    median = statistics.median(n.pitch for n in notes)
    if median >= 60:
        register = min(1.5, 1.0 + (median - 60) / 24)
    else:
        register = max(0.25, 1.0 - 0.75 * (60 - median) / 18)
    score = math.log1p(len(notes)) * (1.0 - info.chord_fraction) ** 2 * register
    if any(hint in info.name.lower() for hint in MELODY_NAME_HINTS):
        score *= 1.5
    return score


def pick_melody_track(tracks: list[TrackInfo], notes: list[list[RawNote]]) -> int | None:
    """Index of the most melody-like track, None when every track is drums or empty."""
    best, best_score = None, 0.0
    for info, track_notes in zip(tracks, notes):
        score = melody_likeness(info, track_notes)
        if score > best_score:
            best, best_score = info.index, score
    return best


def choose_track(tracks: list[TrackInfo], notes: list[list[RawNote]], track: int | None,
                 source: str = "The file") -> int:
    """The track to read: ``track`` when it is a pitched one, else the most melody-like.

    Raises :class:`NoNotesError` / :class:`DrumsOnlyError` when nothing is pitched, and
    :class:`TrackChoiceError` (listing the pitched tracks) for a missing, empty or drum track.
    """
    pitched = [t for t in tracks if t.notes and not t.is_drum]
    if not pitched:
        if any(t.is_drum and t.notes for t in tracks):
            raise DrumsOnlyError(f"Every note in {source} is percussion (drums); there is no melody to take. "
                                 "Upload a file with a pitched instrument.")
        raise NoNotesError(f"{source} holds no pitched notes (only settings or silence); "
                           "upload a file with a melody in it.")
    listing = "; ".join(t.label for t in pitched)
    if track is None:
        best = pick_melody_track(tracks, notes)
        return pitched[0].index if best is None else best
    if isinstance(track, bool) or not isinstance(track, int) or not 0 <= track < len(tracks):
        raise TrackChoiceError(f"Track {track!r} does not exist; choose one of: {listing}.")
    chosen = tracks[track]
    if chosen.is_drum:
        raise TrackChoiceError(f"Track {track} ({chosen.name}) is a drum track; choose a pitched one: {listing}.")
    if not chosen.notes:
        raise TrackChoiceError(f"Track {track} ({chosen.name}) has no pitched notes; choose one of: {listing}.")
    return track


def first_tempo(tempi: list[float], notices: list[str]) -> float:
    """The melody's tempo: the file's first (kept within what a Melody takes); changes are noted."""
    tempi = [t for t in dict.fromkeys(round(t, 2) for t in tempi) if t > 0]
    if not tempi:
        return 120.0
    qpm = min(MAX_QPM, max(MIN_QPM, tempi[0]))
    if qpm != tempi[0]:
        notices.append(f"Tempo {tempi[0]:g} qpm is outside {MIN_QPM:g}-{MAX_QPM:g}; using {qpm:g} qpm.")
    later = [t for t in tempi[1:] if t != tempi[0]]
    if later:
        shown = ", ".join(f"{t:g}" for t in later[:4]) + (", ..." if len(later) > 4 else "")
        notices.append(f"The tempo changes to {shown} qpm later on; the melody keeps the first tempo, "
                       f"{tempi[0]:g} qpm.")
    return qpm


def first_meter(meters: list[tuple[int, int]], steps_per_quarter: int, notices: list[str], *,
                fallback: bool = True) -> tuple[tuple[int, int], bool]:
    """The melody's meter: the first of ``meters`` (4/4 when there is none); later changes are noted.

    A meter the grid cannot hold becomes 4/4 with a notice, or raises :class:`MelodyError` without
    ``fallback`` (the corpus skips such tunes). Returns the meter and whether it is the file's own.
    """
    num, den = meters[0] if meters else (4, 4)
    own = True
    if meter_problem(num, den, steps_per_quarter):
        if not fallback:
            raise MelodyError(meter_problem(num, den, steps_per_quarter))
        notices.append(f"Time signature {num}/{den} is not supported; read the melody as 4/4.")
        num, den, own = 4, 4, False
    later = [f"{n}/{d}" for n, d in dict.fromkeys(meters[1:]) if (n, d) != (num, den)]
    if later:
        notices.append(f"The meter changes to {', '.join(later)} later on; the melody keeps {num}/{den}.")
    return (num, den), own


def skyline(notes: list[RawNote]) -> tuple[list[RawNote], int]:
    """Keep the top note of each group of simultaneous onsets; returns (line, dropped count)."""
    by_onset: dict[float, RawNote] = {}
    for n in notes:
        key = round(n.onset, 4)
        best = by_onset.get(key)
        if best is None or n.pitch > best.pitch:
            by_onset[key] = n
    line = sorted(by_onset.values(), key=lambda n: n.onset)
    return line, len(notes) - len(line)


def build_melody(notes: list[RawNote], *, steps_per_quarter: int = 4, total_quarters: float | None = None,
                 **meta) -> tuple[Melody, QuantizeReport]:
    """Skyline, snap to the grid, cut overlaps; ``meta`` goes to :class:`Melody` (qpm, key, ...).

    ``report.notices`` says, in words for the UI, how far onsets moved and how many chord notes
    were dropped.
    """
    report = QuantizeReport()
    line, report.chord_notes_dropped = skyline(notes)
    shifts = []
    placed: list[list[int]] = []  # [start, pitch, duration, velocity]
    for n in line:
        exact = n.onset * steps_per_quarter
        start = int(round(exact))
        end = max(start + 1, int(round((n.onset + n.duration) * steps_per_quarter)))
        shifts.append(abs(exact - start))
        if placed and placed[-1][0] == start:
            # Two onsets snapped onto one step: keep the higher, as the skyline does.
            if n.pitch <= placed[-1][1]:
                report.chord_notes_dropped += 1
                continue
            placed.pop()
            report.chord_notes_dropped += 1
        if placed and placed[-1][0] + placed[-1][2] > start:
            placed[-1][2] = start - placed[-1][0]
            report.notes_shortened += 1
        placed.append([start, n.pitch, end - start, max(1, min(127, int(n.velocity)))])
    if shifts:
        report.max_onset_shift = max(shifts)
        report.mean_onset_shift = sum(shifts) / len(shifts)
    melody_notes = tuple(Note(s, p, d, v) for s, p, d, v in placed)
    total = 0
    if total_quarters is not None:
        total = int(round(total_quarters * steps_per_quarter))
    if melody_notes:
        total = max(total, melody_notes[-1].end)
    meta.setdefault("key", Key())
    melody = Melody(notes=melody_notes, total_steps=total, steps_per_quarter=steps_per_quarter, **meta)
    if report.max_onset_shift > 0.01:
        report.notices.append(
            f"Onsets moved to the 1/{4 * steps_per_quarter}-note grid by up to "
            f"{report.max_onset_shift:.2f} steps (mean {report.mean_onset_shift:.2f}).")
    if report.chord_notes_dropped:
        report.notices.append(
            f"Chords reduced to their top line: {report.chord_notes_dropped} lower note(s) dropped.")
    return melody, report


def best_bar_offset(melody: Melody, offsets) -> int:
    """Of ``offsets`` (steps from a bar line to the melody's step 0), the one under which the notes'
    duration-weighted metrical strength (as in :func:`detect_pickup`) is highest; the first of equals.

    For notes whose bar lines nobody wrote down (a recording): the melody's pickup is then
    ``(bar_steps - offset) % bar_steps``.
    """
    bar, beat, eighth = melody.bar_steps, melody.beat_steps, max(1, melody.steps_per_quarter // 2)
    best, best_score = None, -1.0
    for offset in offsets:
        score = sum(n.duration * _metrical_weight((n.start + offset) % bar, bar, beat, eighth) for n in melody.notes)
        if score > best_score + 1e-9:
            best, best_score = offset, score
    return 0 if best is None else best


def _metrical_weight(pos: int, bar: int, beat: int, eighth: int) -> float:
    """How strong a position in the bar is: the downbeat, the bar's middle, a beat, an eighth, the rest."""
    if pos == 0:
        return 1.0
    if bar % 2 == 0 and pos == bar // 2 and pos % beat == 0:
        return 0.6
    if pos % beat == 0:
        return 0.4
    return 0.15 if pos % eighth == 0 else 0.05


def detect_pickup(melody: Melody, margin: float = PICKUP_MARGIN) -> int:
    """Steps before the first downbeat of a melody whose file marks no pickup (0: none found).

    The file's length says where a pickup could be: a melody that opens on the upbeat and does not
    shorten its last bar ends ``p`` steps past a bar line (a waltz with a one-beat upbeat is
    "16.33 bars"). That ``p`` is taken when the notes agree: their duration-weighted metrical
    strength (long notes sit on strong beats) is at least as high with the bar lines moved by ``p``
    as without. A file of whole bars is left as it is, so our own exports read back unchanged.
    """
    notes = melody.notes
    bar = melody.bar_steps
    p = melody.total_steps % bar
    if len(notes) < 4 or not p or notes[0].start >= p:
        return 0
    beat, eighth = melody.beat_steps, max(1, melody.steps_per_quarter // 2)

    def score(offset: int) -> float:
        return sum(n.duration * _metrical_weight((n.start - offset) % bar, bar, beat, eighth) for n in notes)

    total = sum(n.duration for n in notes)
    return p if score(p) / total >= score(0) / total + margin else 0


def trim_bars(melody: Melody, max_bars: int) -> tuple[Melody, str | None]:
    """The first ``max_bars`` bars (after the pickup), and a notice when anything was cut."""
    limit = melody.pickup_steps + max_bars * melody.bar_steps
    if melody.total_steps <= limit:
        return melody, None
    bars = melody.whole_bars
    return melody.slice(0, limit), f"The melody has {bars} bars; kept the first {max_bars}."


def pitch_range_notice(melody: Melody, low: int = PIANO_LOW, high: int = PIANO_HIGH) -> str | None:
    """The models fold pitches outside ``low``-``high`` by octaves; say so up front."""
    outside = sum(1 for n in melody.notes if not low <= n.pitch <= high)
    if not outside:
        return None
    return (f"{outside} note(s) lie outside pitches {low}-{high} and will be folded by octaves "
            "when a model reads the melody.")
