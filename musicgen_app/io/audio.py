"""Recordings -> Melody: ``audio_to_melody`` (a sung, hummed, whistled or played tune).

    result = audio_to_melody("hum.wav", qpm=96)     # an ImportResult, like the other importers

Each step is left to the library that does it well:

    decode     soundfile: WAV, FLAC, OGG (Vorbis, Opus), MP3 (libsndfile 1.1 and later decodes MP3
               itself, so no ffmpeg is needed), AIFF; mixed to mono, resampled to SAMPLE_RATE (soxr,
               through librosa)
    notes      "basic-pitch" (the default, TRANSCRIBER): Spotify's basic-pitch model, the ONNX file in
               its wheel run by onnxruntime, and basic-pitch's own note decoding; its notes (it
               hears chords, ringing releases, harmonics) become one line (:func:`one_line`).
               "pyin": librosa's pYIN pitch track, cut into notes where the pitch leaves the note
               for PYIN_CHANGE_FRAMES frames, started at librosa's onsets.
               Both then meet librosa's onsets (:func:`on_onsets`): two notes of one pitch with no
               gap and no strike between them are one note (a vibrato, a swell, a choir's wavering),
               a strike inside a note starts a repeated note; a strike is a fast rise out of a dip
               in loudness (:func:`onset_times`) or an onset basic-pitch is sure of. Each note then
               starts where the sound at its own pitch rose (:func:`rise_starts`, on librosa's CQT):
               both transcribers hear a slowly swelling note only once it is loud.
    tempo      the ``qpm`` given, else librosa's tempo estimator (the one its beat tracker starts
               from), run on an onset envelope made of the notes' onsets
    grid       the sixteenth grid is laid where it fits the onsets best (circular mean of the onsets'
               phases); then ``quantize.build_melody``, the grid code every importer shares
    bar lines  the offset that puts the long notes on strong beats (``quantize.best_bar_offset``);
               after a count-in (``downbeat``: where its bar ended), bar 1 starts at the count-in's
               downbeat and what was sung during the count-in bar is the pickup (:func:`count_in_grid`)
    key        ``melody.estimate_key``, the one key estimator

Nothing is downloaded: basic-pitch's model (230 KB) ships inside its wheel. Recordings over
MAX_SECONDS (5 minutes) are refused from their header before they are decoded. Bad takes raise the
recording errors of :mod:`musicgen_app.errors`, each saying what to do: silence, no pitched sound,
noise, speech, clipping, a damaged or truncated file, a video, or sound we cannot decode.
What was heard (notes in seconds, the pitch curve, the tempo, where the grid fell) comes back as
:class:`Transcription` in ``ImportResult.transcription``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from ..errors import (
    ClippedRecordingError,
    CorruptRecordingError,
    ImportFailed,
    MusicgenError,
    NoisyRecordingError,
    NoPitchError,
    RecordingError,
    RecordingFormatError,
    RecordingTooLongError,
    SilentRecordingError,
    SpeechRecordingError,
    VideoFileError,
)
from ..melody import Melody, estimate_key, meter_problem
from .quantize import (
    ImportResult,
    RawNote,
    best_bar_offset,
    build_melody,
    describe_track,
    pitch_range_notice,
    trim_bars,
)

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
MAX_SECONDS = 300.0  # longest recording read, in seconds
MAX_BYTES = 100 * 2**20  # 5 minutes of 48 kHz stereo 24-bit WAV is 83 MB
SAMPLE_RATE = 22050  # Hz; what basic-pitch's model was trained at
TRANSCRIBERS = ("basic-pitch", "pyin")
TRANSCRIBER = "basic-pitch"
QPM_RANGE = (30.0, 300.0)  # tempi a musician may give or the beat tracker may return
LOWEST_PITCH, HIGHEST_PITCH = 36, 96  # C2 (a low bass voice) to C7 (whistling), MIDI
MIN_NOTE_SECONDS = 0.05
DEFAULT_LABEL = "The recording"  # what messages call a recording handed in as bytes without a name

SILENCE_DBFS = -50.0  # a recording whose loudest 93 ms stay under this is silent
QUIET_DBFS = -30.0  # ... and under this, quiet (turned up, with a notice)
LOUD_RANGE_DB = 25.0  # "loud" frames are within this of the loudest: where the take is
CLIPPED_REFUSED = 0.2  # share of the loud frames with a clipped run that refuses the take
CLIPPED_NOTICE = 0.01  # ... and that gets a notice
NOTE_COVERAGE_MIN = 0.15  # notes must cover this share of the loud time, else no pitched sound
NOISE_FLATNESS = 0.2  # median spectral flatness of the loud frames above which a take is noise
STEADY_CENTS = 50.0  # a frame of a note is steady when its pitch is within this of the note's
SPEECH_UNPITCHED = 0.4  # share of the loud time with no pitch (consonants) from which a take is speech ...
SPEECH_HELD = 0.3  # ... unless notes held HELD_SECONDS or longer cover this share of it: a low voice or choir
HELD_SECONDS = 0.3  # may be heard with little pitch salience, but a syllable's pitch glides on within this
UNSTEADY_BAR = 0.5  # a bar whose notes are steadier than this on average gets no notice

# basic-pitch's note decoding (its predict() defaults: onset 0.5, frame 0.3, 11 frames at 86 fps)
BP_ONSET_THRESHOLD = 0.5
BP_FRAME_THRESHOLD = 0.3
BP_MIN_FRAMES = 5  # 58 ms: a sixteenth at 140 qpm lasts 107 ms
BP_BATCH = 8  # model windows (2 s each) per onnxruntime call
BP_STRUCK_ONSET = 0.8  # onset activation from which a note's start is certain (not a swell inside a held note)
BP_CURVE_SALIENCE = 0.3  # contour salience under which the pitch curve is "unvoiced"

# pYIN (librosa.pyin) and the note cutting on its track
PYIN_FRAME = 1024
PYIN_HOP = 512
PYIN_RESOLUTION = 0.2  # semitones per pitch bin
PYIN_CHANGE_CENTS = 60.0  # the pitch has left the note when it is this far from the note's
PYIN_CHANGE_FRAMES = 2  # ... for this many frames in a row

# librosa's onsets, and how they time the transcribers' notes (on_onsets)
ONSET_HOP = 128
ONSET_BEFORE = 0.08  # seconds an onset may precede a note's start and still be its start
ONSET_AFTER = 0.03  # ... or follow it
# How late each transcriber starts its notes after the attack: the shift that scores best on the valid
# split's renders (bench/eval_transcription.py --split valid); subtracted before the onsets are matched.
LATENCY = {"basic-pitch": 0.03, "pyin": 0.045}
STRIKE_AFTER = 0.06  # seconds a strike may follow a note's start and still start it (a sung repeat's dip)
JOIN_GAP = 0.03  # seconds of silence between two notes of one pitch that keep them apart
ONSET_SPLIT_MARGIN = 0.1  # an onset this far inside a note starts a repeated note ...
ONSET_DIP_DB = 6.0  # ... when the sound rises by this much from just before it ...
ONSET_RISE_SECONDS = 0.04  # ... within this time (slower swells are a voice's vibrato) ...
# ... from a dip this far under the level around it (a choir's tremolo dips less; pYIN, which hears a
# struck piano's repeat only here, takes every fast rise: a decayed note struck again has no such dip) ...
DIP_BELOW_DB = {"basic-pitch": 7.0, "pyin": 0.0}
DIP_CONTEXT_SECONDS = 0.15  # ... that level being the median over this much either side
# A note played again without an attack of its own (slurred; a sampled flute's voice restarted under the
# last one's release) leaves only a short dip in the level: a new note starts where the level falls ...
SOFT_DIP_DB = 3.0  # ... by this much or more, and comes back ...
SOFT_DIP_SECONDS = 0.08  # ... within this either side of its lowest point ...
# ... in a level that moves less than this (median dB a frame, ONSET_HOP samples) over 4 SOFT_DIP_SECONDS
# either side: a flute's or a voice's steady tone (0.1-0.2), not a bowed violin's held note (0.2-0.5),
# whose dips are as deep as at its repeats, nor a choir's wavering (0.5-0.8) (valid split's renders).
SOFT_STEADY_DB = 0.2

# Where a note's sound rose (rise_starts): a choir's "aah" swells in over 150-250 ms under the last note's
# release, and basic-pitch starts it 50-200 ms late; a struck or tongued note has risen by its start already.
RISE_HOP = 128  # samples a CQT frame (5.8 ms)
RISE_LOOKBACK = 0.25  # seconds before a note's start searched for where its sound rose ...
RISE_AFTER_PREVIOUS = 0.1  # ... but not this close to the previous note's start
RISE_PEAK_SECONDS = 0.15  # a note's peak: its pitch's loudest CQT bin level this long from its start
RISE_DEPTH_DB = 20.0  # the note sounds from where its pitch's level stays within this of its peak ...
RISE_LEAK_DB = 20.0  # ... and of the previous note's pitch level (a louder neighbour leaks into the bin) ...
RISE_LEAK_SEMITONE_DB = 0.0  # ... or, a semitone from it, at least as loud (that leak is within RISE_LEAK_DB)
# Where basic-pitch's own activation rose (swell_starts): under a ringing previous note a choir's note swells at
# its pitch's CQT bin only a few dB (the neighbour's leak), but basic-pitch's note activation for it rises early.
SWELL_QUIET = 0.2  # a pitch's note activation under this: the note is not sounding yet (its floor is 0.1)
SWELL_ONSET = 0.45  # ... or its onset activation first reached this (a slow "aah" swells past SWELL_QUIET
# late or hovers at it; its onset activation, though under BP_ONSET_THRESHOLD, rises as it begins) ...
SWELL_AT_START = 0.6  # a note starting at an activation under this was heard while still swelling ...
SWELL_ONSET_AT_START = 0.7  # ... (for the onset cue, under this: over it, flute and piano notes moved wrongly)
SWELL_MIN_MOVE = 0.05  # ... and starts where it rose when that is this much earlier (on every instrument the
# activation rises a few frames before basic-pitch's onsets, which LATENCY already times)

GHOST_RATIO = 0.5  # a note starting inside a stronger one and weaker than this share of it is dropped ...
SUSPECT_RATIO = 1.0  # ... and one that is likely something of that note or the one before (_suspect), unless stronger:
HARMONICS = (12, 19, 24)  # semitones above a note where basic-pitch hears its harmonics (a choir's "aah" formant)
# semitones under a note past which basic-pitch's notes are ghosts (a decaying piano note is heard with notes an
# octave or two down; a melody rarely leaps down over an octave, and then with a stronger note)
GHOST_BELOW = 12
RETURN_SECONDS = 0.15  # a note starting this soon inside the sounding one, at the pitch of the note before it ...
RETURN_ONSET = 0.6  # ... with its onset activation under this (just over BP_ONSET_THRESHOLD: not attacked), is
# that note's release heard again (a choir's)
# Whether a transcriber's note starts move to librosa's onsets: basic-pitch times its notes better
# than spectral flux does on soft attacks (flute); pYIN's pitch track says late where a note began.
SNAP_TO_ONSETS = {"basic-pitch": False, "pyin": True}

CURVE_FPS = 50  # frames per second of the pitch curve kept for the view


@dataclass
class Transcription:
    """What the transcriber heard, before the grid (times in seconds from the recording's start)."""

    transcriber: str  # one of TRANSCRIBERS
    duration: float  # seconds of sound read
    notes: list[tuple[float, float, int]]  # (start, end, MIDI pitch), one line
    curve_times: np.ndarray  # seconds, CURVE_FPS a second
    curve_pitch: np.ndarray  # fractional MIDI pitch heard at each time; NaN where nothing pitched sounds
    qpm: float  # tempo of the grid, quarter notes a minute
    qpm_estimated: bool  # True when the tempo came from the beat tracker
    origin: float  # seconds at which the melody's step 0 falls
    steadiness: list[float] = field(default_factory=list)  # per note of the melody: share of steady frames


@dataclass
class _Heard:
    notes: list[tuple[float, float, int, float]]  # (start, end, pitch, strength 0-1), one line, in time order
    curve_times: np.ndarray
    curve_pitch: np.ndarray
    struck: np.ndarray = field(default_factory=lambda: np.zeros(0))  # times the transcriber is sure a note starts
    activation: np.ndarray | None = None  # basic-pitch's note activation on curve_times' frames (x 88 keys from A0)
    onset_activation: np.ndarray | None = None  # ... and its onset activation


# -- libraries, loaded on first use ------------------------------------------------------------------------
_LOCK = threading.Lock()
_BASIC_PITCH: dict = {}


def _librosa():
    import librosa

    return librosa


def _basic_pitch() -> dict:
    """basic-pitch's modules and an onnxruntime session on the ONNX model in its wheel, once a process.

    basic-pitch reports at import, on the root logger, each optional runtime it lacks (TensorFlow,
    CoreML, TFLite); we use onnxruntime, so those lines are kept out of our log.
    """
    with _LOCK:
        if not _BASIC_PITCH:
            root = logging.getLogger()
            quiet = logging.NullHandler()
            root.addHandler(quiet)  # logging.warning() would otherwise install a stderr handler
            level = logging.root.manager.disable
            logging.disable(logging.WARNING)
            try:
                import basic_pitch
                from basic_pitch import constants, inference, note_creation
            except ImportError as exc:
                raise RecordingError(f"Transcription is not installed ({exc}); run scripts/setup.sh.") from None
            finally:
                logging.disable(level)
                root.removeHandler(quiet)
            path = basic_pitch.build_icassp_2022_model_path(basic_pitch.FilenameSuffix.onnx)
            if not basic_pitch.ONNX_PRESENT or not Path(path).is_file():
                raise RecordingError("basic-pitch's ONNX model or onnxruntime is missing; run scripts/setup.sh.")
            _BASIC_PITCH.update(constants=constants, inference=inference, notes=note_creation,
                                model=inference.Model(path))
        return _BASIC_PITCH


def load_libraries() -> None:
    """Import the transcription libraries now (the sandbox's forkserver does, so each upload's child
    starts with them loaded); no model session is opened, as sessions' threads do not survive a fork."""
    import librosa.beat  # noqa: F401  (librosa loads its submodules lazily)
    import librosa.feature  # noqa: F401
    import librosa.onset  # noqa: F401
    import librosa.sequence  # noqa: F401

    logging.disable(logging.WARNING)
    root = logging.getLogger()
    quiet = logging.NullHandler()
    root.addHandler(quiet)
    try:
        from basic_pitch import inference, note_creation  # noqa: F401
    except ImportError:
        pass
    finally:
        logging.disable(logging.NOTSET)
        root.removeHandler(quiet)


# -- reading the file ------------------------------------------------------------------------------
VIDEO_SIGNS = (
    (b"\x1aE\xdf\xa3", "a WebM or Matroska file (a video, or sound some browsers record)"),
    (b"\x00\x00\x01\xba", "an MPEG video"), (b"\x00\x00\x01\xb3", "an MPEG video"),
    (b"FLV", "a Flash video"), (b"0&\xb2u\x8ef\xcf\x11", "a Windows Media file"),
)


def sniff(data: bytes) -> str:
    """The container, by its first bytes: 'wav', 'flac', 'ogg', 'mp3', 'aiff', or '' when unknown.

    Raises :class:`VideoFileError` for a video and :class:`RecordingFormatError` for sound we cannot
    decode (AAC in MP4/M4A or ADTS).
    """
    head = data[:16]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        raise VideoFileError("an AVI video")
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P "):
            raise RecordingFormatError("an AAC (M4A) recording")
        raise VideoFileError("a QuickTime video" if brand == b"qt  " else "an MP4 video")
    for sign, what in VIDEO_SIGNS:
        if head.startswith(sign):
            raise VideoFileError(what)
    if len(data) > 188 * 3 and data[0] == data[188] == data[376] == 0x47:
        raise VideoFileError("an MPEG transport stream (video)")
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        if head[1] & 0x06 == 0:  # MPEG layer bits 00: an ADTS AAC stream, not MP3
            raise RecordingFormatError("an AAC recording")
        return "mp3"
    return ""


def _wav_declared_frames(data: bytes) -> int | None:
    """Frames a WAV file's header promises (its data chunk), or None when it does not say."""
    pos, block = 12, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if tag == b"fmt " and pos + 22 <= len(data):
            block = struct.unpack("<H", data[pos + 20:pos + 22])[0]  # bytes per frame
        if tag == b"data":
            if not block or size in (0, 0xFFFFFFFF):  # streaming writers leave the size open
                return None
            return size // block
        pos += 8 + size + (size & 1)
    return None


def _refusal(label: str, exc: MusicgenError) -> MusicgenError:
    """Turn sniff()'s bare description into a whole message for ``label``."""
    what = str(exc)
    if isinstance(exc, VideoFileError):
        return VideoFileError(f"{label} is {what}, not a recording (was it renamed?). Save its sound as WAV, "
                              "FLAC, OGG or MP3, or record the melody again.")
    return RecordingFormatError(f"{label} is {what}, which cannot be read here. Export it as WAV, FLAC, OGG or "
                                "MP3.")


def read_audio(data: bytes, label: str = DEFAULT_LABEL) -> tuple[np.ndarray, str, float]:
    """Decode a recording to mono float32 at SAMPLE_RATE: (samples, container, clipped share).

    The length is checked from the header before anything is decoded; damaged and truncated files
    raise :class:`CorruptRecordingError`.
    """
    try:
        kind = sniff(data)
    except (VideoFileError, RecordingFormatError) as exc:
        raise _refusal(label, exc) from None
    damaged = (f"{label} could not be read as a recording; it may be damaged, or not sound at all. "
               "Record or export it again as WAV, FLAC, OGG or MP3.")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as f:
            rate, frames = f.samplerate, f.frames
            if rate <= 0:
                raise CorruptRecordingError(damaged)
            if frames / rate > MAX_SECONDS:
                raise RecordingTooLongError(_too_long(label, frames / rate))
            samples = f.read(min(frames, int(MAX_SECONDS * rate) + 1), dtype="float32", always_2d=True)
    except MusicgenError:
        raise
    except Exception as exc:  # libsndfile's LibsndfileError, RuntimeError, TypeError on odd headers
        log.info("libsndfile could not read a recording: %s: %s", type(exc).__name__, exc)
        raise CorruptRecordingError(damaged) from None
    got = samples.shape[0]
    if got / rate > MAX_SECONDS:
        raise RecordingTooLongError(_too_long(label, got / rate))
    declared = _wav_declared_frames(data) if kind == "wav" else frames
    if got == 0:
        raise CorruptRecordingError(f"{label} holds no sound at all (0 seconds); it may have been cut short. "
                                    "Record or export it again.")
    if declared and got < 0.95 * declared - 0.05 * rate:
        raise CorruptRecordingError(
            f"{label} ends after {got / rate:.1f} s of the {declared / rate:.1f} s its header promises: the file "
            "was cut short (an interrupted upload or copy). Upload or export it again.")
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    clipped = _clipped_share(mono, rate)
    if rate != SAMPLE_RATE:
        mono = _librosa().resample(mono, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return np.ascontiguousarray(mono, dtype=np.float32), kind, clipped


def _too_long(label: str, seconds: float) -> str:
    return (f"{label} lasts {seconds / 60:.1f} minutes, over the {MAX_SECONDS / 60:g}-minute limit; "
            "trim it to the melody (a few bars are enough) and upload it again.")


def _clipped_share(x: np.ndarray, rate: int, block: int = 2048) -> float:
    """Share of the loud blocks holding a run of 3 or more samples at full scale."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak < 0.95:
        return 0.0
    at_top = np.abs(x) >= 0.99 * peak
    runs = at_top[2:] & at_top[1:-1] & at_top[:-2]
    n = x.size // block
    if n == 0:
        return float(runs.any())
    rms = np.sqrt(np.mean(x[: n * block].reshape(n, block) ** 2, axis=1) + 1e-20)
    loud = 20 * np.log10(rms) > 20 * np.log10(rms.max()) - LOUD_RANGE_DB
    clipped = np.zeros(n, bool)
    hits = np.flatnonzero(runs) // block
    clipped[hits[hits < n]] = True
    return float(clipped[loud].mean()) if loud.any() else 0.0


# -- levels ------------------------------------------------------------------------------------------
def _frame_db(y: np.ndarray, hop: int = 512, frame: int = 2048) -> np.ndarray:
    rms = _librosa().feature.rms(y=y, frame_length=frame, hop_length=hop)[0]
    return 20 * np.log10(np.maximum(rms, 1e-10))


def check_levels(y: np.ndarray, clipped: float, label: str) -> tuple[np.ndarray, list[str]]:
    """Refuse silence and heavy clipping; return the recording at a working level, and notices."""
    notices = []
    db = _frame_db(y)
    loudest = float(db.max()) if db.size else -200.0
    if loudest < SILENCE_DBFS:
        raise SilentRecordingError(
            f"{label} is silent (its loudest moment is {max(loudest, -120):.0f} dBFS): no pitched sound found. "
            "Check that the microphone is on, not muted and chosen in the browser, then record again.")
    if clipped >= CLIPPED_REFUSED:
        raise ClippedRecordingError(
            f"{label} is distorted: {clipped:.0%} of it is clipped at full scale, which hides the pitch. Turn the "
            "input gain down or move back from the microphone, then record again.")
    if clipped >= CLIPPED_NOTICE:
        notices.append(f"The recording clips in places ({clipped:.0%} of it); turn the input gain down next time.")
    if loudest < QUIET_DBFS:
        notices.append(f"The recording is quiet (loudest {loudest:.0f} dBFS) and was turned up; sing or play "
                       "closer to the microphone for a cleaner take.")
    peak = float(np.abs(y).max())
    return (y * (0.9 / peak)).astype(np.float32), notices


# -- transcribers ------------------------------------------------------------------------------------
def transcribe(y: np.ndarray, transcriber: str = TRANSCRIBER) -> _Heard:
    """Notes (one line) and a pitch curve heard in ``y`` (mono float32 at SAMPLE_RATE).

    The transcriber's notes are then set on librosa's onsets (:func:`on_onsets`) and started where the
    sound at their pitch rose (:func:`rise_starts`) or, for basic-pitch, where its activation did
    (:func:`swell_starts`).
    """
    if transcriber == "basic-pitch":
        heard = _transcribe_basic_pitch(y)
    elif transcriber == "pyin":
        heard = _transcribe_pyin(y)
    else:
        raise RecordingError(f"Unknown transcriber {transcriber!r}; choose one of {', '.join(TRANSCRIBERS)}.")
    shift = LATENCY[transcriber]
    heard.notes = [(max(0.0, s - shift), e, p, a) for s, e, p, a in heard.notes]
    onsets, strikes = onset_times(y, DIP_BELOW_DB[transcriber])
    strikes = np.union1d(strikes, heard.struck - shift)
    heard.notes = on_onsets(heard.notes, onsets, strikes, snap=SNAP_TO_ONSETS[transcriber])
    heard.notes = rise_starts(heard.notes, _pitch_levels(y))
    if heard.activation is not None:
        heard.notes = swell_starts(heard.notes, heard.activation, heard.curve_times - shift, heard.onset_activation)
    return heard


def onset_times(y: np.ndarray, below_db: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """librosa's onsets (spectral flux), moved back to where each attack starts, in seconds; and of
    those, the strikes: the sound rises by ONSET_DIP_DB within ONSET_RISE_SECONDS out of a dip at
    least ``below_db`` under its median level around it (a note tongued, bowed or sung again; a
    choir's wavering level and a swelling attack rise as fast but out of no such dip), and where a
    note was played again without an attack (:func:`soft_dips`)."""
    frames, db = _onset_frames(y)
    span = max(1, int(round(ONSET_RISE_SECONDS * SAMPLE_RATE / ONSET_HOP)))
    around = int(round(DIP_CONTEXT_SECONDS * SAMPLE_RATE / ONSET_HOP))
    dips = [f for f in frames if f + 1 < len(db) and db[f:f + span].max() - db[max(0, f - span):f + 1].min()
            >= ONSET_DIP_DB and np.median(db[max(0, f - around):f + around]) - db[max(0, f - span):f + span].min()
            >= below_db]
    soft = soft_dips(db)
    # a deep dip is a strike where the level rose again, later than where it began to fall
    after_soft = np.searchsorted(soft, dips, side="left") - 1
    dips = [f for f, k in zip(dips, after_soft) if k < 0 or f - soft[k] > SOFT_DIP_SECONDS * SAMPLE_RATE / ONSET_HOP]
    seconds = ONSET_HOP / SAMPLE_RATE
    return frames * seconds, np.union1d(np.array(dips, int), soft) * seconds


def soft_dips(db: np.ndarray) -> np.ndarray:
    """Frames (of ONSET_HOP samples) at which a short dip of SOFT_DIP_DB or more in a steady level
    ``db`` begins: a note played again without an attack of its own."""
    from scipy.signal import find_peaks

    fps = SAMPLE_RATE / ONSET_HOP
    width = int(round(SOFT_DIP_SECONDS * fps))
    with warnings.catch_warnings():  # a flat stretch's frames have no prominence in a short window: not dips
        warnings.filterwarnings("ignore", "some peaks have a prominence of 0", RuntimeWarning)
        lows, props = find_peaks(-db, prominence=SOFT_DIP_DB, wlen=2 * width + 1)
    starts = []
    for low, prominence in zip(lows, props["prominences"]):
        if np.median(np.abs(np.diff(db[max(0, low - 4 * width):low + 4 * width]))) > SOFT_STEADY_DB:
            continue
        top = db[low] + prominence
        fall = low  # back to where the level began to fall: a restarted voice dips 20-50 ms after its note-on
        while fall > max(0, low - width) and db[fall - 1] < top - 1.0:
            fall -= 1
        starts.append(fall)
    return np.array(starts, int)


def _onset_frames(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """librosa's onsets (frames of ONSET_HOP samples, backtracked) and the level in dB on those frames."""
    librosa = _librosa()
    env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=ONSET_HOP)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=SAMPLE_RATE, hop_length=ONSET_HOP, backtrack=True)
    return frames, _frame_db(y, hop=ONSET_HOP, frame=512)


def on_onsets(notes: list[tuple[float, float, int, float]], onsets: np.ndarray, strikes: np.ndarray, *,
              snap: bool = True) -> list[tuple[float, float, int, float]]:
    """Pitch from the transcriber, the notes' boundaries checked against librosa's onsets.

    With ``snap``, a note's start moves to the onset nearest it within ONSET_BEFORE before to
    ONSET_AFTER after (the previous note is cut there). A note of the pitch before it that follows
    it without a gap and without a ``strikes`` onset (a note struck again, see :func:`onset_times`,
    or an onset basic-pitch is sure of) from ONSET_BEFORE before its start to STRIKE_AFTER after,
    and past the previous note's own attack, is the same note again (joined: a vibrato or a swell,
    not a new note); a note holding a strike well inside it is a repeated note (split there).
    """
    onsets = np.asarray(onsets, float)
    strikes = np.asarray(strikes, float)
    out: list[list] = []
    for s, e, p, a in notes:
        if out and out[-1][2] == p and s - out[-1][1] < JOIN_GAP and \
                not _near(strikes[strikes > out[-1][0] + ONSET_SPLIT_MARGIN], s):
            out[-1][1] = max(out[-1][1], e)
            continue
        if snap:
            lo, hi = np.searchsorted(onsets, [s - ONSET_BEFORE, s + ONSET_AFTER])
            near = onsets[lo:hi]
            if out:
                near = near[near > out[-1][0] + MIN_NOTE_SECONDS]
            if near.size:
                s = float(near[np.argmin(np.abs(near - s))])
        if out and out[-1][1] > s:
            out[-1][1] = s
        if e - s >= MIN_NOTE_SECONDS:
            out.append([s, e, p, a])
    split = []
    for s, e, p, a in out:
        inside = strikes[(strikes > s + ONSET_SPLIT_MARGIN) & (strikes < e - ONSET_SPLIT_MARGIN)]
        for o in inside:
            split.append((s, float(o), p, a))
            s = float(o)
        split.append((s, e, p, a))
    return [n for n in split if n[1] - n[0] >= MIN_NOTE_SECONDS]


def _pitch_levels(y: np.ndarray) -> np.ndarray:
    """Level in dB of each pitch LOWEST_PITCH..HIGHEST_PITCH (rows) on frames of RISE_HOP samples: librosa's CQT."""
    librosa = _librosa()
    cqt = librosa.cqt(y, sr=SAMPLE_RATE, hop_length=RISE_HOP, fmin=float(librosa.midi_to_hz(LOWEST_PITCH)),
                      n_bins=HIGHEST_PITCH - LOWEST_PITCH + 1, bins_per_octave=12)
    return 20 * np.log10(np.maximum(np.abs(cqt), 1e-6))


def rise_starts(notes: list[tuple[float, float, int, float]],
                levels: np.ndarray) -> list[tuple[float, float, int, float]]:
    """Each note started where the sound at its pitch rose: after the last frame, up to RISE_LOOKBACK
    before its start, at which its pitch's level (``levels``, :func:`_pitch_levels`) was RISE_DEPTH_DB
    under its peak or RISE_LEAK_DB (a semitone away: RISE_LEAK_SEMITONE_DB) under the previous note's
    pitch; never later than it was, nor within RISE_AFTER_PREVIOUS of the previous note's start (which
    is cut there)."""
    fps = SAMPLE_RATE / RISE_HOP
    out: list[list] = []
    for s, e, p, a in notes:
        level = levels[_pitch_row(p)]
        k = min(int(round(s * fps)), len(level) - 1)
        lo = max(0, int(round((s - RISE_LOOKBACK) * fps)))
        if out:
            lo = max(lo, math.ceil((out[-1][0] + RISE_AFTER_PREVIOUS) * fps))
        peak = level[k:k + int(RISE_PEAK_SECONDS * fps)].max()
        quiet = level[lo:k + 1] < peak - RISE_DEPTH_DB
        if out and out[-1][2] != p:
            leak = RISE_LEAK_SEMITONE_DB if abs(out[-1][2] - p) == 1 else RISE_LEAK_DB
            quiet |= level[lo:k + 1] < levels[_pitch_row(out[-1][2])][lo:k + 1] - leak
        below = np.flatnonzero(quiet)
        if below.size:
            s = min(s, (lo + below[-1] + 1) / fps)
            if out and out[-1][1] > s:
                out[-1][1] = s
        out.append([s, e, p, a])
    return [tuple(n) for n in out]


def swell_starts(notes: list[tuple[float, float, int, float]], activation: np.ndarray,
                 times: np.ndarray, onset: np.ndarray | None = None) -> list[tuple[float, float, int, float]]:
    """Each note basic-pitch heard while it still swelled (its note ``activation`` at its start under
    SWELL_AT_START) started after the last frame, up to RISE_LOOKBACK before its start, at which that
    activation was under SWELL_QUIET, or where its ``onset`` activation first reached SWELL_ONSET there
    (for an activation at its start under SWELL_ONSET_AT_START), whichever is earlier, when that is over
    SWELL_MIN_MOVE earlier; as in :func:`rise_starts`, not within RISE_AFTER_PREVIOUS of the previous
    note's start (which is cut there), and not for a note at the previous one's pitch (its activation
    there is the previous note's). ``times``: the frames' times, on the notes' clock."""
    out: list[list] = []
    for s, e, p, a in notes:
        level = activation[:, p - 21]
        k = min(int(np.searchsorted(times, s)), len(level) - 1)
        lo = int(np.searchsorted(times, max(s - RISE_LOOKBACK, out[-1][0] + RISE_AFTER_PREVIOUS if out else 0.0)))
        if level[k] < SWELL_ONSET_AT_START and not (out and out[-1][2] == p):
            below = np.flatnonzero(level[lo:k + 1] < SWELL_QUIET)
            quiet = below.size and lo + below[-1] + 1 <= k and level[k] < SWELL_AT_START
            rose = [times[lo + below[-1] + 1]] if quiet else []
            struck = np.flatnonzero(onset[lo:k + 1, p - 21] >= SWELL_ONSET) if onset is not None else []
            rose += [times[lo + struck[0]]] if len(struck) else []
            if rose and s - max(0.0, float(min(rose))) > SWELL_MIN_MOVE:
                s = max(0.0, float(min(rose)))
                if out and out[-1][1] > s:
                    out[-1][1] = s
        out.append([s, e, p, a])
    return [tuple(n) for n in out]


def _pitch_row(pitch: int) -> int:
    """The row of :func:`_pitch_levels` for a pitch (pYIN's tuning may round one a semitone past the range)."""
    return min(max(pitch, LOWEST_PITCH), HIGHEST_PITCH) - LOWEST_PITCH


def _near(times: np.ndarray, t: float) -> bool:
    lo, hi = np.searchsorted(times, [t - ONSET_BEFORE, t + STRIKE_AFTER])
    return hi > lo


def _transcribe_basic_pitch(y: np.ndarray) -> _Heard:
    return _basic_pitch_notes(_basic_pitch_activations(y))


def _basic_pitch_activations(y: np.ndarray) -> dict[str, np.ndarray]:
    """basic-pitch's model outputs on ``y``: "note", "onset" (frames x 88 keys from A0) and "contour"
    (frames x 264 bins, thirds of a semitone), basic-pitch's ANNOTATIONS_FPS frames a second."""
    bp = _basic_pitch()
    c, inference = bp["constants"], bp["inference"]
    overlap_frames = 30  # as basic-pitch's run_inference: windows overlap by 30 frames
    overlap = overlap_frames * c.FFT_HOP
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), y])
    windows = np.stack([w for w, _ in inference.window_audio_file(padded, c.AUDIO_N_SAMPLES - overlap)])
    parts: dict[str, list] = {"note": [], "onset": [], "contour": []}
    for i in range(0, len(windows), BP_BATCH):
        for k, v in bp["model"].predict(windows[i:i + BP_BATCH].astype(np.float32)).items():
            parts[k].append(v)
    return {k: inference.unwrap_output(np.concatenate(v), len(y), overlap_frames) for k, v in parts.items()}


