"""Melody -> audio through FluidSynth, and audio -> WAV / OGG bytes.

Audio is a 1-D ``float32`` numpy array (mono), peak-normalised to -1 dBFS, at ``sample_rate`` Hz.
Its length is ``melody.duration_seconds + TAIL_SECONDS`` so a held last note can ring out, and
never more than MAX_AUDIO_SECONDS (+ the tail): a melody longer than that is heard up to there.

Design:

* pyfluidsynth (import name ``fluidsynth``) is imported on first use, so the rest of the app works
  without libfluidsynth; a missing library raises :class:`RenderError` naming the apt package.
* Synthesizers per (SoundFont, sample rate) per process, created lazily and kept (loading a font
  takes longer than a render, large fonts far longer): one, and more while renders overlap, up to
  one per core (SYNTHS_PER_FONT), so renders run side by side. Each synth has its own lock and is
  reset before every render (see ``_FontSynth.prime``), so users never hear each other's notes:
  rendering one melody twice in a row gives identical samples, and with other renders in between
  the samples agree to within float rounding (|difference| <= 1e-6, -120 dB; FluidSynth's voice
  bookkeeping changes the order it sums in).
* No audio driver is started; we pull samples with ``fluid_synth_write_float`` and play the notes
  straight from the Melody, sending note-on/off between chunks at their sample positions.
* FluidSynth's reverb and chorus are switched off: their modulated delay lines keep state that
  ``system_reset`` does not clear, so with them on two renders of one melody differ audibly.
  Identical output is worth more to us (tests, caching) than the room sound.

* Each distinct note is synthesised once: without reverb and chorus FluidSynth is linear and
  its voices independent, so a melody's audio is the sum of its notes' audio, each played alone
  from its note-on to the end of its release. A note's audio depends only on (font, sample rate,
  program, pitch, velocity, length in blocks) and is kept (NOTE_CACHE_BYTES, least recently used
  out first): a click's variations and the next click reuse nearly every note, and summing them
  costs ~1 ms where FluidSynth took ~40 ms a melody. The sum equals FluidSynth playing the melody
  whole to float rounding for piano, flute, guitar and violin (-115 dB under the peak or less,
  tests/test_render.py); for string and choir pads up to -57 dB at note starts, where in the
  whole melody a reused voice slot carries a trace of its last note (see ``_FontSynth.prime``)
  and a note alone starts from primed slots; and where the whole melody would run out of voices
  (_POLYPHONY), which the sum never does.

FluidSynth applies events at the start of its next 64-sample block, so note timing is exact to
1.5 ms at 44.1 kHz. Each render starts on a block boundary, which makes that rounding the same for
every render of a melody; a note in the sum starts on the block where it would start in the whole.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import ctypes
import functools
import io
import logging
import os
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import RenderError
from .melody import Melody
from .paths import SOUNDFONTS

log = logging.getLogger(__name__)

SAMPLE_RATE = 44100  # what the app and the CLI write
TAIL_SECONDS = 0.75
MAX_AUDIO_SECONDS = 300.0  # audio stops here (a 72-byte MIDI can ask for hours); MIDI files keep it all
HEAD_CACHE_BYTES = 64 * 2**20  # inputs' audio kept for the next variation or click
NOTE_CACHE_BYTES = 64 * 2**20  # ~250 notes of a second and a release: a session's notes at a few tempi
PEAK_DBFS = -1.0
SOUNDFONT_SUFFIXES = (".sf2", ".sf3")
SOUNDFONTS_ENV = "MUSICGEN_SOUNDFONTS"
PROJECT_SOUNDFONTS = SOUNDFONTS
SYSTEM_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATES = (8000, 192000)
AUDIO_FORMATS = {".wav": ("WAV", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16")}

_BLOCK = 64  # FluidSynth's internal block size (FLUID_BUFSIZE)
_FADE_SECONDS = 0.05  # fade out the end of the tail so a long release is not cut with a click
_CHANNEL = 0
_POLYPHONY = 64  # voices: a note and the priming chord need few, and a small pool warms up fast
_PRIME_LOW = 24  # lowest key used to prime voice slots
_PRIME_KEYS = 8  # notes in the priming chord (see _FontSynth.prime): 64 cost 2.5 ms a note, 8 cost 0.3
_GAIN = 0.5  # float output cannot clip inside FluidSynth, and we normalise afterwards
_RELEASE_CHUNK = 4096  # samples pulled at a time after a note-off, until they are all silent
_RELEASE_LIMIT_SECONDS = 30.0  # a release still sounding this long after its note-off is cut
_UNHEARD_LIMIT_SECONDS = 2.0  # a note the preset gives no sound (out of its key range) stops here


# -- SoundFonts -----------------------------------------------------------------------------------
def soundfonts_dir() -> Path:
    """The folder users drop fonts into: ``$MUSICGEN_SOUNDFONTS`` or the project's ``soundfonts/``."""
    env = os.environ.get(SOUNDFONTS_ENV)
    return Path(env) if env else PROJECT_SOUNDFONTS


