"""The browser page: three tabs (Continue, Interpolate, Generate) and the API, over one service.

Layout and handlers only. A handler reads widgets, builds a service request
(:func:`musicgen_app.settings.build_request`), calls the service, writes the result with
:mod:`musicgen_app.outputs` into a fresh request folder of the temp store, and shapes the files for
the page. Our exceptions become ``gr.Error`` with their message; a handler that fails returns
nothing, so every input and every piece of per-user state stays as it was.

Per-user state lives in ``gr.State`` (an :class:`~musicgen_app.inputs.InputHistory` per input
panel, the last Continue run); the service and the temp store are shared and read-only.
"""

from __future__ import annotations

import functools
import html
import random
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from pretty_midi.constants import INSTRUMENT_MAP

from . import outputs, render, views
from .errors import ImportFailed, MusicgenError, RenderError, RequestError
from .examples import DEFAULT_EXAMPLE, example_names
from .inputs import InputEntry, InputHistory, InputOrigin, read_input, resolve_api_input
from .io.importer import HOW_TO_TYPE, MAX_BYTES
from .melody import Melody
from .service import (KEY_LOCKS, TIME_SIGNATURES, ContinueRequest, InterpolateRequest, MelodyService,
                      SampleRequest)
from .settings import build_request, parse_time_signature, spec
from .tempfiles import TempStore

MAX_VARIATIONS = int(spec(ContinueRequest, "variations").high)
UPLOAD_TYPES = [".mid", ".midi", ".kar", ".musicxml", ".xml", ".mxl", ".abc", ".txt"]
KEEP_PROGRAM = -1
PROGRAM_CHOICES = [("Keep the input's", KEEP_PROGRAM)] + [(f"{i}: {name}", i) for i, name in enumerate(INSTRUMENT_MAP)]
MAX_UPLOAD_BYTES = MAX_BYTES


@dataclass(frozen=True)
class Studio:
    """What every handler shares: the read-only service, the temp store and the SoundFonts."""

    service: MelodyService
    store: TempStore
    soundfonts: tuple[str, ...]
    default_soundfont: str | None

    @classmethod
    def create(cls, service: MelodyService, store: TempStore | None = None) -> Studio:
        fonts = tuple(render.list_soundfonts())
        return cls(service, store or TempStore(), fonts, render.default_soundfont() if fonts else None)

    def font(self, name: str | None) -> str | None:
        return name or self.default_soundfont


@dataclass(frozen=True)
class ContinueRun:
    """What the last Continue produced, for "Continue from this" and the score pass."""

    melodies: tuple[Melody, ...] = ()
    start_step: int = 0
    folder: str = ""
    label: str = ""


# -- errors and small helpers ---------------------------------------------------------------------
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


def random_seed() -> int:
    return random.randint(0, 99_999_999)


def _program(value) -> int | None:
    """The instrument menu's value: KEEP_PROGRAM (or nothing) keeps the input's."""
    try:
        program = int(value)
    except (TypeError, ValueError):
        return None
    return program if 0 <= program <= 127 else None


def _status(seed: int, notices, extra: str = "") -> str:
    lines = [f"Seed used: **{seed}** (type it into the seed box to get the same result again).{extra}"]
    lines += [f"⚠ {html.escape(n)}" for n in notices]
    return "  \n".join(lines)


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
    lines += [f"⚠ {html.escape(n)}" for n in entry.notices]
    if depth > 1:
        lines.append(f"*{depth} inputs in the history; Undo goes back one.*")
    return "  \n".join(lines)


def _track_update(entry: InputEntry | None):
    pitched = [t for t in entry.tracks if t.notes and not t.is_drum] if entry else []
    if len(pitched) < 2:
        return gr.update(choices=[], value=None, visible=False)
    return gr.update(choices=[(t.label, t.index) for t in pitched], value=entry.track, visible=True)


# -- input panel handlers ---------------------------------------------------------------------------
def _panel_out(history: InputHistory):
    return history, entry_markdown(history.current, len(history.entries)), _track_update(history.current)


@user_errors
def pick_example(name, history: InputHistory):
    if not name:
        raise RequestError("Choose an example from the list.")
    return _panel_out(history.push(read_input(InputOrigin("example", name))))


@user_errors
def pick_upload(path, history: InputHistory):
    if not path:  # the file was cleared: keep the current input
        return _panel_out(history)
    return _panel_out(history.push(read_input(InputOrigin("file", str(path)))))


@user_errors
def pick_text(text, history: InputHistory):
    return _panel_out(history.push(read_input(InputOrigin("text", text or ""))))


