"""The one type every layer passes around: a monophonic melody on a step grid.

Time is counted in *steps*: ``steps_per_quarter`` steps per quarter note (4 by default, so a step is
a sixteenth note). Bar lines fall at ``pickup_steps + k * bar_steps``; a melody with an anacrusis
has ``pickup_steps > 0`` and its first (partial) bar is ``pickup_steps`` long. ``total_steps`` keeps
trailing rests so a clip's length survives round trips.

Everything else (MIDI, MusicXML, ABC, model tokens, audio) converts to or from a :class:`Melody`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import MelodyError

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor; see Key.scale_pitch_classes
SUPPORTED_DENOMINATORS = (2, 4, 8, 16)
DEFAULT_VELOCITY = 90
MIN_QPM, MAX_QPM = 10.0, 400.0
# The 88 piano keys, A0-C8: the pitches the models read and write (others are folded by octaves).
PIANO_LOW, PIANO_HIGH = 21, 108
# Key signatures with the fewest accidentals, by tonic pitch class (Db major but C# minor): what
# MIDI key signatures, MusicXML and the page call a key.
MAJOR_TONIC_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_TONIC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
# Bellman-Budge key profiles, tonic first: pitch-class weights from Budge's (1943) chord counts in
# common-practice music, as Bellman (2005, "About the determination of key of a musical excerpt")
# tabulates them for the Krumhansl-Schmuckler method (also music21's analysis.discrete.BellmanBudge).
# Chosen over Krumhansl-Kessler and others by agreement with the corpus files' keys on the train and
# valid splits (bench/eval_key.py; figures in docs/benchmarks.md, "Key").
BELLMAN_BUDGE_MAJOR = np.array([16.80, 0.86, 12.95, 1.41, 13.49, 11.93, 1.25, 20.28, 1.80, 8.04, 0.62, 10.57])
BELLMAN_BUDGE_MINOR = np.array([18.16, 0.69, 12.99, 13.34, 1.07, 11.15, 1.38, 21.07, 7.49, 1.53, 0.92, 10.21])
# Added to the correlation of keys whose tonic is the pitch class of the note that starts last:
# tunes end on their tonic far more often than any profile alone can tell (chosen on the train split).
FINAL_TONIC_BONUS = 0.1


def meter_name(time_signature: tuple[int, int]) -> str:
    """(3, 4) -> "3/4"."""
    return f"{time_signature[0]}/{time_signature[1]}"


def meter_problem(num: int, den: int, steps_per_quarter: int = 4) -> str | None:
    """Why ``num/den`` cannot be a Melody's meter on this grid, or None when it can."""
    if den not in SUPPORTED_DENOMINATORS or not 1 <= num <= 32:
        return (f"Time signature {num}/{den} is not supported; the denominator must be one of "
                f"{SUPPORTED_DENOMINATORS} and the numerator 1-32.")
    if (num * steps_per_quarter * 4) % den:
        return f"A bar of {num}/{den} is not a whole number of steps at {steps_per_quarter} steps per quarter."
    return None


