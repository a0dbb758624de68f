"""One request object per action, and what the action returns.

Every setting a musician can change is declared here once (see :mod:`musicgen_app.settings`):
its kind, range or choices, default, label and help. The page, the API, the CLI and the MCP tools
build their controls from these declarations and a request with
:func:`~musicgen_app.settings.build_request`; the service takes the request whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pretty_midi.constants import INSTRUMENT_MAP

from .. import tokens as tk
from ..errors import MelodyError, RequestError
from ..melody import Key, Melody
from ..models.code_bank import Attributes
from ..models.style import StyleModel
from ..settings import check_settings, choice, flag, meter, number, seed, text
from . import phrasing, pitch_guard

KEY_NAMES = tuple(k.name for k in Key.all())
KEY_LOCKS = ("off", "detected", *KEY_NAMES)
KEEP_PROGRAM = -1  # the instrument choice "keep the input's"
PROGRAMS = ((KEEP_PROGRAM, "Keep the input's"), *((i, f"{i}: {name}") for i, name in enumerate(INSTRUMENT_MAP)))
# How the steps of a morph are spaced: "even" so that each step changes the melody by about as much
# as the next (see decoding.paced_ts), "linear" at equal distances along the latent path.
PACINGS = {"even": "Even steps", "linear": "Equal latent distance"}
TIME_SIGNATURES = ("4/4", "3/4", "2/4", "6/8")
# Where Generate's codes come from: near the codes of training windows (models/code_bank.py, the one
# with shape controls), a model fitted to the user's clips (models/style.py), the latent GAN
# (models/latent_gan.py), or the Gaussian fitted to the training codes (MelodyVAE.sample_prior).
SAMPLERS = {"bank": "Corpus neighbourhood", "gan": "Latent GAN", "gaussian": "Gaussian prior",
            "style": "More like my clips"}
BAR_CHOICES = ((4, "4"), (8, "8"), (16, "16"))  # Generate's lengths: one VAE window per 4 bars
GENERATE_KEYS = ("any", "major", "minor", *KEY_NAMES)  # free, a mode in any key, or one key


def soundfont_setting():
    return text("SoundFont", "", help="a SoundFont's name from the soundfonts list; empty: the default")


def continuation_steps(melody: Melody, bars: int) -> int:
    """Steps to the next bar line, then ``bars`` whole bars."""
    to_bar_line = (-(melody.total_steps - melody.pickup_steps)) % melody.bar_steps
    return to_bar_line + bars * melody.bar_steps


@dataclass(frozen=True)
class ContinueRequest:
    """Continue ``melody`` with the LSTM (Continue, and "More like this" with ``like``)."""

    melody: Melody
    bars: int = number("Bars", 1, 32, 8, help="new bars after the input")
    temperature: float = number("Temperature", 0.1, 2.0, 1.0, 0.05, help="higher: wilder")
    variations: int = number("Variations", 1, 8, 4, help="continuations to write at once")
    seed: int | None = seed()
    key_lock: str = choice("Key lock", KEY_LOCKS, "off",
                           help="new notes stay in the scale; minor also allows the raised 6th and 7th")
    ending: str = choice("End on", phrasing.ENDINGS, phrasing.LIKE_REAL,
                         help="where the last bar lands, in the melody's key (the locked key when one is set); "
                              "like real tunes: on the tonic chord as often as real tunes do at that bar")
    stay_close: float = number("Stay close", 0.0, 1.0, 0.5, 0.05,
                               help="1: the input's bars come back often; 0: new material; 0.5: as often as in "
                                    "real tunes")
    program: int = choice("Instrument", PROGRAMS, KEEP_PROGRAM, help="General MIDI program of the results")
    soundfont: str = soundfont_setting()
    pitch_range: tuple[int, int] | None = None  # lowest, highest; None: pitch_guard.pitch_guard(melody)
    like: Melody | None = None  # an earlier variation (ContinueResult.continuations[i]) to write more like

    def validate(self):
        if not self.melody.notes:
            raise RequestError("The melody has no notes; give at least one note to continue from.")
        check_settings(self)
        if self.like is not None:
            phrasing.check_like(self.like, self.melody, continuation_steps(self.melody, self.bars))
        if self.pitch_range is not None:
            lo, hi = self.pitch_range
            if not tk.MIN_PITCH <= lo < hi <= tk.MAX_PITCH:
                raise RequestError(f"Pitch range {self.pitch_range} must lie within {tk.MIN_PITCH}-{tk.MAX_PITCH} "
                                   "with low < high.")

    def locked_key(self) -> Key | None:
        if self.key_lock == "detected":
            return self.melody.key
        if self.key_lock != "off":
            try:
                return Key.parse(self.key_lock)
            except MelodyError:
                raise RequestError(f"Key lock {self.key_lock[:30]!r} is not a key; choose off, detected, or a key "
                                   "such as 'D minor'.") from None
        return None

    def guard_range(self) -> tuple[int, int]:
        """Lowest and highest pitch a continuation may play: the asked range, else the pitch guard's."""
        return self.pitch_range or pitch_guard.pitch_guard(self.melody)

    @property
    def program_number(self) -> int | None:
        """The General MIDI program to write, or None to keep the input's."""
        return None if self.program == KEEP_PROGRAM else self.program