def _bundled_soundfont() -> Path | None:
    """pretty_midi's wheel ships a small GM font; found by path so pretty_midi is not imported."""
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "TimGM6mb.sf2"
    return path if path.is_file() else None


def list_soundfonts(folder: str | Path | None = None) -> dict[str, Path]:
    """Available SoundFonts by name (file stem), the default first.

    The system's FluidR3_GM and pretty_midi's TimGM6mb come first when installed, then every
    ``.sf2``/``.sf3`` in ``folder`` (default :func:`soundfonts_dir`); a dropped font with the same
    name as a built-in one replaces it.
    """
    fonts: dict[str, Path] = {}
    if SYSTEM_SOUNDFONT.is_file():
        fonts[SYSTEM_SOUNDFONT.stem] = SYSTEM_SOUNDFONT
    bundled = _bundled_soundfont()
    if bundled is not None:
        fonts[bundled.stem] = bundled
    folder = Path(folder) if folder is not None else soundfonts_dir()
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in SOUNDFONT_SUFFIXES:
                fonts[path.stem] = path
    return fonts


def default_soundfont() -> str:
    """Name of the font used when none is chosen: FluidR3_GM if installed, else TimGM6mb."""
    if SYSTEM_SOUNDFONT.is_file():
        return SYSTEM_SOUNDFONT.stem
    bundled = _bundled_soundfont()
    if bundled is not None:
        return bundled.stem
    raise RenderError(
        f"No SoundFont found: neither {SYSTEM_SOUNDFONT} nor pretty_midi's TimGM6mb.sf2 exists. "
        "Install one with `sudo apt-get install fluid-soundfont-gm` or drop a .sf2 file into "
        f"{soundfonts_dir()}."
    )


def soundfont_path(name: str | None = None) -> Path:
    """The file behind a SoundFont name; ``None`` means :func:`default_soundfont`."""
    name = default_soundfont() if name is None else name
    fonts = list_soundfonts()
    if not isinstance(name, str) or name not in fonts:
        raise RenderError(
            f"Unknown SoundFont {str(name)[:40]!r}; available: {', '.join(sorted(fonts)) or 'none'}. "
            "Drop a .sf2 or .sf3 file into the soundfonts/ folder to add one."
        )
    path = fonts[name]
    if not path.is_file():
        raise RenderError(f"SoundFont {name!r} points to {path}, which does not exist any more.")
    return path


# -- FluidSynth -------------------------------------------------------------------------------------
def _import_fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:
        raise RenderError(
            f"FluidSynth is not available ({exc}). Install the library with "
            "`sudo apt-get install libfluidsynth3` (Debian/Ubuntu), then restart the app."
        ) from None
    return fluidsynth


