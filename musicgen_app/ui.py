"""The browser page: three tabs (Continue, Interpolate, Generate) over one service.

Layout and the page's handlers only. A handler hands the widgets' values to an action of
:mod:`musicgen_app.studio` (request, service, files written by :mod:`musicgen_app.outputs`) and
shapes the files for the page; the input panels are :mod:`musicgen_app.panels`, the HTTP API
:mod:`musicgen_app.api`. Our exceptions become ``gr.Error`` with their message; a handler that fails
returns nothing, so every input and every piece of per-user state stays as it was.

Per-user state lives in ``gr.State`` (an :class:`~musicgen_app.inputs.InputHistory` per input
panel, the last Continue run); the service and the temp store are shared and read-only.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import random
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from pretty_midi.constants import INSTRUMENT_MAP

from . import api, outputs, views
from .errors import RequestError
from .examples import DEFAULT_EXAMPLE
from .inputs import InputHistory
from .melody import Melody
from .panels import current_entry, input_panel, panel_outputs, push_result, settled, undo_input
from .phrasing import ENDINGS
from .service import (
    GENERATE_KEYS,
    KEY_LOCKS,
    PACINGS,
    SAMPLERS,
    TIME_SIGNATURES,
    ContinueRequest,
    ContinueResult,
    InterpolateRequest,
    MelodyService,
    SampleRequest,
)
from .settings import spec
from .studio import (
    KEEP_PROGRAM,
    VARIATION_BASE,
    Studio,
    client_gone,
    continue_files,
    generate_files,
    interpolate_files,
    program_choice,
    skip_outputs,
    user_errors,
)
from .tempfiles import TempStore

MAX_VARIATIONS = int(spec(ContinueRequest, "variations").high)
PROGRAM_CHOICES = [("Keep the input's", KEEP_PROGRAM)] + [(f"{i}: {name}", i) for i, name in enumerate(INSTRUMENT_MAP)]


@dataclass(frozen=True)
class ContinueRun:
    """What the last Continue produced, for "Continue from this" and the second pass (the other
    variations' audio and rolls, every score)."""

    melodies: tuple[Melody, ...] = ()
    start_step: int = 0
    folder: str = ""
    label: str = ""
    result: ContinueResult | None = None  # for the audio of the variations after the first
    program: int | None = None
    soundfont: str | None = None


def random_seed() -> int:
    return random.randint(0, 99_999_999)


def _status(seed: int, notices, extra: str = "") -> str:
    lines = [f"Seed used: **{seed}** (type it into the seed box to get the same result again).{extra}"]
    lines += [f"⚠ {html.escape(n)}" for n in notices]
    return "  \n".join(lines)


@user_errors
def chain_result(index: int, run: ContinueRun, history: InputHistory):
    if index >= len(run.melodies):
        raise RequestError(f"There is no variation {index + 1} to continue from; click Continue first.")
    return push_result(history, run.melodies[index], f"Variation {index + 1} of {run.label}")


@user_errors
def continue_ui(studio: Studio, history: InputHistory, upload, bars, temperature, variations, seed, key_lock,
                ending, program, soundfont, progress=gr.Progress()):
    """The first pass: every MIDI, and the first variation's audio and roll, so it plays at once."""
    history = settled(history, upload)
    entry = current_entry(history)
    progress(0.05, desc="Writing the continuations")
    result, files, folder = continue_files(studio, entry.melody, bars, temperature, variations, seed, key_lock, program,
                                           soundfont, rolls=True, ending=ending, media_for=(0,))
    run = ContinueRun(tuple(v.melody for v in files.variations), result.start_step, str(folder), entry.label,
                      result, program_choice(program), studio.font(soundfont))
    n = len(files.variations)
    low, high = result.pitch_range
    status = _status(result.seed, [*result.notices, *files.notices],
                     f" Blue: the input; orange: the continuation ({n} variation{'s' if n > 1 else ''}, the "
                     f"model's likeliest first). New notes stay within {views.pitch_name(low)}-"
                     f"{views.pitch_name(high)}: the input's range, widened as far as real tunes widen it.")
    slots = []
    for i in range(MAX_VARIATIONS):
        if i < n:
            v = files.variations[i]
            label = _variation_label(result, i) + ("" if v.audio else " · rendering…")
            slots += [gr.update(visible=True), gr.update(value=_path(v.audio), label=label), _path(v.roll), "",
                      str(v.midi), str(v.new_bars_midi), _path(v.audio), None]
        else:
            slots += [gr.update(visible=False), None, None, "", None, None, None, None]
    return (*panel_outputs(history), run, status, *slots)


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _variation_label(result, i: int) -> str:
    """What the player's label says of a variation: how likely the model finds it, how it ends."""
    label = f"Variation {i + 1}"
    if i < len(result.log2p_per_note):
        label += f" · {result.log2p_per_note[i]:.2f} bits per note"
    if i < len(result.ended) and not result.ended[i]:
        label += " · could not end as asked"
    return label


@user_errors
def continue_rest_ui(run: ContinueRun, progress=gr.Progress()):
    """The second pass, while the first variation plays: the other variations' audio and rolls, then
    engraved scores and MusicXML downloads. Stops early when the page has gone."""
    n = len(run.melodies)
    media = {}  # variation -> (audio, roll, wav) updates
    for i in range(1, n):
        if client_gone():
            return skip_outputs(5 * MAX_VARIATIONS)
        progress(i / (2 * n), desc=f"Rendering variation {i + 1}")
        wav, roll = outputs.write_variation_media(run.result, i, Path(run.folder) / VARIATION_BASE,
                                                  program=run.program, soundfont=run.soundfont)
        media[i] = (gr.update(value=str(wav), label=_variation_label(run.result, i)), str(roll), str(wav))
    out = []
    for i in range(MAX_VARIATIONS):
        if i >= n:
            out += [gr.skip()] * 3 + ["", None]
            continue
        if client_gone():
            return skip_outputs(5 * MAX_VARIATIONS)
        progress((n + i) / (2 * n), desc=f"Engraving variation {i + 1}")
        path = Path(run.folder) / f"variation-{i + 1}.musicxml"
        xml = outputs.write_musicxml(run.melodies[i], path)
        out += [*media.get(i, [gr.skip()] * 3), f'<div class="score">{views.score_svg(xml)}</div>', str(path)]
    return tuple(out)


@user_errors
def interpolate_ui(studio: Studio, hist_a: InputHistory, upload_a, hist_b: InputHistory, upload_b, steps, temperature,
                   pacing, seed, soundfont, progress=gr.Progress()):
    hist_a, hist_b = settled(hist_a, upload_a), settled(hist_b, upload_b)
    a, b = current_entry(hist_a, "clip A"), current_entry(hist_b, "clip B")
    progress(0.05, desc="Morphing")
    result, files = interpolate_files(studio, a.melody, b.melody, steps, temperature, seed, soundfont, rolls=True,
                                      pacing=pacing)
    status = _status(result.seed, [*result.notices, *files.notices], f" {len(result.clips)} clips from A to B.")
    return (*panel_outputs(hist_a), *panel_outputs(hist_b), status, str(files.audio),
            [(str(p), c) for p, c in files.rolls], [str(files.midi), str(files.steps_zip)], str(files.midi.parent))


@user_errors
def generate_ui(studio: Studio, count, temperature, seed, time_signature, qpm, sampler, notes_per_bar,
                range_semitones, key, ends_on_tonic, soundfont, progress=gr.Progress()):
    progress(0.05, desc="Sampling")
    result, files = generate_files(studio, count, temperature, seed, time_signature, qpm, soundfont, page=True,
                                   sampler=sampler, notes_per_bar=notes_per_bar, range_semitones=range_semitones,
                                   key=key, ends_on_tonic=ends_on_tonic)
    status = _status(result.seed, [*result.notices, *files.notices],
                     " The player plays them all in turn; click a piano roll to hear that melody alone.")
    return (status, str(files.medley), [(str(p), c) for p, c in files.rolls],
            [str(p) for p in files.midis] + [str(files.zip)], [str(files.medley)] + [str(w) for w in files.audios],
            str(files.medley.parent))


FILES_CLEARED = ("The files of this result were cleared to make room on the server; press the button again to "
                 "remake them (the same seed gives the same music).")
KEEP_FILES_EVERY = 120  # seconds between an open page's calls that keep its latest files


def keep_files(studio: Studio, held, status: str):
    """An open page keeps its latest result's files: each call restarts their age clock, so they go
    an hour after the page closes, not while it shows them. When the store cleared them for space,
    the status says so (once)."""
    folder = held.folder if isinstance(held, ContinueRun) else held
    if not folder or studio.store.keep(folder):
        return gr.skip(), gr.skip()
    cleared = dataclasses.replace(held, folder="") if isinstance(held, ContinueRun) else ""
    return cleared, f"{status}  \n⚠ {FILES_CLEARED}"


def _keep_files_while_open(studio: Studio, held: gr.State, status: gr.Markdown) -> None:
    gr.Timer(KEEP_FILES_EVERY).tick(functools.partial(keep_files, studio), [held, status], [held, status],
                                    api_visibility="private", queue=False, show_progress="hidden")


# -- layout ---------------------------------------------------------------------------------------
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
        api.add_endpoints(studio, heavy)
    return demo


def _slider(request_type, name: str, label: str | None = None, **kw) -> gr.Slider:
    s = spec(request_type, name)
    return gr.Slider(s.low, s.high, value=s.default, step=s.step, label=label or s.label, **kw)


def _optional_number(request_type, name: str, elem_id: str) -> gr.Number:
    """A box for an optional setting: empty means free (a slider cannot be empty)."""
    s = spec(request_type, name)
    return gr.Number(None, label=s.label, info=s.describe(), minimum=s.low, maximum=s.high, step=s.step,
                     placeholder="free", elem_id=elem_id, min_width=120)


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
                key_lock = gr.Dropdown(KEY_LOCKS, value="off", label="Key lock", scale=2, min_width=100,
                                       info="new notes stay in the scale; minor also allows the raised 6th and 7th")
                ending = gr.Dropdown(list(ENDINGS), value="tonic chord", label="End on", scale=2, min_width=100,
                                     info="where the last bar lands (in the melody's key)", elem_id="continue-ending")
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
    rest_outs = [c for group, audio, roll, score, _, _, wav, xml, _ in slots for c in (audio, roll, wav, score, xml)]
    go.click(functools.partial(continue_ui, studio),
             [panel.state, panel.upload, bars, temperature, variations, seed, key_lock, ending, program, soundfont],
             [*panel_outs, run, status, *slot_outs], api_visibility="private", **heavy
             ).success(continue_rest_ui, [run], rest_outs, api_visibility="private", show_progress="hidden", **heavy)
    _keep_files_while_open(studio, run, status)


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
            pacing = gr.Radio([(label, key) for key, label in PACINGS.items()], value="even", label="Pacing",
                              info="even: each step changes the melody about as much as the next",
                              elem_id="interpolate-pacing")
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
            folder = gr.State("")
    go.click(functools.partial(interpolate_ui, studio),
             [a.state, a.upload, b.state, b.upload, steps, temperature, pacing, seed, soundfont],
             [a.state, a.info, a.track, b.state, b.info, b.track, status, audio, gallery, files, folder],
             api_visibility="private", **heavy)
    _keep_files_while_open(studio, folder, status)


def _generate_tab(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            gr.Markdown("### Settings")
            count = _slider(SampleRequest, "count", elem_id="generate-count")
            temperature = _slider(SampleRequest, "temperature", label="Temperature (higher: wilder)")
            with gr.Row(elem_classes="compact-row"):
                time_signature = gr.Dropdown(TIME_SIGNATURES, value="4/4", label="Time signature")
                qpm = _slider(SampleRequest, "qpm", label="Tempo (quarter notes per minute)")
            sampler = gr.Radio([(label, key) for key, label in SAMPLERS.items()], value="bank", label="Sampler",
                               info="where each melody's code comes from: near a corpus tune (the shape controls "
                                    "below work with this one), or the GAN and the Gaussian, kept to compare",
                               elem_id="generate-sampler")
            with gr.Accordion("Shape (empty: free)", open=False, elem_id="generate-shape"):
                with gr.Row(elem_classes="compact-row"):
                    density = _optional_number(SampleRequest, "notes_per_bar", "generate-density")
                    span = _optional_number(SampleRequest, "range_semitones", "generate-range")
                with gr.Row(elem_classes="compact-row", equal_height=True):
                    key = gr.Dropdown(GENERATE_KEYS, value="any", label="Key", elem_id="generate-key",
                                      info="any, a mode, or one key")
                    tonic = gr.Checkbox(False, label="Ends on the tonic", elem_id="generate-tonic")
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
            wavs, folder = gr.State([]), gr.State("")
    go.click(functools.partial(generate_ui, studio),
             [count, temperature, seed, time_signature, qpm, sampler, density, span, key, tonic, soundfont],
             [status, audio, gallery, files, wavs, folder], api_visibility="private", **heavy)
    _keep_files_while_open(studio, folder, status)

    def play(wav_paths, evt: gr.SelectData):
        # wav_paths[0] is all of them in turn; melody k is at k + 1
        return wav_paths[evt.index + 1] if evt.index + 1 < len(wav_paths) else gr.update()

    gallery.select(play, [wavs], [audio], api_visibility="private", queue=False)
