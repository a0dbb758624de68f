"""The browser app: three tabs (Continue, Interpolate, Generate) over one :class:`MelodyService`.

Thin by design: handlers read widgets, build a service request, call the service and write the
results as files (MIDI, WAV, MusicXML, PNG) into a fresh request folder of a :class:`TempStore`.
Our own exceptions become ``gr.Error`` with their message; a handler that fails returns nothing,
so every input and every piece of per-user state stays as it was.

Per-user state lives in ``gr.State`` (an :class:`InputHistory` per melody input, the last results);
the service and the temp store are shared read-only objects held by :class:`Studio`.

Each action has two events: the UI's (private; many outputs, shaped for the page) and an API
endpoint (``/continue``, ``/interpolate``, ``/generate``) with plain inputs (a file, typed notes or
an example name, numbers) and file outputs a ``gradio_client`` can download. Both call the same
``Studio`` methods.
"""

from __future__ import annotations

import functools
import html
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

from . import midi_io, render, score_io, views
from .errors import ImportFailed, MusicgenError, RenderError, RequestError
from .examples import DEFAULT_EXAMPLE, example_names, example_path
from .importer import HOW_TO_TYPE, ImportResult, load_melody, parse_text
from .melody import PITCH_NAMES, Melody
from .service import (MAX_SEED, ContinueRequest, InterpolateRequest, MelodyService, SampleRequest)
from .tempfiles import TempStore

MAX_VARIATIONS = 8
MAX_HISTORY = 50  # inputs kept for Undo per input panel; older ones are dropped
SAMPLE_RATE = 44100
UPLOAD_TYPES = [".mid", ".midi", ".kar", ".musicxml", ".xml", ".mxl", ".abc", ".txt"]
KEY_CHOICES = ["off", "detected"] + [f"{p} {mode}" for mode in ("major", "minor") for p in PITCH_NAMES]
TIME_SIGNATURES = ["4/4", "3/4", "2/4", "6/8"]
KEEP_PROGRAM = -1
GALLERY_ROLL = (600, 200)  # piano rolls in galleries; the CSS gives their cells the same 3:1 shape


def gm_program_choices() -> list[tuple[str, int]]:
    from pretty_midi.constants import INSTRUMENT_MAP

    return [("Keep the input's", KEEP_PROGRAM)] + [(f"{i}: {name}", i) for i, name in enumerate(INSTRUMENT_MAP)]


# -- per-user state -------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputEntry:
    """One melody given as input, and where it came from (so a track change can re-read it)."""

    melody: Melody
    label: str
    origin: tuple = ()  # ("example", name) | ("file", path) | ("text", text) | ("result",)
    tracks: tuple = ()  # TrackInfo of every candidate track, for the picker
    track: int | None = None
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputHistory:
    """The inputs given so far; the last is the current one. Immutable: handlers return a new one."""

    entries: tuple[InputEntry, ...] = ()

    @property
    def current(self) -> InputEntry | None:
        return self.entries[-1] if self.entries else None

    def push(self, entry: InputEntry) -> "InputHistory":
        return InputHistory((self.entries + (entry,))[-MAX_HISTORY:])

    def replace_current(self, entry: InputEntry) -> "InputHistory":
        return InputHistory(self.entries[:-1] + (entry,))

    def undo(self) -> "InputHistory":
        if len(self.entries) < 2:
            raise gr.Error("Nothing to undo: this is the first input.")
        return InputHistory(self.entries[:-1])


@dataclass(frozen=True)
class ContinueRun:
    """What the last Continue produced, for "Continue from this" and the score pass."""

    melodies: tuple[Melody, ...] = ()
    start_step: int = 0
    folder: str = ""
    label: str = ""


@dataclass
class VariationOut:
    melody: Melody
    continuation: Melody
    audio: Path
    roll: Path
    downloads: list[Path] = field(default_factory=list)


# -- helpers --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _render_cached(melody: Melody, soundfont: str | None, program: int | None) -> np.ndarray:
    """The input's audio, reused across variations and clicks (Melody is frozen and hashable)."""
    audio = render.render(melody, soundfont=soundfont, sample_rate=SAMPLE_RATE, program=program, normalize=False)
    audio.setflags(write=False)
    return audio


def _error_title(exc: MusicgenError) -> str:
    if isinstance(exc, ImportFailed):
        return "Could not use this melody"
    if isinstance(exc, RequestError):
        return "Check the settings"
    if isinstance(exc, RenderError):
        return "Could not make the audio"
    return "Error"