def _basic_pitch_notes(out: dict[str, np.ndarray]) -> _Heard:
    """Notes (one line) and the pitch curve from basic-pitch's outputs (:func:`_basic_pitch_activations`)."""
    bp = _basic_pitch()
    c, notes_mod = bp["constants"], bp["notes"]
    hz = _librosa().midi_to_hz
    events = notes_mod.output_to_notes_polyphonic(
        out["note"], out["onset"], onset_thresh=BP_ONSET_THRESHOLD, frame_thresh=BP_FRAME_THRESHOLD,
        min_note_len=BP_MIN_FRAMES, infer_onsets=True, max_freq=float(hz(HIGHEST_PITCH + 0.5)),
        min_freq=float(hz(LOWEST_PITCH - 0.5)), melodia_trick=True)
    times = notes_mod.model_frames_to_time(out["contour"].shape[0])
    notes = [(float(times[s]), float(times[min(e, len(times) - 1)]), int(p), float(a)) for s, e, p, a in events]
    onset = out["onset"]
    struck = [float(times[s]) for s, _, p, _ in events
              if onset[max(0, s - 2):s + 3, p - 21].max() >= BP_STRUCK_ONSET]
    contour = out["contour"]
    best = contour.argmax(axis=1)
    salience = contour[np.arange(len(best)), best]
    lo, hi = np.clip(best - 1, 0, contour.shape[1] - 1), np.clip(best + 1, 0, contour.shape[1] - 1)
    w = np.stack([contour[np.arange(len(best)), b] for b in (lo, best, hi)])
    bins = (w * np.stack([lo, best, hi])).sum(0) / np.maximum(w.sum(0), 1e-9)
    # Contour bins are thirds of a semitone from A0, a note's centre on the middle one of its three
    # (a steady piano C4 peaks at bin 3 * (60 - 21) + 1).
    pitch = 21.0 + (bins - 1) / c.CONTOURS_BINS_PER_SEMITONE
    pitch[salience < BP_CURVE_SALIENCE] = np.nan
    attacked = {float(times[s]) for s, _, p, _ in events if onset[max(0, s - 2):s + 3, p - 21].max() >= RETURN_ONSET}
    return _Heard(one_line(notes, attacked), times.astype(np.float64), pitch, np.array(sorted(struck)),
                  out["note"], out["onset"])