# -- libfluidsynth's C API, through pyfluidsynth's private ctypes handle ------------------------------
# pyfluidsynth wraps neither fluid_synth_write_float nor fluid_set_log_function, so both are taken
# from its handle of the loaded library, ``fluidsynth._fl`` (private), and called with the synth's C
# pointer, ``Synth.synth`` (undocumented). Only this section touches either. A missing function logs
# one warning and rendering goes on without it (16-bit samples, FluidSynth's warnings in the log);
# tests/test_render.py::test_the_libfluidsynth_adapter_finds_what_it_needs fails instead.
_C_FUNCTIONS = {  # name: (argtypes, restype), from FluidSynth 2's fluidsynth/synth.h and log.h
    # int fluid_synth_write_float(fluid_synth_t *synth, int len, void *lout, int loff, int lincr,
    #                             void *rout, int roff, int rincr)
    "fluid_synth_write_float": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                 ctypes.c_void_p, ctypes.c_int, ctypes.c_int], ctypes.c_int),
    # fluid_log_function_t fluid_set_log_function(int level, fluid_log_function_t fun, void *data)
    "fluid_set_log_function": ([ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p], ctypes.c_void_p),
}
_FLUID_WARN = 2  # FluidSynth's log level for warnings (enum fluid_log_level)
_unreachable_logged: set[str] = set()


def _c_api_problems(fluidsynth) -> list[str]:
    """What this section needs from the pyfluidsynth module and does not find; [] when all is there."""
    lib = getattr(fluidsynth, "_fl", None)
    if not isinstance(lib, ctypes.CDLL):
        return [f"{getattr(fluidsynth, '__file__', 'pyfluidsynth')} has no ctypes library handle `_fl` "
                f"(found {type(lib).__name__})"]
    return [f"{lib._name} has no C function {name}" for name in _C_FUNCTIONS if not hasattr(lib, name)]


def _c_function(fluidsynth, name: str):
    """libfluidsynth's ``name``, typed as in ``_C_FUNCTIONS``; None, logged once, where unreachable."""
    lib = getattr(fluidsynth, "_fl", None)
    fn = getattr(lib, name, None) if isinstance(lib, ctypes.CDLL) else None
    if fn is None:
        if name not in _unreachable_logged:
            _unreachable_logged.add(name)
            log.warning("Cannot reach %s through pyfluidsynth's private `fluidsynth._fl` (%s); rendering "
                        "without it. Update the libfluidsynth section of musicgen_app/render.py.",
                        name, "; ".join(_c_api_problems(fluidsynth)))
        return None
    fn.argtypes, fn.restype = _C_FUNCTIONS[name]
    return fn


def _float_writer(fluidsynth):
    """``write(synth, out)`` filling ``out`` (frames x 2, float32, C-contiguous) from a pyfluidsynth
    ``Synth`` with ``fluid_synth_write_float``; None where that function is not reachable.

    pyfluidsynth only wraps the 16-bit writer, which dithers with a counter that survives resets
    (so renders would differ) and clips; float output has neither problem.
    """
    fn = _c_function(fluidsynth, "fluid_synth_write_float")
    if fn is None:
        return None

    def write(synth, out: np.ndarray) -> None:
        ptr = out.ctypes.data  # interleaved: left from float 0, right from float 1, every 2nd float
        fn(synth.synth, len(out), ptr, 0, 2, ptr, 1, 2)

    return write


def _mute_warnings(fluidsynth) -> None:
    """Stop libfluidsynth logging warnings, process-wide; errors are still logged."""
    fn = _c_function(fluidsynth, "fluid_set_log_function")
    if fn is not None:
        fn(_FLUID_WARN, None, None)