def user_errors(fn):
    """Our exceptions -> gr.Error with their message (shown in the page; inputs stay as they are)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MusicgenError as exc:
            raise gr.Error(html.escape(str(exc), quote=False), title=_error_title(exc)) from exc

    return wrapper


def _seed(value) -> int | None:
    """Empty or negative means "pick one for me"; the seed used is shown back."""
    if value is None or value == "":
        return None
    try:
        seed = int(float(value))
    except (TypeError, ValueError):
        raise gr.Error(f"Seed {value!r} is not a whole number; type one from 0 to {MAX_SEED} or leave it empty.")
    return None if seed < 0 else seed


def _int(value, name: str) -> int:
    try:
        return int(round(float(value)))
    except (TypeError, ValueError):
        raise gr.Error(f"{name} {value!r} is not a number.")


def random_seed() -> int:
    return random.randint(0, 99_999_999)


def entry_markdown(entry: InputEntry | None, depth: int = 0) -> str:
    if entry is None:
        return "*No melody yet: pick an example, upload a file or type notes.*"
    s = entry.melody.summary()
    pickup = f" (pickup {entry.melody.pickup_steps} steps)" if entry.melody.pickup_steps else ""
    track = ""
    if len(entry.tracks) > 1 and entry.track is not None:
        info = next((t for t in entry.tracks if t.index == entry.track), None)
        track = f" · track {entry.track}: {info.name if info else ''}"
    lines = [f"**{html.escape(entry.label)}**{html.escape(track)}",
             f"{s['time_signature']} · {s['tempo_qpm']:g} qpm · {s['key']} · {s['bars']:g} bars{pickup} · "
             f"{s['notes']} notes · pitches {s['range']}"]
    for n in entry.notices:
        lines.append(f"⚠ {html.escape(n)}")
    if depth > 1:
        lines.append(f"*{depth} inputs in the history; Undo goes back one.*")
    return "  \n".join(lines)


def _track_update(entry: InputEntry | None):
    if entry is None or len(entry.tracks) < 2:
        return gr.update(choices=[], value=None, visible=False)
    return gr.update(choices=[(t.label, t.index) for t in entry.tracks], value=entry.track, visible=True)


def _entry(result: ImportResult, label: str, origin: tuple) -> InputEntry:
    return InputEntry(result.melody, label, origin, tuple(result.tracks), result.track, tuple(result.notices))


def read_input(origin: tuple, track: int | None = None) -> InputEntry:
    """Read an example, a file or typed text into an :class:`InputEntry`."""
    kind = origin[0]
    if kind == "example":
        return _entry(load_melody(example_path(origin[1]), track=track), origin[1], origin)
    if kind == "file":
        path = Path(origin[1])
        return _entry(load_melody(path, track=track), path.name, origin)
    if kind == "text":
        return _entry(parse_text(origin[1]), "Typed notes", origin)
    raise ImportFailed(f"Cannot re-read an input of kind {kind!r}.")


def resolve_api_input(file, notes, example, track=None, name: str = "the melody") -> InputEntry:
    """The API's rule: a file wins over typed notes, which win over an example name."""
    track = None if track is None or track == "" or int(track) < 0 else int(track)
    if file:
        return read_input(("file", str(file)), track)
    if notes and str(notes).strip():
        return read_input(("text", str(notes)))
    if example and str(example).strip():
        return read_input(("example", str(example).strip()), track)
    raise ImportFailed(f"Give {name}: a file, typed notes (ABC or tinyNotation) or an example name "
                       f"({', '.join(example_names())}).")