def one_line(notes: list[tuple[float, float, int, float]],
             attacked: set[float] = frozenset()) -> list[tuple[float, float, int, float]]:
    """A melody from notes that may overlap (basic-pitch hears chords, ringing releases, harmonics).

    Of notes starting within ONSET_AFTER of each other, the strongest stays. Then, in time order, a
    note ends where the next one starts, unless that one is a ghost: starting inside the sounding
    note and weaker than GHOST_RATIO times it (SUSPECT_RATIO where :func:`_suspect`; ``attacked``: the
    starts of notes that were attacked).
    """
    strongest: list[tuple[float, float, int, float]] = []
    for n in sorted(notes):
        if strongest and n[0] - strongest[-1][0] < ONSET_AFTER:
            if _strength(n) > _strength(strongest[-1]):
                strongest[-1] = n
            continue
        strongest.append(n)
    line: list[list] = []
    for s, e, p, a in strongest:
        if line and s < line[-1][1]:
            ratio = SUSPECT_RATIO if _suspect(line, s, p, attacked) else GHOST_RATIO
            if a < ratio * line[-1][3]:
                continue
            line[-1][1] = s
        line.append([s, e, p, a])
    return [tuple(n) for n in line if n[1] - n[0] >= MIN_NOTE_SECONDS]