# -- synths ---------------------------------------------------------------------------------------
@dataclass
class _FontSynth:
    """One FluidSynth instance with one font loaded; use only while holding ``lock``."""

    synth: object
    sfid: int
    write_float: object
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: int = 0  # samples pulled so far, to start every render on a block boundary

    def write(self, out: np.ndarray) -> None:
        """Fill ``out`` (frames x 2, float32, C-contiguous) with the next samples."""
        n = len(out)
        if n == 0:
            return
        if self.write_float is not None:
            self.write_float(self.synth, out)
        else:
            out[:] = self.synth.get_samples(n).reshape(-1, 2) / 32768.0
        self.written += n

    def prime(self) -> None:
        """Silence everything and put the voice slots a note will take into the same state.

        system_reset restores controllers and programs but leaves voices ringing; all_sounds_off
        then kills them (the other order does not). A voice slot also keeps a little state from
        the last note it played (quiet, but enough to make two renders of one note differ: -44 dB
        with no chord), and a note takes the lowest free slots, so a chord of _PRIME_KEYS piano
        notes goes through those slots first (16 voices: more than a note of any GM preset uses).
        This is how FluidSynth behaves, not documented API: tests/test_render.py checks it for the
        installed version (one note sounds the same after any other notes, to the bit).
        """
        synth = self.synth
        synth.system_reset()
        synth.all_sounds_off(_CHANNEL)
        synth.program_select(_CHANNEL, self.sfid, 0, 0)
        for key in range(_PRIME_LOW, _PRIME_LOW + _PRIME_KEYS):
            synth.noteon(_CHANNEL, key, 100)
        self.write(np.empty((_BLOCK, 2), np.float32))
        synth.system_reset()
        synth.all_sounds_off(_CHANNEL)
        # Let one block pass so the kill is done before new notes arrive.
        self.write(np.empty((_BLOCK, 2), np.float32))

    def align(self) -> None:
        pad = -self.written % _BLOCK
        if pad:
            self.write(np.empty((pad, 2), np.float32))


# Synths per (font, sample rate), made as renders need them, up to SYNTHS_PER_FONT: a render holds its
# synth for the whole melody, so with one synth a busy server renders one melody at a time, whatever
# its cores. FluidSynth shares a font's samples between the synths of a process (+10 MB a synth).
# MUSICGEN_SYNTHS_PER_FONT overrides it (the benchmarks compare 1 with the default).
_env_synths = os.environ.get("MUSICGEN_SYNTHS_PER_FONT", "")
SYNTHS_PER_FONT = (int(_env_synths) if _env_synths.isdigit() and int(_env_synths) > 0
                   else max(1, min(4, os.cpu_count() or 1)))
_synths: dict[tuple[Path, int], list[_FontSynth]] = {}
# Guards _synths; held while a font loads so two first requests for it do not load it twice.
_synths_lock = threading.Condition()


def _load_synth(path: Path, sample_rate: int) -> _FontSynth:
    fluidsynth = _import_fluidsynth()
    synth = fluidsynth.Synth(gain=_GAIN, samplerate=float(sample_rate), channels=16,
                             **{"synth.reverb.active": 0, "synth.chorus.active": 0,
                                "synth.polyphony": _POLYPHONY})
    sfid = synth.sfload(str(path))
    if sfid < 0:
        synth.delete()
        raise RenderError(
            f"FluidSynth could not load the SoundFont {path}: the file is damaged or not a "
            "SoundFont. Replace it with a valid .sf2/.sf3 file."
        )
    # Priming overfills the voice pool on purpose; its warnings would flood every log. The logger
    # is process-wide, so it is switched off once here: switched around each render, it would
    # race between fonts rendering in parallel.
    _mute_warnings(fluidsynth)
    return _FontSynth(synth, sfid, _float_writer(fluidsynth))


def _get_synth(path: Path, sample_rate: int) -> _FontSynth:
    """The first synth of a font (loading it): what warm_up loads and a test inspects."""
    with _synths_lock:
        return _pool(path, sample_rate)[0]


def _pool(path: Path, sample_rate: int) -> list[_FontSynth]:
    pool = _synths.setdefault((path.resolve(), sample_rate), [])
    if not pool:
        pool.append(_load_synth(path, sample_rate))
    return pool