def _zip(paths: list[Path], target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            zf.write(p, p.name)
    return target


def _status(seed: int, notices, extra: str = "") -> str:
    lines = [f"Seed used: **{seed}** (type it into the seed box to get the same result again).{extra}"]
    lines += [f"⚠ {html.escape(n)}" for n in notices]
    return "  \n".join(lines)


# -- the actions ------------------------------------------------------------------------------------
class Studio:
    """The handlers, bound to one read-only service and one temp store shared by all users."""

    def __init__(self, service: MelodyService, store: TempStore | None = None, soundfont: str | None = None):
        self.service = service
        self.store = store or TempStore()
        self.soundfonts = list(render.list_soundfonts())
        self.default_soundfont = soundfont or (render.default_soundfont() if self.soundfonts else None)

    # audio and files
    def _font(self, name: str | None) -> str | None:
        return name or self.default_soundfont

    def write_audio(self, melody: Melody, path: Path, soundfont=None, program: int | None = None) -> Path:
        audio = render.render(melody, soundfont=self._font(soundfont), sample_rate=SAMPLE_RATE, program=program)
        path.write_bytes(render.to_wav_bytes(audio, SAMPLE_RATE))
        return path

    def write_continued_audio(self, head: Melody, continuation: Melody, path: Path, soundfont=None,
                              program: int | None = None) -> Path:
        """Audio of ``head`` then ``continuation`` (which starts at head.total_steps).

        Rendered in two parts and summed: the input's part is the same for every variation and
        every click, so it is rendered once and cached. FluidSynth without reverb and chorus is
        linear, so the sum of the unnormalised parts, normalised once, equals one render of the
        whole (onsets agree to one 64-sample block).
        """
        font = self._font(soundfont)
        a = _render_cached(head, font, program)
        b = render.render(continuation, soundfont=font, sample_rate=SAMPLE_RATE, program=program, normalize=False)
        # On FluidSynth's 64-sample block grid, as the whole would be rendered (off by < 0.75 ms).
        offset = round(head.total_steps * head.seconds_per_step * SAMPLE_RATE / 64) * 64
        out = np.zeros(max(len(a), offset + len(b)), np.float32)
        out[:len(a)] += a
        out[offset:offset + len(b)] += b
        render.normalize_peak(out)
        path.write_bytes(render.to_wav_bytes(out, SAMPLE_RATE))
        return path

    def write_roll(self, melody: Melody, path: Path, split_step=None, title="", size=(900, 220)) -> Path:
        views.piano_roll_png(melody, split_step=split_step, path=path, title=title, width=size[0], height=size[1])
        return path

    # -- continue -------------------------------------------------------------------------------
    def continue_melody(self, melody: Melody, bars=8, temperature=1.0, variations=4, seed=None,
                        key_lock="off", program=KEEP_PROGRAM, soundfont=None, rolls=True,
                        progress=None) -> tuple[list[VariationOut], object, Path]:
        """Run the service and write MIDI (whole, continuation), WAV and a piano roll per variation."""
        req = ContinueRequest(melody, bars=_int(bars, "Bars"), temperature=float(temperature),
                              variations=_int(variations, "Variations"), seed=_seed(seed),
                              key_lock=key_lock or "off")
        if progress:
            progress(0.05, desc="Writing the continuations")
        result = self.service.continue_(req)
        program = None if program is None or int(program) < 0 else int(program)
        folder = self.store.request_dir("continue")
        outs = []
        for i, (whole, cont) in enumerate(zip(result.melodies, result.continuations)):
            if progress:
                progress(0.2 + 0.75 * i / len(result.melodies), desc=f"Rendering variation {i + 1}")
            if program is not None:
                whole, cont = whole.replace(program=program), cont.replace(program=program)
            stem = f"variation-{i + 1}"
            mid = folder / f"{stem}.mid"
            midi_io.melody_to_midi(whole, mid)
            mid_cont = folder / f"{stem}-continuation.mid"
            midi_io.melody_to_midi(cont, mid_cont)
            wav = self.write_continued_audio(req.melody.replace(program=whole.program), cont,
                                             folder / f"{stem}.wav", soundfont)
            roll = self.write_roll(whole, folder / f"{stem}.png", result.start_step) if rolls else None
            outs.append(VariationOut(whole, cont, wav, roll, [mid, mid_cont, wav]))
        return outs, result, folder

    @user_errors
    def continue_ui(self, history: InputHistory, bars, temperature, variations, seed, key_lock, program,
                    soundfont, progress=gr.Progress()):
        entry = history.current
        if entry is None:
            raise gr.Error("Give a melody first: pick an example, upload a file or type notes.")
        outs, result, folder = self.continue_melody(entry.melody, bars, temperature, variations, seed, key_lock,
                                                     program, soundfont, progress=progress)
        run = ContinueRun(tuple(o.melody for o in outs), result.start_step, str(folder), entry.label)
        status = _status(result.seed, result.notices,
                         f" Blue: the input; orange: the continuation ({len(outs)} variation"
                         f"{'s' if len(outs) > 1 else ''}).")
        slots = []
        for i in range(MAX_VARIATIONS):
            if i < len(outs):
                o = outs[i]
                slots += [gr.update(visible=True), str(o.audio), str(o.roll), "", *map(str, o.downloads), None]
            else:
                slots += [gr.update(visible=False), None, None, "", None, None, None, None]
        return (run, status, *slots)

    @user_errors
    def continue_scores_ui(self, run: ContinueRun, progress=gr.Progress()):
        """Second pass after the audio is on screen: engraved scores and MusicXML downloads."""
        out = []
        for i in range(MAX_VARIATIONS):
            if i >= len(run.melodies):
                out += ["", None]
                continue
            progress(i / len(run.melodies), desc=f"Engraving variation {i + 1}")
            xml = score_io.melody_to_musicxml(run.melodies[i])
            path = Path(run.folder) / f"variation-{i + 1}.musicxml"
            path.write_bytes(xml if isinstance(xml, bytes) else xml.encode("utf-8"))
            out += [f'<div class="score">{views.score_svg(xml)}</div>', str(path)]
        return tuple(out)

    def continue_api(self, melody_file=None, notes=None, example=None, track=None, bars=8, temperature=1.0,
                     variations=4, seed=None, key_lock="off", program=KEEP_PROGRAM, soundfont=None):
        """/continue: a file, typed notes or an example name -> MIDIs, continuation MIDIs, WAVs, info."""
        return self._continue_api(melody_file, notes, example, track, bars, temperature, variations, seed, key_lock,
                                  program, soundfont)

    @user_errors
    def _continue_api(self, file, notes, example, track, bars, temperature, variations, seed, key_lock, program,
                      soundfont):
        entry = resolve_api_input(file, notes, example, track)
        outs, result, _ = self.continue_melody(entry.melody, bars, temperature, variations, seed, key_lock,
                                                program, soundfont, rolls=False)
        info = {"seed": result.seed, "input": entry.melody.summary(), "track": entry.track,
                "start_step": result.start_step, "notices": list(entry.notices) + list(result.notices),
                "variations": [o.melody.summary() for o in outs]}
        return ([str(o.downloads[0]) for o in outs], [str(o.downloads[1]) for o in outs],
                [str(o.audio) for o in outs], info)

    # -- interpolate ----------------------------------------------------------------------------
    def interpolate_melodies(self, a: Melody, b: Melody, steps=7, temperature=0.0, seed=None, soundfont=None,
                             rolls=True, progress=None):
        req = InterpolateRequest(a, b, steps=_int(steps, "Steps"), temperature=float(temperature), seed=_seed(seed))
        if progress:
            progress(0.05, desc="Morphing")
        result = self.service.interpolate(req)
        folder = self.store.request_dir("interpolate")
        if progress:
            progress(0.5, desc="Rendering the morph")
        morph_mid = folder / "morph.mid"
        midi_io.melody_to_midi(result.morph, morph_mid)
        wav = self.write_audio(result.morph, folder / "morph.wav", soundfont)
        clip_mids, pictures = [], []
        n = len(result.clips)
        for i, clip in enumerate(result.clips):
            name = "A" if i == 0 else "B" if i == n - 1 else f"step {i}"
            stem = f"step-{i + 1:02d}-of-{n:02d}"
            clip_mids.append(folder / f"{stem}.mid")
            midi_io.melody_to_midi(clip.replace(name=name), clip_mids[-1])
            if rolls:
                pictures.append((self.write_roll(clip, folder / f"{stem}.png", title=f"{i + 1}/{n}: {name}",
                                                 size=GALLERY_ROLL), f"{i + 1}/{n}: {name}"))
        zipped = _zip(clip_mids, folder / "morph-steps.zip")
        return result, morph_mid, zipped, wav, pictures

    @user_errors
    def interpolate_ui(self, hist_a: InputHistory, hist_b: InputHistory, steps, temperature, seed, soundfont,
                       progress=gr.Progress()):
        if hist_a.current is None or hist_b.current is None:
            raise gr.Error("Give both clips first: pick an example, upload a file or type notes for A and B.")
        result, morph_mid, zipped, wav, rolls = self.interpolate_melodies(
            hist_a.current.melody, hist_b.current.melody, steps, temperature, seed, soundfont, progress=progress)
        status = _status(result.seed, result.notices, f" {len(result.clips)} clips from A to B.")
        return status, str(wav), [(str(p), c) for p, c in rolls], [str(morph_mid), str(zipped)]

    def interpolate_api(self, a_file=None, a_notes=None, a_example=None, b_file=None, b_notes=None, b_example=None,
                        steps=7, temperature=0.0, seed=None):
        """/interpolate: clips A and B (file, typed notes or example) -> morph MIDI, steps zip, WAV, info."""
        return self._interpolate_api(a_file, a_notes, a_example, b_file, b_notes, b_example, steps, temperature,
                                     seed)

    @user_errors
    def _interpolate_api(self, a_file, a_notes, a_example, b_file, b_notes, b_example, steps, temperature, seed):
        a = resolve_api_input(a_file, a_notes, a_example, name="clip A")
        b = resolve_api_input(b_file, b_notes, b_example, name="clip B")
        result, morph_mid, zipped, wav, _ = self.interpolate_melodies(a.melody, b.melody, steps, temperature, seed,
                                                                      rolls=False)
        info = {"seed": result.seed, "notices": list(a.notices) + list(b.notices) + list(result.notices),
                "clips": [c.summary() for c in result.clips], "morph": result.morph.summary()}
        return str(morph_mid), str(zipped), str(wav), info

    # -- generate -------------------------------------------------------------------------------
    def generate_melodies(self, count=4, temperature=1.0, seed=None, time_signature="4/4", qpm=120,
                          soundfont=None, for_page=True, progress=None):
        """MIDI and WAV per melody and a zip; for the page also piano rolls and one WAV of them all."""
        try:
            num, den = (int(x) for x in str(time_signature).split("/"))
        except ValueError:
            raise gr.Error(f"Time signature {time_signature!r} is not like 3/4 or 6/8.") from None
        req = SampleRequest(count=_int(count, "How many"), temperature=float(temperature), seed=_seed(seed),
                            qpm=float(qpm), time_signature=(num, den))
        if progress:
            progress(0.05, desc="Sampling")
        result = self.service.sample(req)
        folder = self.store.request_dir("generate")
        mids, wavs, rolls, audios = [], [], [], []
        for i, m in enumerate(result.melodies):
            if progress:
                progress(0.2 + 0.7 * i / len(result.melodies), desc=f"Writing melody {i + 1}")
            stem = f"melody-{i + 1:02d}"
            mids.append(folder / f"{stem}.mid")
            midi_io.melody_to_midi(m, mids[-1])
            audio = render.render(m, soundfont=self._font(soundfont), sample_rate=SAMPLE_RATE)
            wavs.append(folder / f"{stem}.wav")
            wavs[-1].write_bytes(render.to_wav_bytes(audio, SAMPLE_RATE))
            audios.append(audio)
            if for_page:
                rolls.append((self.write_roll(m, folder / f"{stem}.png", title=f"Melody {i + 1}", size=GALLERY_ROLL),
                              f"Melody {i + 1} · {m.key.name}"))
        zipped = _zip(mids, folder / "melodies.zip")
        if not for_page:
            return result, mids, zipped, wavs, None, rolls
        # One player for all: the melodies one after another, a bar apart (their audio, not re-rendered).
        first = result.melodies[0]
        gap = np.zeros(max(0, round((first.bar_steps * first.seconds_per_step - render.TAIL_SECONDS) * SAMPLE_RATE)),
                       np.float32)
        pieces = [audios[0]]
        for audio in audios[1:]:
            pieces += [gap, audio]
        all_wav = folder / "all-melodies.wav"
        all_wav.write_bytes(render.to_wav_bytes(np.concatenate(pieces), SAMPLE_RATE))
        return result, mids, zipped, wavs, all_wav, rolls

    @user_errors
    def generate_ui(self, count, temperature, seed, time_signature, qpm, soundfont, progress=gr.Progress()):
        result, mids, zipped, wavs, all_wav, rolls = self.generate_melodies(
            count, temperature, seed, time_signature, qpm, soundfont, progress=progress)
        status = _status(result.seed, result.notices,
                         " The player plays them all in turn; click a piano roll to hear that melody alone.")
        return (status, str(all_wav), [(str(p), c) for p, c in rolls], [str(p) for p in mids] + [str(zipped)],
                [str(all_wav)] + [str(w) for w in wavs])

    def generate_api(self, count=4, temperature=1.0, seed=None, time_signature="4/4", qpm=120):
        """/generate: how many, temperature, seed, time signature, tempo -> MIDIs, zip, WAVs, info."""
        return self._generate_api(count, temperature, seed, time_signature, qpm)

    @user_errors
    def _generate_api(self, count, temperature, seed, time_signature, qpm):
        result, mids, zipped, wavs, _, _ = self.generate_melodies(count, temperature, seed, time_signature or "4/4",
                                                                  qpm or 120, for_page=False)
        info = {"seed": result.seed, "notices": list(result.notices),
                "melodies": [m.summary() for m in result.melodies]}
        return [str(p) for p in mids], str(zipped), [str(w) for w in wavs], info


# -- input panel handlers (module level: they need no service) -------------------------------------
def _panel_out(history: InputHistory):
    return history, entry_markdown(history.current, len(history.entries)), _track_update(history.current)


@user_errors
def pick_example(name, history: InputHistory):
    if not name:
        raise gr.Error("Choose an example from the list.")
    return _panel_out(history.push(read_input(("example", name))))


@user_errors
def pick_upload(path, history: InputHistory):
    if not path:  # the file was cleared: keep the current input
        return _panel_out(history)
    return _panel_out(history.push(read_input(("file", str(path)))))


@user_errors
def pick_text(text, history: InputHistory):
    return _panel_out(history.push(read_input(("text", text or ""))))


@user_errors
def pick_track(track, history: InputHistory):
    entry = history.current
    if entry is None or track is None or track == entry.track or entry.origin[:1] == ("result",):
        return _panel_out(history)
    return _panel_out(history.replace_current(read_input(entry.origin, int(track))))


def undo_input(history: InputHistory):
    return _panel_out(history.undo())


def chain_result(index: int, run: ContinueRun, history: InputHistory):
    if index >= len(run.melodies):
        raise gr.Error(f"There is no variation {index + 1} to continue from; click Continue first.")
    m = run.melodies[index]
    entry = InputEntry(m, f"Variation {index + 1} of {run.label}", ("result",), (), None, ())
    return _panel_out(history.push(entry))


def initial_history(example: str | None = DEFAULT_EXAMPLE) -> InputHistory:
    if example is None:
        return InputHistory()
    return InputHistory((read_input(("example", example)),))


# -- layout -----------------------------------------------------------------------------------------
CSS = """
.gradio-container {max-width: 1280px !important}
.score {background: white; border-radius: 4px}
.score svg {max-width: 100%; height: auto}
.variation {padding: 6px !important}
.compact-row {gap: 6px !important}
#title h3 {margin: 0 !important}
.rolls .grid-container {grid-template-rows: none !important; grid-auto-rows: auto !important}
.rolls .thumbnail-item {aspect-ratio: 3 / 1 !important; height: auto !important}
"""


@dataclass
class InputPanel:
    state: gr.State
    example: gr.Dropdown
    upload: gr.File
    text: gr.Textbox
    use_text: gr.Button
    track: gr.Dropdown
    info: gr.Markdown


def input_panel(title: str, default_example: str, key: str) -> InputPanel:
    history = initial_history(default_example)
    state = gr.State(history)
    gr.Markdown(f"### {title}")
    with gr.Tabs():
        with gr.Tab("Example"):
            example = gr.Dropdown(example_names(), value=default_example, show_label=False,
                                  elem_id=f"{key}-example")
        with gr.Tab("Upload"):
            upload = gr.File(file_types=UPLOAD_TYPES, type="filepath", show_label=False, height=90,
                             elem_id=f"{key}-upload")
        with gr.Tab("Type"):
            text = gr.Textbox(lines=3, max_lines=8, show_label=False, placeholder=HOW_TO_TYPE,
                              elem_id=f"{key}-text")
            use_text = gr.Button("Use these notes", size="sm")
    track = gr.Dropdown([], label="Track", visible=False, interactive=True, elem_id=f"{key}-track")
    info = gr.Markdown(entry_markdown(history.current), elem_id=f"{key}-info")
    panel = InputPanel(state, example, upload, text, use_text, track, info)
    outs = [state, info, track]
    example.input(pick_example, [example, state], outs, api_visibility="private")
    upload.upload(pick_upload, [upload, state], outs, api_visibility="private")
    use_text.click(pick_text, [text, state], outs, api_visibility="private")
    text.submit(pick_text, [text, state], outs, api_visibility="private")
    track.input(pick_track, [track, state], outs, api_visibility="private")
    return panel


def _soundfont_dropdown(studio: Studio):
    return gr.Dropdown(studio.soundfonts, value=studio.default_soundfont, label="SoundFont",
                       interactive=bool(studio.soundfonts))


def build_ui(service: MelodyService, store: TempStore | None = None, *, concurrency_limit: int = 2) -> gr.Blocks:
    """The whole page; ``app.py`` queues and launches it."""
    studio = Studio(service, store)
    heavy = {"concurrency_id": "model", "concurrency_limit": concurrency_limit}
    with gr.Blocks(title="Melody studio", delete_cache=(600, 3600)) as demo:
        demo.studio = studio  # for tests and the launcher
        gr.Markdown("### Melody studio · continue a melody, morph one into another, or generate new ones",
                    elem_id="title")
        with gr.Tabs():
            with gr.Tab("Continue", id="continue"):
                _continue_tab(studio, heavy)
            with gr.Tab("Interpolate", id="interpolate"):
                _interpolate_tab(studio, heavy)
            with gr.Tab("Generate", id="generate"):
                _generate_tab(studio, heavy)
        _api_endpoints(studio, heavy)
    return demo


def _seed_row():
    with gr.Row(elem_classes="compact-row", equal_height=True):
        seed = gr.Textbox("", label="Seed", placeholder="random", max_length=12, scale=3, min_width=90)
        dice = gr.Button("New seed", size="sm", scale=2, min_width=70)
    dice.click(lambda: str(random_seed()), None, seed, api_visibility="private", queue=False)
    return seed


def _continue_tab(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            panel = input_panel("Input", DEFAULT_EXAMPLE, "continue")
            undo = gr.Button("Undo: back to the previous input", size="sm", elem_id="continue-undo")
            with gr.Row(elem_classes="compact-row"):
                bars = gr.Slider(1, 32, value=8, step=1, label="Bars", elem_id="continue-bars", min_width=100)
                variations = gr.Slider(1, MAX_VARIATIONS, value=4, step=1, label="Variations", min_width=100)
                temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature", min_width=100)
            with gr.Row(elem_classes="compact-row", equal_height=True):
                with gr.Column(scale=3, min_width=180):
                    seed = _seed_row()
                key_lock = gr.Dropdown(KEY_CHOICES, value="off", label="Key lock", scale=2, min_width=100)
            with gr.Row(elem_classes="compact-row"):
                program = gr.Dropdown(gm_program_choices(), value=KEEP_PROGRAM, label="Instrument")
                soundfont = _soundfont_dropdown(studio)
            go = gr.Button("Continue", variant="primary", elem_id="continue-go")
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown("Results appear here: press **Continue**.", elem_id="continue-status")
            run = gr.State(ContinueRun())
            slots = []
            for i in range(MAX_VARIATIONS):
                v = f"variation-{i + 1}"
                with gr.Group(visible=False, elem_classes="variation", elem_id=v) as group:
                    audio = gr.Audio(type="filepath", interactive=False, label=f"Variation {i + 1}",
                                     elem_id=f"{v}-audio")
                    roll = gr.Image(type="filepath", interactive=False, show_label=False, height=150,
                                    elem_id=f"{v}-roll", buttons=["fullscreen"])
                    with gr.Row(elem_classes="compact-row downloads"):
                        mid = gr.DownloadButton("MIDI ⇣", size="sm", elem_id=f"{v}-midi", min_width=60)
                        cont = gr.DownloadButton("New bars MIDI ⇣", size="sm", elem_id=f"{v}-cont", min_width=60)
                        wav = gr.DownloadButton("WAV ⇣", size="sm", elem_id=f"{v}-wav", min_width=60)
                        xml = gr.DownloadButton("MusicXML ⇣", size="sm", elem_id=f"{v}-xml", min_width=60)
                        chain = gr.Button("Continue from this", size="sm", variant="secondary",
                                          elem_id=f"{v}-chain", min_width=60)
                    with gr.Accordion("Score", open=False):
                        score = gr.HTML(max_height=320, elem_id=f"{v}-score")
                slots.append((group, audio, roll, score, mid, cont, wav, xml, chain))
    panel_outs = [panel.state, panel.info, panel.track]
    undo.click(undo_input, [panel.state], panel_outs, api_visibility="private")
    for i, slot in enumerate(slots):
        slot[-1].click(functools.partial(chain_result, i), [run, panel.state], panel_outs, api_visibility="private")
    slot_outs = [c for slot in slots for c in slot[:-1]]
    go.click(studio.continue_ui, [panel.state, bars, temperature, variations, seed, key_lock, program, soundfont],
             [run, status, *slot_outs], api_visibility="private", **heavy
             ).success(studio.continue_scores_ui, [run], [c for slot in slots for c in (slot[3], slot[7])],
                       api_visibility="private", show_progress="hidden", **heavy)


def _interpolate_tab(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            with gr.Row():
                with gr.Column(min_width=160):
                    a = input_panel("Clip A", "Chorale line (Bach, MusicXML)", "clip-a")
                with gr.Column(min_width=160):
                    b = input_panel("Clip B", DEFAULT_EXAMPLE, "clip-b")
            gr.Markdown("### Settings")
            with gr.Row(elem_classes="compact-row"):
                steps = gr.Slider(3, 11, value=7, step=1, label="Steps (A and B included)")
                temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0: most likely)")
            seed = _seed_row()
            soundfont = _soundfont_dropdown(studio)
            go = gr.Button("Interpolate", variant="primary", elem_id="interpolate-go")
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown("The morph appears here: press **Interpolate**.", elem_id="interpolate-status")
            audio = gr.Audio(type="filepath", interactive=False, label="Morph A → B", elem_id="interpolate-audio")
            files = gr.File(file_count="multiple", label="Downloads (morph MIDI, zip of the steps)",
                            interactive=False, elem_id="interpolate-files")
            gallery = gr.Gallery(label="Piano roll of each step", columns=2, height="auto", object_fit="contain",
                                 elem_id="interpolate-gallery", elem_classes="rolls")
    go.click(studio.interpolate_ui, [a.state, b.state, steps, temperature, seed, soundfont],
             [status, audio, gallery, files], api_visibility="private", **heavy)


def _generate_tab(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            gr.Markdown("### Settings")
            count = gr.Slider(1, 16, value=4, step=1, label="How many", elem_id="generate-count")
            temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature (higher: wilder)")
            with gr.Row(elem_classes="compact-row"):
                time_signature = gr.Dropdown(TIME_SIGNATURES, value="4/4", label="Time signature")
                qpm = gr.Slider(40, 240, value=120, step=1, label="Tempo (quarter notes per minute)")
            seed = _seed_row()
            soundfont = _soundfont_dropdown(studio)
            go = gr.Button("Generate", variant="primary", elem_id="generate-go")
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown("New melodies appear here: press **Generate**.", elem_id="generate-status")
            audio = gr.Audio(type="filepath", interactive=False, label="Listen", elem_id="generate-audio")
            files = gr.File(file_count="multiple", label="Downloads (a MIDI per melody, and a zip)",
                            interactive=False, height=130, elem_id="generate-files")
            gallery = gr.Gallery(label="Piano rolls (click one to hear it)", columns=2, height="auto",
                                 object_fit="contain", elem_id="generate-gallery", elem_classes="rolls")
            wavs = gr.State([])
    go.click(studio.generate_ui, [count, temperature, seed, time_signature, qpm, soundfont],
             [status, audio, gallery, files, wavs], api_visibility="private", **heavy)

    def play(wav_paths, evt: gr.SelectData):
        # wav_paths[0] is all of them in turn; melody k is at k + 1
        return wav_paths[evt.index + 1] if evt.index + 1 < len(wav_paths) else gr.update()

    gallery.select(play, [wavs], [audio], api_visibility="private", queue=False)


def _api_endpoints(studio: Studio, heavy: dict):
    """Endpoints for gradio_client with plain inputs; their widgets are never shown."""
    with gr.Column(visible=False):
        c_file = gr.File(type="filepath", label="melody_file")
        c_notes = gr.Textbox(label="notes")
        c_example = gr.Textbox(label="example")
        c_track = gr.Number(None, label="track", precision=0)
        c_bars = gr.Number(8, label="bars", precision=0)
        c_temp = gr.Number(1.0, label="temperature")
        c_var = gr.Number(4, label="variations", precision=0)
        c_seed = gr.Number(None, label="seed", precision=0)
        c_key = gr.Textbox("off", label="key_lock")
        c_prog = gr.Number(KEEP_PROGRAM, label="program", precision=0)
        c_font = gr.Textbox("", label="soundfont")
        o_midi = gr.File(file_count="multiple", label="midi")
        o_cont = gr.File(file_count="multiple", label="continuation_midi")
        o_wav = gr.File(file_count="multiple", label="audio")
        o_info = gr.JSON(label="info")
        c_btn = gr.Button("continue")
        c_btn.click(studio.continue_api,
                    [c_file, c_notes, c_example, c_track, c_bars, c_temp, c_var, c_seed, c_key, c_prog, c_font],
                    [o_midi, o_cont, o_wav, o_info], api_name="continue", **heavy)

        i_a_file, i_b_file = gr.File(type="filepath", label="a_file"), gr.File(type="filepath", label="b_file")
        i_a_notes, i_b_notes = gr.Textbox(label="a_notes"), gr.Textbox(label="b_notes")
        i_a_ex, i_b_ex = gr.Textbox(label="a_example"), gr.Textbox(label="b_example")
        i_steps = gr.Number(7, label="steps", precision=0)
        i_temp = gr.Number(0.0, label="temperature")
        i_seed = gr.Number(None, label="seed", precision=0)
        io_morph, io_zip, io_wav = gr.File(label="morph_midi"), gr.File(label="steps_zip"), gr.File(label="audio")
        io_info = gr.JSON(label="info")
        i_btn = gr.Button("interpolate")
        i_btn.click(studio.interpolate_api,
                    [i_a_file, i_a_notes, i_a_ex, i_b_file, i_b_notes, i_b_ex, i_steps, i_temp, i_seed],
                    [io_morph, io_zip, io_wav, io_info], api_name="interpolate", **heavy)

        g_count = gr.Number(4, label="count", precision=0)
        g_temp = gr.Number(1.0, label="temperature")
        g_seed = gr.Number(None, label="seed", precision=0)
        g_ts = gr.Textbox("4/4", label="time_signature")
        g_qpm = gr.Number(120, label="qpm")
        go_midi, go_zip = gr.File(file_count="multiple", label="midi"), gr.File(label="zip")
        go_wav, go_info = gr.File(file_count="multiple", label="audio"), gr.JSON(label="info")
        g_btn = gr.Button("generate")
        g_btn.click(studio.generate_api, [g_count, g_temp, g_seed, g_ts, g_qpm],
                    [go_midi, go_zip, go_wav, go_info], api_name="generate", **heavy)