def _suspect(line: list[list], s: float, p: int, attacked: set[float]) -> bool:
    """Whether a note (start ``s``, pitch ``p``) starting inside the sounding note ``line[-1]`` is
    likely part of it or of the note before: at one of its HARMONICS, over GHOST_BELOW semitones
    under it, or the note before's pitch within RETURN_SECONDS and not ``attacked``."""
    sounding = line[-1][2]
    return (p - sounding in HARMONICS or sounding - p > GHOST_BELOW
            or len(line) > 1 and p == line[-2][2] and s - line[-1][0] < RETURN_SECONDS and s not in attacked)


def _strength(note: tuple[float, float, int, float]) -> float:
    return note[3] * min(note[1] - note[0], 0.3)


def _transcribe_pyin(y: np.ndarray) -> _Heard:
    librosa = _librosa()
    f0, voiced, _ = librosa.pyin(y, fmin=float(librosa.midi_to_hz(LOWEST_PITCH)),
                                 fmax=float(librosa.midi_to_hz(HIGHEST_PITCH)), sr=SAMPLE_RATE,
                                 frame_length=PYIN_FRAME, hop_length=PYIN_HOP, resolution=PYIN_RESOLUTION)
    times = librosa.times_like(f0, sr=SAMPLE_RATE, hop_length=PYIN_HOP)
    midi = np.where(voiced, librosa.hz_to_midi(np.where(voiced, f0, 440.0)), np.nan)
    if np.isfinite(midi).sum() > 10:
        midi = midi - librosa.pitch_tuning(f0[voiced], resolution=0.01)  # a singer off concert pitch
    level = _frame_db(y, hop=PYIN_HOP)[: len(midi)]
    notes = []
    for a, b in _pyin_segments(midi):
        if (b - a) * PYIN_HOP / SAMPLE_RATE < MIN_NOTE_SECONDS:
            continue
        body = midi[a + 1:b] if b - a > 2 else midi[a:b]
        pitch = int(round(float(np.nanmedian(body))))
        strength = float(np.clip((np.max(level[a:b]) + 40) / 40, 0.05, 1.0)) if b <= len(level) else 0.5
        notes.append((float(times[a]), float(times[b - 1]) + PYIN_HOP / SAMPLE_RATE, pitch, strength))
    return _Heard(notes, times.astype(np.float64), midi)