@user_errors
def pick_track(track, history: InputHistory):
    entry = history.current
    if entry is None or track is None or track == entry.track or not entry.origin.rereadable:
        return _panel_out(history)
    return _panel_out(history.replace_current(read_input(entry.origin, int(track))))


@user_errors
def undo_input(history: InputHistory):
    return _panel_out(history.undo())


@user_errors
def chain_result(index: int, run: ContinueRun, history: InputHistory):
    if index >= len(run.melodies):
        raise RequestError(f"There is no variation {index + 1} to continue from; click Continue first.")
    return _panel_out(history.push(InputEntry.result(run.melodies[index], f"Variation {index + 1} of {run.label}")))


def initial_history(example: str | None = DEFAULT_EXAMPLE) -> InputHistory:
    if example is None:
        return InputHistory()
    return InputHistory((read_input(InputOrigin("example", example)),))


def _current(history: InputHistory, what: str = "a melody") -> InputEntry:
    if history.current is None:
        raise RequestError(f"Give {what} first: pick an example, upload a file or type notes.")
    return history.current


# -- Continue -------------------------------------------------------------------------------------
def _continue(studio: Studio, melody: Melody, bars, temperature, variations, seed, key_lock, program, soundfont,
              *, rolls: bool):
    req = build_request(ContinueRequest, melody=melody, bars=bars, temperature=temperature, variations=variations,
                        seed=seed, key_lock=key_lock or "off")
    result = studio.service.continue_(req)
    folder = studio.store.request_dir("continue")
    files = outputs.write_continue(result, folder / "variation.mid", rolls=rolls, program=_program(program),
                                   soundfont=studio.font(soundfont))
    return result, files, folder


@user_errors
def continue_ui(studio: Studio, history: InputHistory, bars, temperature, variations, seed, key_lock, program,
                soundfont, progress=gr.Progress()):
    entry = _current(history)
    progress(0.05, desc="Writing the continuations")
    result, files, folder = _continue(studio, entry.melody, bars, temperature, variations, seed, key_lock, program,
                                      soundfont, rolls=True)
    run = ContinueRun(tuple(v.melody for v in files.variations), result.start_step, str(folder), entry.label)
    n = len(files.variations)
    status = _status(result.seed, result.notices,
                     f" Blue: the input; orange: the continuation ({n} variation{'s' if n > 1 else ''}).")
    slots = []
    for i in range(MAX_VARIATIONS):
        if i < n:
            v = files.variations[i]
            slots += [gr.update(visible=True), str(v.audio), str(v.roll), "", str(v.midi), str(v.new_bars_midi),
                      str(v.audio), None]
        else:
            slots += [gr.update(visible=False), None, None, "", None, None, None, None]
    return (run, status, *slots)


@user_errors
def continue_scores_ui(run: ContinueRun, progress=gr.Progress()):
    """Second pass after the audio is on screen: engraved scores and MusicXML downloads."""
    out = []
    for i in range(MAX_VARIATIONS):
        if i >= len(run.melodies):
            out += ["", None]
            continue
        progress(i / len(run.melodies), desc=f"Engraving variation {i + 1}")
        path = Path(run.folder) / f"variation-{i + 1}.musicxml"
        xml = outputs.write_musicxml(run.melodies[i], path)
        out += [f'<div class="score">{views.score_svg(xml)}</div>', str(path)]
    return tuple(out)


@user_errors
def continue_api(studio: Studio, melody_file=None, notes=None, example=None, track=None, bars=None,
                 temperature=None, variations=None, seed=None, key_lock="off", program=KEEP_PROGRAM, soundfont=None):
    """/continue: a file, typed notes or an example name -> MIDIs, continuation MIDIs, WAVs, info."""
    entry = resolve_api_input(melody_file, notes, example, track)
    result, files, _ = _continue(studio, entry.melody, bars, temperature, variations, seed, key_lock, program,
                                 soundfont, rolls=False)
    vs = files.variations
    info = {"seed": result.seed, "input": entry.melody.summary(), "track": entry.track,
            "start_step": result.start_step, "notices": list(entry.notices) + list(result.notices),
            "variations": [v.melody.summary() for v in vs]}
    return [str(v.midi) for v in vs], [str(v.new_bars_midi) for v in vs], [str(v.audio) for v in vs], info