@contextlib.contextmanager
def _free_synth(path: Path, sample_rate: int):
    """A synth of the font no other render holds (the first free one, so renders one after another
    use the same synth), another loaded while there are fewer than SYNTHS_PER_FONT, else the next
    to come free."""
    with _synths_lock:
        while True:
            pool = _pool(path, sample_rate)
            font = next((f for f in pool if f.lock.acquire(blocking=False)), None)
            if font is None and len(pool) < SYNTHS_PER_FONT:
                font = _load_synth(path, sample_rate)
                font.lock.acquire()
                pool.append(font)
            if font is not None:
                break
            _synths_lock.wait(0.05)  # a lock taken outside _free_synth is released without a notify
    try:
        yield font
    finally:
        font.lock.release()
        with _synths_lock:
            _synths_lock.notify()


_workers: concurrent.futures.ThreadPoolExecutor | None = None
_workers_lock = threading.Lock()
_in_worker = threading.local()


def _as_worker(fn, x):
    _in_worker.yes = True
    return fn(x)


def each(fn, items) -> list:
    """``[fn(x) for x in items]``, up to SYNTHS_PER_FONT at once, in order; the first error raised.

    FluidSynth lets go of Python's lock while it writes samples, so a click's variations render on
    every core rather than one after another. The workers are shared by all requests: under load
    they render as many melodies at once as there are synths, and no more. Called from a worker, it
    runs inline: a worker waiting on the workers could wait for ever.
    """
    global _workers
    items = list(items)
    if len(items) < 2 or SYNTHS_PER_FONT < 2 or getattr(_in_worker, "yes", False):
        return [fn(x) for x in items]
    with _workers_lock:
        if _workers is None:
            _workers = concurrent.futures.ThreadPoolExecutor(SYNTHS_PER_FONT, thread_name_prefix="render")
    return list(_workers.map(functools.partial(_as_worker, fn), items))


def warm_up(soundfont: str | None = None, sample_rate: int = SAMPLE_RATE) -> None:
    """Load a font's synth now (e.g. at app start) instead of on the first render."""
    _get_synth(soundfont_path(soundfont), sample_rate)