def _pyin_segments(midi: np.ndarray) -> list[tuple[int, int]]:
    """Frame ranges [a, b) of notes: voiced runs, cut where the pitch moves away (onsets come later)."""
    segments = []
    n = len(midi)
    i = 0
    limit = PYIN_CHANGE_CENTS / 100.0
    while i < n:
        if not np.isfinite(midi[i]):
            i += 1
            continue
        a = i
        i += 1
        while i < n and np.isfinite(midi[i]):
            ref = float(np.median(midi[max(a, i - 8):i]))
            run = midi[i:i + PYIN_CHANGE_FRAMES]
            if len(run) == PYIN_CHANGE_FRAMES and np.all(np.abs(run - ref) > limit) and \
                    np.all(np.isfinite(run)) and abs(float(np.median(run)) - ref) > limit:
                break
            i += 1
        segments.append((a, i))
    return segments


# -- tempo and grid ------------------------------------------------------------------------------------
_ENVELOPE_HOP = 256


def estimate_tempo(notes: list[tuple[float, float, int, float]], duration: float) -> float:
    """Quarter notes a minute: librosa's tempo estimate on an envelope of the notes' onsets."""
    librosa = _librosa()
    fps = SAMPLE_RATE / _ENVELOPE_HOP
    env = np.zeros(int(duration * fps) + 8)
    for s, e, _, a in notes:
        k = int(round(s * fps))
        if 0 <= k < len(env):
            env[k] += a * min(1.0, (e - s) / 0.5) ** 0.5 + 0.25
    env = np.convolve(env, np.array([0.25, 0.5, 1.0, 0.5, 0.25]), mode="same")
    if len(notes) < 4 or not env.any():
        return 100.0
    tempo = librosa.feature.tempo(onset_envelope=env, sr=SAMPLE_RATE, hop_length=_ENVELOPE_HOP, start_bpm=100.0)
    qpm = float(np.atleast_1d(tempo)[0])
    return float(min(QPM_RANGE[1], max(QPM_RANGE[0], qpm)))