# -- Interpolate ----------------------------------------------------------------------------------
def _interpolate(studio: Studio, a: Melody, b: Melody, steps, temperature, seed, soundfont, *, rolls: bool):
    req = build_request(InterpolateRequest, a=a, b=b, steps=steps, temperature=temperature, seed=seed)
    result = studio.service.interpolate(req)
    folder = studio.store.request_dir("interpolate")
    files = outputs.write_morph(result, folder / "morph.mid", steps_zip=folder / "morph-steps.zip",
                                audio=folder / "morph.wav", rolls_dir=folder if rolls else None,
                                soundfont=studio.font(soundfont))
    return result, files


@user_errors
def interpolate_ui(studio: Studio, hist_a: InputHistory, hist_b: InputHistory, steps, temperature, seed, soundfont,
                   progress=gr.Progress()):
    a, b = _current(hist_a, "clip A"), _current(hist_b, "clip B")
    progress(0.05, desc="Morphing")
    result, files = _interpolate(studio, a.melody, b.melody, steps, temperature, seed, soundfont, rolls=True)
    status = _status(result.seed, result.notices, f" {len(result.clips)} clips from A to B.")
    return status, str(files.audio), [(str(p), c) for p, c in files.rolls], [str(files.midi), str(files.steps_zip)]


@user_errors
def interpolate_api(studio: Studio, a_file=None, a_notes=None, a_example=None, b_file=None, b_notes=None,
                    b_example=None, steps=None, temperature=None, seed=None):
    """/interpolate: clips A and B (file, typed notes or example) -> morph MIDI, steps zip, WAV, info."""
    a = resolve_api_input(a_file, a_notes, a_example, name="clip A")
    b = resolve_api_input(b_file, b_notes, b_example, name="clip B")
    result, files = _interpolate(studio, a.melody, b.melody, steps, temperature, seed, None, rolls=False)
    info = {"seed": result.seed, "notices": list(a.notices) + list(b.notices) + list(result.notices),
            "clips": [c.summary() for c in result.clips], "morph": result.morph.summary()}
    return str(files.midi), str(files.steps_zip), str(files.audio), info


# -- Generate -------------------------------------------------------------------------------------
def _generate(studio: Studio, count, temperature, seed, time_signature, qpm, soundfont, *, page: bool):
    req = build_request(SampleRequest, count=count, temperature=temperature, seed=seed, qpm=qpm,
                        time_signature=parse_time_signature(time_signature or "4/4"))
    result = studio.service.sample(req)
    files = outputs.write_generated(result, studio.store.request_dir("generate"), medley=page, rolls=page,
                                    soundfont=studio.font(soundfont))
    return result, files


@user_errors
def generate_ui(studio: Studio, count, temperature, seed, time_signature, qpm, soundfont, progress=gr.Progress()):
    progress(0.05, desc="Sampling")
    result, files = _generate(studio, count, temperature, seed, time_signature, qpm, soundfont, page=True)
    status = _status(result.seed, result.notices,
                     " The player plays them all in turn; click a piano roll to hear that melody alone.")
    return (status, str(files.medley), [(str(p), c) for p, c in files.rolls],
            [str(p) for p in files.midis] + [str(files.zip)], [str(files.medley)] + [str(w) for w in files.audios])


@user_errors
def generate_api(studio: Studio, count=None, temperature=None, seed=None, time_signature="4/4", qpm=None):
    """/generate: how many, temperature, seed, time signature, tempo -> MIDIs, zip, WAVs, info."""
    result, files = _generate(studio, count, temperature, seed, time_signature, qpm, None, page=False)
    info = {"seed": result.seed, "notices": list(result.notices), "melodies": [m.summary() for m in result.melodies]}
    return [str(p) for p in files.midis], str(files.zip), [str(w) for w in files.audios], info


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
    studio = Studio.create(service, store)
    heavy = {"concurrency_id": "model", "concurrency_limit": concurrency_limit}
    with gr.Blocks(title="Melody studio", delete_cache=(600, 3600)) as demo:
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


def _slider(request_type, name: str, label: str | None = None, **kw) -> gr.Slider:
    s = spec(request_type, name)
    return gr.Slider(s.low, s.high, value=s.default, step=s.step, label=label or s.label, **kw)


