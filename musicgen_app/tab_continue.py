"""The Continue tab: the input panel, the settings, and a player, piano roll, score and downloads
per variation. One click writes every MIDI and the first variation's audio and roll, so it plays at
once; a second pass renders the others and engraves the scores (:func:`continue_rest_ui`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from pretty_midi.constants import INSTRUMENT_MAP

from . import outputs, views, widgets
from .errors import RequestError
from .examples import DEFAULT_EXAMPLE
from .inputs import InputHistory
from .melody import Melody
from .panels import current_entry, input_panel, panel_outputs, push_result, settled, undo_input
from .phrasing import ENDINGS
from .service import KEY_LOCKS, ContinueRequest, ContinueResult
from .settings import spec
from .studio import (
    KEEP_PROGRAM,
    VARIATION_BASE,
    Studio,
    client_gone,
    continue_files,
    program_choice,
    skip_outputs,
    user_errors,
)

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
    result: ContinueResult | None = None  # for the audio of the variations after the first, "more like this"
    bars: int = 0
    program: int | None = None
    soundfont: str | None = None


@user_errors
def chain_result(index: int, run: ContinueRun, history: InputHistory):
    if index >= len(run.melodies):
        raise RequestError(f"There is no variation {index + 1} to continue from; click Continue first.")
    return push_result(history, run.melodies[index], f"Variation {index + 1} of {run.label}")


@user_errors
def continue_ui(studio: Studio, history: InputHistory, upload, bars, temperature, variations, seed, key_lock,
                ending, stay_close, program, soundfont, progress=gr.Progress()):
    """The first pass: every MIDI, and the first variation's audio and roll, so it plays at once."""
    history = settled(history, upload)
    entry = current_entry(history)
    progress(0.05, desc="Writing the continuations")
    return _first_pass(studio, history, entry.melody, entry.label, bars, temperature, variations, seed, key_lock,
                       ending, stay_close, program, soundfont)


@user_errors
def more_like_ui(index: int, studio: Studio, run: ContinueRun, history: InputHistory, temperature, variations, seed,
                 key_lock, ending, stay_close, program, soundfont, progress=gr.Progress()):
    """New variations of the last run's input, drawn toward its variation ``index`` (same bars)."""
    if run.result is None or index >= len(run.result.continuations):
        raise RequestError(f"There is no variation {index + 1} to write more like; click Continue first.")
    progress(0.05, desc=f"Writing more like variation {index + 1}")
    return _first_pass(studio, history, run.result.primer, run.label, run.bars, temperature, variations, seed,
                       key_lock, ending, stay_close, program, soundfont, like=run.result.continuations[index],
                       extra=f" More like variation {index + 1} of the last run.")


def _first_pass(studio: Studio, history: InputHistory, melody: Melody, label: str, bars, temperature, variations,
                seed, key_lock, ending, stay_close, program, soundfont, *, like: Melody | None = None,
                extra: str = ""):
    result, files, folder = continue_files(studio, melody, bars, temperature, variations, seed, key_lock, program,
                                           soundfont, rolls=True, ending=ending, stay_close=stay_close, like=like,
                                           media_for=(0,))
    run = ContinueRun(tuple(v.melody for v in files.variations), result.start_step, str(folder), label,
                      result=result, bars=spec(ContinueRequest, "bars").parse("bars", bars),
                      program=program_choice(program), soundfont=studio.font(soundfont))
    n = len(files.variations)
    low, high = result.pitch_range
    status = widgets.status_line(result.seed, [*result.notices, *files.notices],
                                 f"{extra} Blue: the input; orange: the continuation ({n} variation"
                                 f"{'s' if n > 1 else ''}, the model's likeliest first). New notes stay within "
                                 f"{views.pitch_name(low)}-{views.pitch_name(high)}: the input's range, widened as "
                                 "far as real tunes widen it.")
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


def build(studio: Studio, heavy: dict) -> list:
    """The tab; returns each variation's "Add to my clips" button with the file it adds (its new bars)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            panel = input_panel("Input", DEFAULT_EXAMPLE, "continue")
            undo = gr.Button("Undo: back to the previous input", size="sm", elem_id="continue-undo")
            with gr.Row(elem_classes="compact-row"):
                bars = widgets.slider(ContinueRequest, "bars", elem_id="continue-bars", min_width=100)
                variations = widgets.slider(ContinueRequest, "variations", min_width=100)
                temperature = widgets.slider(ContinueRequest, "temperature", min_width=100)
            with gr.Row(elem_classes="compact-row", equal_height=True):
                with gr.Column(scale=3, min_width=180):
                    seed = widgets.seed_row()
                key_lock = gr.Dropdown(KEY_LOCKS, value="off", label="Key lock", scale=2, min_width=100,
                                       info="new notes stay in the scale; minor also allows the raised 6th and 7th")
                ending = gr.Dropdown(list(ENDINGS), value="tonic chord", label="End on", scale=2, min_width=100,
                                     info="where the last bar lands (in the melody's key)", elem_id="continue-ending")
            stay_close = widgets.slider(ContinueRequest, "stay_close", label="Stay close ↔ wander",
                                        info="1: the input's bars come back often; 0: new material; 0.5: as often "
                                             "as in real tunes", elem_id="continue-stay-close")
            with gr.Row(elem_classes="compact-row"):
                program = gr.Dropdown(PROGRAM_CHOICES, value=KEEP_PROGRAM, label="Instrument")
                soundfont = widgets.soundfont_dropdown(studio)
            go = gr.Button("Continue", variant="primary", elem_id="continue-go")
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown("Results appear here: press **Continue**.", elem_id="continue-status")
            run = gr.State(ContinueRun())
            slots, clip_sources = [], []
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
                        like = gr.Button("More like this", size="sm", variant="secondary", elem_id=f"{v}-like",
                                         min_width=60)
                        keep = gr.Button("Add to my clips", size="sm", variant="secondary", elem_id=f"{v}-add-clip",
                                         min_width=60)
                        clip_sources.append((keep, cont, f"variation {i + 1}'s new bars"))
                    with gr.Accordion("Score", open=False):
                        score = gr.HTML(max_height=320, elem_id=f"{v}-score")
                slots.append((group, audio, roll, score, mid, cont, wav, xml, chain, like))
    panel_outs = [panel.state, panel.info, panel.track]
    undo.click(undo_input, [panel.state], panel_outs, api_visibility="private")
    slot_outs = [c for slot in slots for c in slot[:-2]]
    rest_outs = [c for group, audio, roll, score, _, _, wav, xml, *_ in slots for c in (audio, roll, wav, score, xml)]
    settings = [temperature, variations, seed, key_lock, ending, stay_close, program, soundfont]
    first_outs = [*panel_outs, run, status, *slot_outs]
    for i, slot in enumerate(slots):
        slot[-2].click(functools.partial(chain_result, i), [run, panel.state], panel_outs, api_visibility="private")
        slot[-1].click(functools.partial(more_like_ui, i, studio), [run, panel.state, *settings], first_outs,
                       api_visibility="private", **heavy
                       ).success(continue_rest_ui, [run], rest_outs, api_visibility="private", show_progress="hidden",
                                 **heavy)
    go.click(functools.partial(continue_ui, studio), [panel.state, panel.upload, bars, *settings], first_outs,
             api_visibility="private", **heavy
             ).success(continue_rest_ui, [run], rest_outs, api_visibility="private", show_progress="hidden", **heavy)
    widgets.keep_files_while_open(studio, run, status)
    return clip_sources