def grid_origin(onsets: np.ndarray, weights: np.ndarray, step: float) -> float:
    """The time of the grid line nearest the first onset, the grid fitted to all onsets."""
    angles = 2 * math.pi * onsets / step
    z = np.sum(weights * np.exp(1j * angles))
    phase = (math.atan2(z.imag, z.real) / (2 * math.pi)) * step if abs(z) > 1e-9 else float(onsets[0])
    return phase + round((onsets[0] - phase) / step) * step


def count_in_grid(onsets: np.ndarray, weights: np.ndarray, step: float, downbeat: float,
                  bar_steps: int) -> tuple[float, int]:
    """The grid of a take recorded to a count-in: (seconds at which the melody's step 0 falls, pickup steps).

    ``downbeat``: seconds into the recording of the first downbeat after the count-in, which is bar 1.
    The grid goes through it, moved by less than half a step to where the notes fall (the fit of
    :func:`grid_origin`: a late microphone or a singer who is behind the click); onsets before it, in
    the count-in's bar, are the pickup.
    """
    fitted = grid_origin(onsets, weights, step)
    bar_one = downbeat + (fitted - downbeat + step / 2) % step - step / 2
    pickup = int(round((bar_one - float(onsets.min())) / step))
    pickup = min(bar_steps - 1, max(0, pickup))
    return bar_one - pickup * step, pickup