@dataclass(frozen=True, order=True)
class Note:
    """One note: MIDI pitch 0-127, onset and length in steps, MIDI velocity 1-127."""

    start: int
    pitch: int
    duration: int
    velocity: int = DEFAULT_VELOCITY

    def __post_init__(self):
        # Corpus loading builds ~800k notes: plain ints skip the per-field normalisation.
        if not (type(self.start) is type(self.pitch) is type(self.duration) is type(self.velocity) is int):
            self._normalise_ints()
        if not 0 <= self.pitch <= 127:
            raise MelodyError(f"Note pitch {self.pitch} is outside MIDI's 0-127.")
        if self.start < 0:
            raise MelodyError(f"Note at step {self.start} starts before the melody (step 0).")
        if self.duration < 1:
            raise MelodyError(
                f"Note {self.pitch} at step {self.start} has duration {self.duration}; "
                "every note must last at least one step."
            )
        if not 1 <= self.velocity <= 127:
            raise MelodyError(f"Note velocity {self.velocity} is outside 1-127.")

    def _normalise_ints(self):
        for name in ("start", "pitch", "duration", "velocity"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                # numpy ints sneak in from converters; normalise rather than fail.
                try:
                    object.__setattr__(self, name, int(value))
                except (TypeError, ValueError):
                    raise MelodyError(f"Note {name} must be an integer, got {value!r}.") from None

    @property
    def end(self) -> int:
        return self.start + self.duration


@dataclass(frozen=True)
class Key:
    """A key: tonic pitch class (0 = C ... 11 = B) and mode ('major' or 'minor')."""

    tonic: int = 0
    mode: str = "major"

    def __post_init__(self):
        if self.mode not in ("major", "minor"):
            raise MelodyError(f"Key mode {self.mode!r} is not supported; use 'major' or 'minor'.")
        if not isinstance(self.tonic, int) or not 0 <= self.tonic <= 11:
            raise MelodyError(f"Key tonic {self.tonic!r} must be a pitch class 0-11 (0 = C).")

    @property
    def tonic_name(self) -> str:
        return (MAJOR_TONIC_NAMES if self.mode == "major" else MINOR_TONIC_NAMES)[self.tonic]

    @property
    def name(self) -> str:
        return f"{self.tonic_name} {self.mode}"

    @classmethod
    def all(cls) -> list[Key]:
        """The 24 keys, majors first, each from C."""
        return [cls(t, mode) for mode in ("major", "minor") for t in range(12)]

    def scale_pitch_classes(self) -> frozenset[int]:
        """Scale tones; minor includes the raised 6th and 7th, which folk and Bach minor use."""
        steps = MAJOR_SCALE if self.mode == "major" else MINOR_SCALE + (9, 11)
        return frozenset((self.tonic + s) % 12 for s in steps)

    @classmethod
    def parse(cls, text: str) -> Key:
        """'D minor', 'Eb major', 'f# minor', 'C' (major implied)."""
        parts = text.strip().split()
        if not parts or len(parts) > 2:
            raise MelodyError(f"Key {text!r} is not like 'D minor' or 'Eb major'.")
        tonic_name = parts[0][0].upper() + parts[0][1:].replace("-", "b")
        aliases = {"Db": "C#", "D#": "Eb", "Gb": "F#", "G#": "Ab", "A#": "Bb", "Cb": "B", "Fb": "E",
                   "E#": "F", "B#": "C"}
        tonic_name = aliases.get(tonic_name, tonic_name)
        if tonic_name not in PITCH_NAMES:
            raise MelodyError(f"Key {text!r}: unknown tonic {parts[0]!r}; use a name like C, F#, Bb.")
        mode = parts[1].lower() if len(parts) == 2 else "major"
        return cls(PITCH_NAMES.index(tonic_name), mode)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Melody:
    """A validated monophonic melody. See the module docstring for the time grid."""

    notes: tuple[Note, ...]
    total_steps: int = 0  # 0 means "end of the last note"
    qpm: float = 120.0
    time_signature: tuple[int, int] = (4, 4)
    key: Key = field(default_factory=Key)
    program: int = 0
    pickup_steps: int = 0
    steps_per_quarter: int = 4
    name: str = ""  # the song's title
    part_name: str = ""  # the instrument part's own name (a MIDI track's, a score part's), kept on export

    DEFAULT_PART_NAME = "Melody"  # what a part without a name of its own is called in files

    def __post_init__(self):
        notes = tuple(self.notes)
        if any(a.start > b.start for a, b in zip(notes, notes[1:])):
            notes = tuple(sorted(notes, key=lambda n: (n.start, n.pitch)))
        object.__setattr__(self, "notes", notes)
        object.__setattr__(self, "time_signature", tuple(int(x) for x in self.time_signature))
        problem = meter_problem(*self.time_signature, self.steps_per_quarter)
        if problem:
            raise MelodyError(problem)
        if not MIN_QPM <= self.qpm <= MAX_QPM:
            raise MelodyError(f"Tempo {self.qpm} qpm is outside {MIN_QPM:g}-{MAX_QPM:g}; set a realistic tempo.")
        if not 0 <= self.program <= 127:
            raise MelodyError(f"GM program {self.program} is outside 0-127.")
        if not 0 <= self.pickup_steps < self.bar_steps:
            raise MelodyError(
                f"Pickup of {self.pickup_steps} steps must be shorter than a bar ({self.bar_steps} steps)."
            )
        for a, b in zip(notes, notes[1:]):
            if b.start < a.end:
                raise MelodyError(
                    f"Notes overlap: pitch {a.pitch} at step {a.start} lasts until step {a.end}, "
                    f"but pitch {b.pitch} starts at step {b.start}. A melody plays one note at a "
                    "time; reduce chords to one line first."
                )
        end = notes[-1].end if notes else 0
        if self.total_steps == 0:
            object.__setattr__(self, "total_steps", end)
        elif self.total_steps < end:
            raise MelodyError(f"total_steps {self.total_steps} is shorter than the last note's end {end}.")

    # -- derived facts ---------------------------------------------------------------------------
    @property
    def bar_steps(self) -> int:
        num, den = self.time_signature
        return num * self.steps_per_quarter * 4 // den

    @property
    def beat_steps(self) -> int:
        """Steps per felt beat: a dotted quarter in compound meters (6/8, 9/8, 12/8)."""
        num, den = self.time_signature
        unit = self.steps_per_quarter * 4 // den
        if den == 8 and num % 3 == 0 and num > 3:
            return unit * 3
        return unit

    @property
    def num_bars(self) -> float:
        """Bars after the pickup, fractional when the last bar is incomplete."""
        return max(0, self.total_steps - self.pickup_steps) / self.bar_steps

    @property
    def whole_bars(self) -> int:
        return math.ceil(self.num_bars)

    @property
    def seconds_per_step(self) -> float:
        return 60.0 / self.qpm / self.steps_per_quarter

    @property
    def duration_seconds(self) -> float:
        return self.total_steps * self.seconds_per_step

    @property
    def pitch_range(self) -> tuple[int, int] | None:
        if not self.notes:
            return None
        pitches = [n.pitch for n in self.notes]
        return min(pitches), max(pitches)

    def summary(self) -> dict:
        """What was understood, for the UI."""
        rng = self.pitch_range
        return {
            "name": self.name,
            "tempo_qpm": round(self.qpm, 2),
            "time_signature": f"{self.time_signature[0]}/{self.time_signature[1]}",
            "key": self.key.name,
            "bars": round(self.num_bars, 2),
            "pickup_steps": self.pickup_steps,
            "notes": len(self.notes),
            "range": f"{rng[0]}-{rng[1]}" if rng else "",
            "program": self.program,
        }

    # -- derived melodies ------------------------------------------------------------------------
    @property
    def part_label(self) -> str:
        """The name the melody's track or part gets in a file."""
        return self.part_name or self.name or self.DEFAULT_PART_NAME

    def replace(self, **changes) -> Melody:
        return dataclasses.replace(self, **changes)

    def transpose(self, semitones: int) -> Melody:
        return self.replace(
            notes=tuple(dataclasses.replace(n, pitch=n.pitch + semitones) for n in self.notes),
            key=Key((self.key.tonic + semitones) % 12, self.key.mode),
        )

    def slice(self, start: int, stop: int) -> Melody:
        """Steps [start, stop) as a new melody starting at step 0; notes crossing the edges are cut."""
        if not 0 <= start <= stop:
            raise MelodyError(f"Cannot slice steps {start}..{stop}.")
        notes = []
        for n in self.notes:
            s, e = max(n.start, start), min(n.end, stop)
            if s < e and n.start >= start:
                notes.append(dataclasses.replace(n, start=s - start, duration=e - s))
        pickup = (self.pickup_steps - start) % self.bar_steps
        return self.replace(notes=tuple(notes), total_steps=stop - start, pickup_steps=pickup)

    def concat(self, other: Melody) -> Melody:
        """``other`` appended after this melody's total_steps; keeps this melody's metadata."""
        shifted = tuple(dataclasses.replace(n, start=n.start + self.total_steps) for n in other.notes)
        return self.replace(notes=self.notes + shifted, total_steps=self.total_steps + other.total_steps)


def snap_to_key(melody: Melody, key: Key | None = None) -> tuple[Melody, int]:
    """``melody`` with each pitch outside ``key``'s scale (default: ``melody.key``; see
    :meth:`Key.scale_pitch_classes`) moved to the nearest scale tone, and how many notes moved.

    A pitch a semitone from two scale tones goes toward the previous note's pitch (the next note's
    for the first note; down when both lie on one side), so a line keeps its direction.
    """
    scale = (key or melody.key).scale_pitch_classes()
    notes, moved = list(melody.notes), 0
    for i, n in enumerate(notes):
        if n.pitch % 12 in scale:
            continue
        down = next(p for p in range(n.pitch - 1, n.pitch - 12, -1) if p % 12 in scale)
        up = next(p for p in range(n.pitch + 1, n.pitch + 12) if p % 12 in scale)
        if n.pitch - down != up - n.pitch:
            pitch = down if n.pitch - down < up - n.pitch else up
        else:
            neighbour = notes[i - 1] if i else (notes[i + 1] if i + 1 < len(notes) else None)
            pitch = up if neighbour is not None and neighbour.pitch > n.pitch and up <= 127 else down
        notes[i] = dataclasses.replace(n, pitch=max(0, min(127, pitch)))
        moved += 1
    return melody.replace(notes=tuple(notes)), moved


def estimate_key(notes: Iterable[Note], candidates: Iterable[Key] | None = None) -> Key:
    """Krumhansl-Schmuckler with the Bellman-Budge profiles: the key whose profile best correlates
    (Pearson) with the duration-weighted pitch classes, plus FINAL_TONIC_BONUS for keys whose tonic
    is the pitch class of the note that starts last (:func:`key_scores`). Linear in the notes;
    ``candidates`` narrows the choice (e.g. to the major key and relative minor of a key
    signature). No notes: C major.
    """
    hist = np.zeros(12)
    last = None
    for n in notes:
        hist[n.pitch % 12] += n.duration
        if last is None or n.start > last.start:
            last = n
    keys = list(candidates) if candidates is not None else Key.all()
    if not hist.any() or not keys:
        return keys[0] if keys else Key()
    scores = key_scores(hist[None], np.array([last.pitch % 12]), keys)[0]
    # Ties go to the later candidate by (score, tonic, mode).
    best = max(range(len(keys)), key=lambda i: (scores[i], keys[i].tonic, keys[i].mode))
    return keys[best]


def key_scores(hist: np.ndarray, last: np.ndarray, keys: list[Key],
               profiles: tuple[np.ndarray, np.ndarray] = (BELLMAN_BUDGE_MAJOR, BELLMAN_BUDGE_MINOR),
               bonus: float = FINAL_TONIC_BONUS) -> np.ndarray:
    """(n, 12) duration-weighted pitch classes and (n,) the pitch class of each one's last-starting
    note (-1: none) -> (n, len(keys)): each key's (major, minor) profile's Pearson correlation with
    the histogram (-1 where undefined), plus ``bonus`` where the key's tonic is that last pitch class.
    estimate_key's scores; bench/eval_key.py scores other profiles and bonuses with it."""
    p = np.stack([np.roll(profiles[k.mode == "minor"], k.tonic) for k in keys])
    # Pearson correlation with every profile at once (np.corrcoef per profile took 1.3 ms a melody)
    h, p = hist - hist.mean(1, keepdims=True), p - p.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.nan_to_num((h @ p.T) / np.sqrt((h * h).sum(1, keepdims=True) * (p * p).sum(1)), nan=-1.0)
    return scores + bonus * (np.array([k.tonic for k in keys])[None, :] == np.asarray(last)[:, None])