def _number(request_type, name: str) -> gr.Number:
    """An API input named after the request's field, documented from its declaration."""
    s = spec(request_type, name)
    return gr.Number(s.default, label=name, info=s.describe(), precision=0 if s.whole else None)


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
                bars = _slider(ContinueRequest, "bars", elem_id="continue-bars", min_width=100)
                variations = _slider(ContinueRequest, "variations", min_width=100)
                temperature = _slider(ContinueRequest, "temperature", min_width=100)
            with gr.Row(elem_classes="compact-row", equal_height=True):
                with gr.Column(scale=3, min_width=180):
                    seed = _seed_row()
                key_lock = gr.Dropdown(KEY_LOCKS, value="off", label="Key lock", scale=2, min_width=100)
            with gr.Row(elem_classes="compact-row"):
                program = gr.Dropdown(PROGRAM_CHOICES, value=KEEP_PROGRAM, label="Instrument")
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
    go.click(functools.partial(continue_ui, studio), [panel.state, bars, temperature, variations, seed, key_lock, program, soundfont],
             [run, status, *slot_outs], api_visibility="private", **heavy
             ).success(continue_scores_ui, [run], [c for slot in slots for c in (slot[3], slot[7])],
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
                steps = _slider(InterpolateRequest, "steps", label="Steps (A and B included)")
                temperature = _slider(InterpolateRequest, "temperature", label="Temperature (0: most likely)")
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
    go.click(functools.partial(interpolate_ui, studio), [a.state, b.state, steps, temperature, seed, soundfont],
             [status, audio, gallery, files], api_visibility="private", **heavy)


def _generate_tab(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            gr.Markdown("### Settings")
            count = _slider(SampleRequest, "count", elem_id="generate-count")
            temperature = _slider(SampleRequest, "temperature", label="Temperature (higher: wilder)")
            with gr.Row(elem_classes="compact-row"):
                time_signature = gr.Dropdown(TIME_SIGNATURES, value="4/4", label="Time signature")
                qpm = _slider(SampleRequest, "qpm", label="Tempo (quarter notes per minute)")
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
    go.click(functools.partial(generate_ui, studio), [count, temperature, seed, time_signature, qpm, soundfont],
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
        c_bars = _number(ContinueRequest, "bars")
        c_temp = _number(ContinueRequest, "temperature")
        c_var = _number(ContinueRequest, "variations")
        c_seed = gr.Number(None, label="seed", precision=0)
        c_key = gr.Textbox("off", label="key_lock")
        c_prog = gr.Number(KEEP_PROGRAM, label="program", precision=0)
        c_font = gr.Textbox("", label="soundfont")
        o_midi = gr.File(file_count="multiple", label="midi")
        o_cont = gr.File(file_count="multiple", label="continuation_midi")
        o_wav = gr.File(file_count="multiple", label="audio")
        o_info = gr.JSON(label="info")
        c_btn = gr.Button("continue")
        c_btn.click(functools.partial(continue_api, studio),
                    [c_file, c_notes, c_example, c_track, c_bars, c_temp, c_var, c_seed, c_key, c_prog, c_font],
                    [o_midi, o_cont, o_wav, o_info], api_name="continue", **heavy)

        i_a_file, i_b_file = gr.File(type="filepath", label="a_file"), gr.File(type="filepath", label="b_file")
        i_a_notes, i_b_notes = gr.Textbox(label="a_notes"), gr.Textbox(label="b_notes")
        i_a_ex, i_b_ex = gr.Textbox(label="a_example"), gr.Textbox(label="b_example")
        i_steps = _number(InterpolateRequest, "steps")
        i_temp = _number(InterpolateRequest, "temperature")
        i_seed = gr.Number(None, label="seed", precision=0)
        io_morph, io_zip, io_wav = gr.File(label="morph_midi"), gr.File(label="steps_zip"), gr.File(label="audio")
        io_info = gr.JSON(label="info")
        i_btn = gr.Button("interpolate")
        i_btn.click(functools.partial(interpolate_api, studio),
                    [i_a_file, i_a_notes, i_a_ex, i_b_file, i_b_notes, i_b_ex, i_steps, i_temp, i_seed],
                    [io_morph, io_zip, io_wav, io_info], api_name="interpolate", **heavy)

        g_count = _number(SampleRequest, "count")
        g_temp = _number(SampleRequest, "temperature")
        g_seed = gr.Number(None, label="seed", precision=0)
        g_ts = gr.Textbox("4/4", label="time_signature")
        g_qpm = _number(SampleRequest, "qpm")
        go_midi, go_zip = gr.File(file_count="multiple", label="midi"), gr.File(label="zip")
        go_wav, go_info = gr.File(file_count="multiple", label="audio"), gr.JSON(label="info")
        g_btn = gr.Button("generate")
        g_btn.click(functools.partial(generate_api, studio), [g_count, g_temp, g_seed, g_ts, g_qpm],
                    [go_midi, go_zip, go_wav, go_info], api_name="generate", **heavy)