# -- the whole way ------------------------------------------------------------------------------------
def audio_to_melody(source: str | os.PathLike | bytes, qpm: float | None = None, *, transcriber: str = TRANSCRIBER,
                    time_signature: tuple[int, int] = (4, 4), steps_per_quarter: int = 4, name: str = "",
                    max_bars: int | None = 64, filename: str | None = None,
                    downbeat: float | None = None) -> ImportResult:
    """A recording (a path, or its bytes) as a melody; see the module docstring for the steps.

    ``qpm``: the recording's tempo in quarter notes a minute (None: estimated, with a notice).
    ``time_signature``: the meter the bar lines are laid in. ``downbeat``: seconds into the recording
    at which bar 1 starts, when it was recorded to a count-in (one bar of clicks at ``qpm``, which is
    then required); notes starting with the count-in's first click or before it are ignored.
    ``max_bars``: longer melodies are cut (a notice). ``filename``: the name used in messages and
    for the melody (bytes have none).
    Unbounded in time: :func:`musicgen_app.io.importer.load_melody` runs it in the sandbox.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), filename or DEFAULT_LABEL
    else:
        path = Path(source)
        if not path.is_file():
            raise ImportFailed(f"The file {path.name!r} is gone; record or upload it again.")
        if path.stat().st_size > MAX_BYTES:
            raise RecordingTooLongError(
                f"{path.name} is {path.stat().st_size / 2**20:.0f} MB, over the {MAX_BYTES // 2**20} MB limit for "
                f"recordings; trim it to the melody (at most {MAX_SECONDS / 60:g} minutes).")
        data, label = path.read_bytes(), filename or path.name
    if qpm is not None and not (isinstance(qpm, (int, float)) and QPM_RANGE[0] <= qpm <= QPM_RANGE[1]):
        raise RecordingError(f"Tempo {qpm!r} is outside {QPM_RANGE[0]:g}-{QPM_RANGE[1]:g} quarter notes a minute; "
                             "give the tempo you played at, or leave it empty to have it estimated.")
    problem = meter_problem(*time_signature, steps_per_quarter)
    if problem:
        raise RecordingError(problem)
    if downbeat is not None and (qpm is None or not (isinstance(downbeat, (int, float)) and
                                                     0 <= downbeat <= MAX_SECONDS)):
        raise RecordingError(f"A count-in ending at {downbeat!r} seconds needs the tempo it was played at and a time "
                             "within the recording; give the tempo, or record without the count-in.")
    if not data:
        raise CorruptRecordingError(f"{label} is empty (0 bytes); the upload may have failed. Try again.")

    y, kind, clipped = read_audio(data, label)
    y, notices = check_levels(y, clipped, label)
    duration = len(y) / SAMPLE_RATE
    heard = transcribe(y, transcriber)
    _refuse_if_unpitched(y, heard, label)

    estimated = qpm is None
    qpm = estimate_tempo(heard.notes, duration) if estimated else float(qpm)
    beat_seconds = 60.0 / qpm
    step = beat_seconds / steps_per_quarter
    if downbeat is not None:  # the tune starts after the count-in's first click (a pickup may start in its bar)
        bar_steps = time_signature[0] * steps_per_quarter * 4 // time_signature[1]
        first = downbeat - (bar_steps - 0.5) * step
        heard.notes = [n for n in heard.notes if n[0] >= first]
        _refuse_if_none_after_count_in(heard, label)
    onsets = np.array([n[0] for n in heard.notes])
    weights = np.array([min(1.0, (n[1] - n[0]) / step) for n in heard.notes])
    if downbeat is None:
        origin = grid_origin(onsets, weights, step)
    else:
        origin, pickup = count_in_grid(onsets, weights, step, downbeat, bar_steps)
        heard.notes = [n for n in heard.notes if n[0] - origin >= -step / 2]
        _refuse_if_none_after_count_in(heard, label)
    raw = [RawNote((s - origin) / beat_seconds, (e - s) / beat_seconds, p, int(round(40 + 80 * min(1.0, a))))
           for s, e, p, a in heard.notes]
    melody, report = build_melody(raw, steps_per_quarter=steps_per_quarter, qpm=qpm, time_signature=time_signature)
    if downbeat is None:
        offset = best_bar_offset(melody, range(0, melody.bar_steps, max(1, steps_per_quarter // 2)))
        pickup = (melody.bar_steps - offset) % melody.bar_steps
    bar_end = pickup + math.ceil((melody.total_steps - pickup) / melody.bar_steps) * melody.bar_steps
    stem = Path(label).stem if label != DEFAULT_LABEL else ""
    melody = melody.replace(pickup_steps=pickup, total_steps=max(melody.total_steps, bar_end),
                            name=name or stem)
    melody = melody.replace(key=estimate_key(melody.notes))

    steadiness = _steadiness(melody, heard, origin)
    _refuse_if_speech(y, heard, label)
    notices.append(f"Transcribed {len(melody.notes)} notes from the recording ({transcriber}), in {melody.key.name}.")
    if downbeat is not None:
        notices.append(f"Read on the count-in's grid at {qpm:g} quarter notes a minute: bar 1 starts "
                       f"{origin + pickup * step:.2f} s into the recording.")
    if estimated:
        notices.append(f"Tempo estimated at {qpm:.0f} quarter notes a minute; if the notes look twice too fast or "
                       "too slow, give the tempo you played at.")
    unsteady = _unsteady_bars(melody, steadiness)
    if unsteady:
        notices.append(unsteady)
    notices += report.notices
    if max_bars is not None:
        melody, trimmed = trim_bars(melody, max_bars)
        if trimmed:
            notices.append(trimmed)
    folded = pitch_range_notice(melody)
    if folded:
        notices.append(folded)
    info = describe_track(0, "Recording", raw)
    sampled = _curve(heard)
    transcription = Transcription(
        transcriber, duration, [(s, e, p) for s, e, p, _ in heard.notes], sampled[0], sampled[1], qpm, estimated,
        origin, steadiness)
    return ImportResult(melody, [info], 0, notices, kind or "audio", report, transcription)


def _curve(heard: _Heard) -> tuple[np.ndarray, np.ndarray]:
    if not len(heard.curve_times):
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    times = np.arange(0.0, float(heard.curve_times[-1]), 1.0 / CURVE_FPS)
    idx = np.clip(np.searchsorted(heard.curve_times, times), 0, len(heard.curve_times) - 1)
    return times.astype(np.float32), heard.curve_pitch[idx].astype(np.float32)


def _refuse_if_unpitched(y: np.ndarray, heard: _Heard, label: str) -> None:
    db = _frame_db(y)
    loud = db > db.max() - LOUD_RANGE_DB
    loud_seconds = loud.sum() * 512 / SAMPLE_RATE
    covered = sum(e - s for s, e, _, _ in heard.notes)
    if heard.notes and covered >= NOTE_COVERAGE_MIN * loud_seconds:
        return
    flatness = _librosa().feature.spectral_flatness(y=y, n_fft=2048, hop_length=512)[0][: len(loud)]
    if loud.any() and float(np.median(flatness[loud[: len(flatness)]])) > NOISE_FLATNESS:
        raise NoisyRecordingError(
            f"{label} holds only noise (hiss, wind or traffic): no pitched sound found. Hum or sing closer to the "
            "microphone, somewhere quieter, then record again.")
    where = "the recording" if label == DEFAULT_LABEL else label
    raise NoPitchError(f"No pitched sound found in {where}: hum closer to the microphone, or sing the tune on "
                       "'la', one note at a time.")


def _refuse_if_none_after_count_in(heard: _Heard, label: str) -> None:
    if not heard.notes:
        raise NoPitchError(f"Nothing was sung or played after the count-in in {label}: come in on the first beat "
                           "after the clicks (or during their bar, for a pickup), and record again.")


def _steadiness(melody: Melody, heard: _Heard, origin: float) -> list[float]:
    """Per melody note: the share of its heard frames within STEADY_CENTS of its pitch."""
    sec = melody.seconds_per_step
    out = []
    for n in melody.notes:
        a, b = origin + n.start * sec, origin + n.end * sec
        lo, hi = np.searchsorted(heard.curve_times, [a, b])
        frames = heard.curve_pitch[lo:hi]
        frames = frames[np.isfinite(frames)]
        if not frames.size:
            out.append(1.0)
            continue
        dev = np.abs(frames - n.pitch) * 100.0
        out.append(float(np.mean(dev <= STEADY_CENTS)))
    return out


def _refuse_if_speech(y: np.ndarray, heard: _Heard, label: str) -> None:
    """Speech alternates pitched vowels with loud unpitched consonants; a tune, even sung, rarely does, and
    holds its notes (SPEECH_HELD) where its pitch is faint."""
    db = _frame_db(y, hop=SAMPLE_RATE // CURVE_FPS, frame=1024)
    times, pitch = _curve(heard)
    n = min(len(db), len(pitch))
    loud = db[:n] > db.max() - LOUD_RANGE_DB
    if loud.sum() < CURVE_FPS:  # under a second of sound: too little to tell
        return
    unpitched = float(np.mean(~np.isfinite(pitch[:n][loud])))
    held = np.zeros(n, bool)
    for s, e, _, _ in heard.notes:
        if e - s >= HELD_SECONDS:
            held[int(s * CURVE_FPS):int(e * CURVE_FPS)] = True
    if unpitched >= SPEECH_UNPITCHED and float(np.mean(held[loud])) < SPEECH_HELD:
        raise SpeechRecordingError(
            f"{label} sounds like speech, not a tune: much of it has no pitch. Sing or hum the melody (on 'la' or "
            "'doo'), holding each note.")


def _unsteady_bars(melody: Melody, steadiness: list[float]) -> str | None:
    """A notice naming the bars whose notes' pitch wavered (the pickup is bar 0)."""
    bar, pickup = melody.bar_steps, melody.pickup_steps
    per_bar: dict[int, list[float]] = {}
    for n, s in zip(melody.notes, steadiness):
        number = 0 if n.start < pickup else 1 + (n.start - pickup) // bar
        per_bar.setdefault(number, []).append(s)
    weak = sorted(b for b, v in per_bar.items() if np.mean(v) < UNSTEADY_BAR)
    if not weak:
        return None
    spans: list[list[int]] = []
    for b in weak:
        if spans and spans[-1][1] == b - 1:
            spans[-1][1] = b
        else:
            spans.append([b, b])
    shown = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
    return (f"Pitch unsteady in bar{'s' if len(weak) > 1 else ''} {shown}: the notes there may be off; sing them "
            "again or correct them.")