# -- rendering --------------------------------------------------------------------------------------
def _block_start(seconds: float, sample_rate: int) -> int:
    """The sample where FluidSynth applies an event sent at ``seconds`` of a render that started on
    a block boundary: the start of the next block it renders."""
    return -(-round(seconds * sample_rate) // _BLOCK) * _BLOCK


def _note_audio(path: Path, sample_rate: int, program: int, pitch: int, velocity: int,
                blocks: int) -> np.ndarray:
    """One note played alone for ``blocks`` blocks, through its release; mono, FluidSynth's level,
    trailing silence dropped."""
    with _free_synth(path, sample_rate) as font:
        synth = font.synth
        font.align()
        font.prime()
        if synth.program_select(_CHANNEL, font.sfid, 0, program) < 0:
            raise RenderError(
                f"SoundFont {path.name} has no preset for GM program {program} (bank 0); "
                "choose another program or a full General MIDI SoundFont."
            )
        synth.noteon(_CHANNEL, pitch, velocity)
        chunks = [np.empty((blocks * _BLOCK, 2), np.float32)]
        font.write(chunks[0])
        synth.noteoff(_CHANNEL, pitch)
        heard, pulled = bool(chunks[0].any()), 0
        while pulled < (_RELEASE_LIMIT_SECONDS if heard else _UNHEARD_LIMIT_SECONDS) * sample_rate:
            chunk = np.empty((_RELEASE_CHUNK, 2), np.float32)
            font.write(chunk)
            chunks.append(chunk)
            pulled += _RELEASE_CHUNK
            if chunk.any():
                heard = True
            elif heard:
                break  # the voices have ended: FluidSynth writes exact zeros from then on
    stereo = np.concatenate(chunks)
    audio = (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)
    last = len(audio) - 2 * _RELEASE_CHUNK  # the sound ends in the chunk before the silent one
    sounding = np.flatnonzero(audio[max(0, last):])
    if not len(sounding):
        last, sounding = 0, np.flatnonzero(audio)
    return audio[:max(0, last) + sounding[-1] + 1].copy() if len(sounding) else audio[:0].copy()


def _add_notes(melody: Melody, program: int, path: Path, sample_rate: int, out: np.ndarray) -> None:
    """Add each note's audio (cached, see the module docstring) into ``out`` where it starts."""
    sec = melody.seconds_per_step
    for n in melody.notes:
        start = _block_start(n.start * sec, sample_rate)
        if start >= len(out):
            break
        blocks = (_block_start(n.end * sec, sample_rate) - start) // _BLOCK
        key = (path, sample_rate, program, n.pitch, n.velocity, blocks)
        note = _NOTES.get(key, functools.partial(_note_audio, *key))[:len(out) - start]
        out[start:start + len(note)] += note


def render(melody: Melody, soundfont: str | None = None, sample_rate: int = SAMPLE_RATE,
           program: int | None = None, normalize: bool = True) -> np.ndarray:
    """Play ``melody`` through FluidSynth; mono float32 at ``sample_rate``, peak at -1 dBFS.

    ``normalize=False`` keeps FluidSynth's own level, so renders of parts can be summed and the
    sum normalised once (see :func:`normalize_peak`).

    ``soundfont`` is a name from :func:`list_soundfonts` (default :func:`default_soundfont`);
    ``program`` is a General MIDI program 0-127 overriding ``melody.program``. The result lasts
    ``melody.duration_seconds + TAIL_SECONDS``; a melody without notes gives silence (zeros).
    """
    if not isinstance(sample_rate, int) or not SAMPLE_RATES[0] <= sample_rate <= SAMPLE_RATES[1]:
        raise RenderError(f"Sample rate {sample_rate!r} is outside {SAMPLE_RATES[0]}-{SAMPLE_RATES[1]} Hz.")
    program = melody.program if program is None else program
    if not isinstance(program, int) or not 0 <= program <= 127:
        raise RenderError(f"GM program {program!r} is outside 0-127.")
    path = soundfont_path(soundfont)
    if melody.duration_seconds > MAX_AUDIO_SECONDS:
        melody = melody.slice(0, int(MAX_AUDIO_SECONDS / melody.seconds_per_step))
    total = round((melody.duration_seconds + TAIL_SECONDS) * sample_rate)
    audio = np.zeros(total, np.float32)
    _add_notes(melody, program, path.resolve(), sample_rate, audio)
    fade = min(total, int(_FADE_SECONDS * sample_rate))
    if fade:
        audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return normalize_peak(audio) if normalize else audio


def audio_cut(melody: Melody) -> str | None:
    """A notice when the audio of ``melody`` stops at MAX_AUDIO_SECONDS, else None."""
    if melody.duration_seconds <= MAX_AUDIO_SECONDS:
        return None
    return (f"The audio stops after {MAX_AUDIO_SECONDS / 60:g} minutes of the "
            f"{melody.duration_seconds / 60:.0f}; the MIDI file has all of it.")


class _AudioCache:
    """Audio by key, least recently used out first, bounded in bytes (the newest item always kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self._items, self._lock = max_bytes, collections.OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        audio = make()
        audio.setflags(write=False)
        with self._lock:
            self._items[key] = audio
            while sum(a.nbytes for a in self._items.values()) > self.max_bytes and len(self._items) > 1:
                self._items.popitem(last=False)
        return audio


_HEADS = _AudioCache(HEAD_CACHE_BYTES)  # inputs' audio by (melody, font, program)
_NOTES = _AudioCache(NOTE_CACHE_BYTES)  # notes' audio, see _add_notes


def render_continued(head: Melody, continuation: Melody, soundfont: str | None = None,
                     program: int | None = None) -> np.ndarray:
    """Audio of ``head`` then ``continuation`` (which starts at head.total_steps), peak-normalised.

    Rendered in two parts and summed: the head is the same for every variation and every click, so
    it is rendered once and cached. FluidSynth without reverb and chorus is linear, so the sum of
    the unnormalised parts, normalised once, equals one render of the whole (onsets agree to one
    64-sample block).
    """
    if head.duration_seconds + continuation.duration_seconds > MAX_AUDIO_SECONDS:
        return render(head.concat(continuation), soundfont=soundfont, program=program)  # cut there
    a = _HEADS.get((head, soundfont, program),
                   lambda: render(head, soundfont=soundfont, program=program, normalize=False))
    b = render(continuation, soundfont=soundfont, program=program, normalize=False)
    # On FluidSynth's block grid, as the whole would be rendered (off by < 0.75 ms).
    offset = round(head.total_steps * head.seconds_per_step * SAMPLE_RATE / _BLOCK) * _BLOCK
    out = np.zeros(max(len(a), offset + len(b)), np.float32)
    out[:len(a)] += a
    out[offset:offset + len(b)] += b
    return normalize_peak(out)


def one_after_another(audios: list[np.ndarray], gap_seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Clips in turn with ``gap_seconds`` of silence between them (each already ends in its tail)."""
    gap = np.zeros(max(0, round(gap_seconds * sample_rate)), np.float32)
    pieces = []
    for i, audio in enumerate(audios):
        pieces += [gap, audio] if i else [audio]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def normalize_peak(audio: np.ndarray) -> np.ndarray:
    """Scale in place so the peak sits at PEAK_DBFS; silence stays zeros."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 1e-9:
        audio *= np.float32(10 ** (PEAK_DBFS / 20) / peak)
    else:
        audio[:] = 0.0
    return audio


# -- writers ----------------------------------------------------------------------------------------
def _encode(audio: np.ndarray, sr: int, fmt: str, subtype: str, target) -> None:
    import soundfile

    data = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    try:
        soundfile.write(target, data, sr, format=fmt, subtype=subtype)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise RenderError(f"Could not encode {len(data)} samples at {sr} Hz as {fmt}: {exc}") from None


def _pcm16(audio: np.ndarray, sr: int) -> np.ndarray:
    """Samples as 16-bit PCM, as libsndfile writes them: scaled by 2**15, rounded down, clipped.

    One scratch array, changed in place: clipping to [-1, 1] before the (exact, power-of-2) scaling
    and to [-32768, 32767] after the rounding gives the same numbers as one clip after both.
    """
    if not 8000 <= sr <= 384000:
        raise RenderError(f"Could not encode audio at {sr} Hz as WAV: use a sample rate of 8000-384000 Hz.")
    data = np.multiply(np.asarray(audio, dtype=np.float32), np.float32(32768))
    np.floor(data, out=data)
    np.clip(data, -32768, 32767, out=data)
    return data.astype("<i2")


def _write_wav(target, pcm: np.ndarray, sr: int) -> None:
    with wave.open(target, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm)


def to_wav_bytes(audio: np.ndarray, sr: int) -> bytes:
    """16-bit PCM WAV, for download and playback.

    Written with numpy and the standard ``wave`` module: byte for byte what libsndfile writes
    (scale by 2**15, round down, clip; tests/test_render.py compares them), without libsndfile's
    per-call overhead, which a click writing several WAVs would notice.
    """
    buf = io.BytesIO()
    _write_wav(buf, _pcm16(audio, sr), sr)
    return buf.getvalue()


def write_wav(audio: np.ndarray, sr: int, path: str | Path) -> Path:
    """:func:`to_wav_bytes` straight into the file ``path``, without the copies in memory."""
    pcm = _pcm16(audio, sr)
    with open(path, "wb") as f:
        _write_wav(f, pcm, sr)
    return Path(path)


def to_ogg_bytes(audio: np.ndarray, sr: int) -> bytes:
    """OGG Vorbis, about a tenth of the WAV's size, for playback in the browser."""
    buf = io.BytesIO()
    _encode(audio, sr, "OGG", "VORBIS", buf)
    return buf.getvalue()


def write_audio(audio: np.ndarray, sr: int, path: str | Path) -> Path:
    """Write ``.wav``, ``.ogg`` or ``.flac`` by the file's suffix; returns the path."""
    path = Path(path)
    fmt = AUDIO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise RenderError(
            f"Cannot write audio to {path.name!r}: use one of {', '.join(AUDIO_FORMATS)} as the suffix."
        )
    _encode(audio, sr, *fmt, str(path))
    return path