@dataclass(frozen=True)
class ContinueResult:
    """Variations best first: those that end as asked, each group by the model's likelihood per note."""

    primer: Melody  # the request's melody
    melodies: list[Melody]  # input followed by each continuation
    continuations: list[Melody]  # the new part alone, starting at step 0
    start_step: int  # where the continuation starts inside each of ``melodies``
    seed: int
    key_lock: Key | None
    notices: list[str] = field(default_factory=list)
    log2p_per_note: tuple[float, ...] = ()  # the LSTM's own likelihood of each variation: log2, per note event
    ended: tuple[bool, ...] = ()  # whether each variation ends as the request asked
    pitch_range: tuple[int, int] = (tk.MIN_PITCH, tk.MAX_PITCH)  # the pitch guard used (lowest, highest)

    def new_bars(self, i: int) -> Melody:
        """Variation ``i``'s new notes as a file of their own, in whole bars of the input's meter.

        When the input ends inside a bar, the continuation starts there; this pads it with rests
        from that bar's line instead of starting the file with a short bar (a DAW would read a
        1/8 or 1/2 meter). Placed at the input's last bar line, it lines up with the input.
        """
        whole = self.melodies[i]
        bar_line = self.start_step - (self.start_step - whole.pickup_steps) % whole.bar_steps
        part = whole.slice(bar_line, whole.total_steps)
        return part.replace(notes=tuple(n for n in part.notes if n.start >= self.start_step - bar_line))


@dataclass(frozen=True)
class InterpolateRequest:
    """Morph clip ``a`` into clip ``b`` through the VAE's latent space."""

    a: Melody
    b: Melody
    steps: int = number("Steps", 3, 11, 7, help="clips in the morph, A and B included")
    temperature: float = number("Temperature", 0.0, 2.0, 0.0, 0.05, help="0: the most likely notes")
    seed: int | None = seed()
    pacing: str = choice("Pacing", PACINGS, "even", help="even: each step changes the melody about as much as the next")
    soundfont: str = soundfont_setting()

    def validate(self):
        for name, m in (("A", self.a), ("B", self.b)):
            if not m.notes:
                raise RequestError(f"Clip {name} has no notes; give each clip at least one note.")
        check_settings(self)


@dataclass(frozen=True)
class InterpolateResult:
    clips: list[Melody]  # A, interpolants..., B, all of the same length
    morph: Melody  # the clips one after another
    seed: int
    notices: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SampleRequest:
    """New melodies from the VAE (Generate); the shape controls are the bank sampler's."""

    count: int = number("How many", 1, 16, 4, help="melodies to generate")
    temperature: float = number("Temperature", 0.1, 2.0, 1.0, 0.05, help="higher: wilder")
    seed: int | None = seed()
    time_signature: tuple[int, int] = meter("Time signature", TIME_SIGNATURES, "4/4")
    qpm: float = number("Tempo", 40, 240, 120, help="quarter notes per minute")
    sampler: str = choice("Sampler", SAMPLERS, "bank",
                          help="where each melody's code comes from: near a corpus tune (the shape controls work with "
                               "this one), the same moved by the latent GAN toward what sounds real, near your clips "
                               "(learn them first), or the Gaussian prior, kept to compare")
    notes_per_bar: float | None = number("Notes per bar", 0.5, 16, None, 0.25, help="note density")
    range_semitones: int | None = number("Pitch range", 0, 36, None, help="semitones from lowest note to highest")
    key: str = choice("Key", GENERATE_KEYS, "any", help="any, a mode in any key, or one key")
    ends_on_tonic: bool = flag("Ends on the tonic", False, help="the last note is the tonic of the melody's key")
    soundfont: str = soundfont_setting()
    bars: int = choice("Bars", BAR_CHOICES, 4,
                       help="length of each melody; 8 and 16 bars have phrases that return, as real tunes do")
    program: int = 0
    style: StyleModel | None = None  # fitted by MelodyService.learn_style; needed by the "style" sampler

    def validate(self):
        check_settings(self)
        if self.sampler == "style" and self.style is None:
            raise RequestError("There is no style to sample yet: give 2-20 clips under \"More like these\" and "
                               "learn their style first, or choose another sampler.")
        if not self.attributes().free and self.sampler != "bank":
            raise RequestError(f"The {SAMPLERS[self.sampler]} sampler has no shape controls; choose the "
                               f"{SAMPLERS['bank']} sampler, or leave notes per bar, range, key and ending free.")

    def attributes(self) -> Attributes:
        return Attributes.from_key(self.key, notes_per_bar=self.notes_per_bar, range_semitones=self.range_semitones,
                                   ends_on_tonic=self.ends_on_tonic)


@dataclass(frozen=True)
class SampleResult:
    melodies: list[Melody]
    seed: int
    notices: list[str] = field(default_factory=list)
