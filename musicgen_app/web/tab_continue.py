"""The Continue tab: the input panel, the settings, and a player, piano roll, score and downloads
per variation. One click writes every MIDI and the first variation's audio and roll, so it plays at
once; a second pass renders the others and engraves the scores (:func:`continue_rest_ui`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from .. import views
from ..actions import outputs
from ..actions.inputs import InputHistory
from ..actions.studio import VARIATION_BASE, Studio, run_continue
from ..errors import RequestError
from ..io.examples import DEFAULT_EXAMPLE
from ..melody import Melody
from ..service import ContinueRequest, ContinueResult
from ..settings import build_request, spec
from . import widgets
from .forms import Form
from .panels import InputPanel, input_panel, panel_outputs, push_result, undo_input
from .queue_adapter import client_gone
from .refusals import user_errors

MAX_VARIATIONS = int(spec(ContinueRequest, "variations").high)
ORDINALS = ("likeliest", "2nd likeliest", "3rd likeliest") + tuple(f"{k}th likeliest" for k in range(4, 9))


@dataclass(frozen=True)
class ContinueRun:
    """What the last Continue produced, for "Continue from this" and the second pass (the other
    variations' audio and rolls, every score)."""

    melodies: tuple[Melody, ...] = ()
    start_step: int = 0
    folder: str = ""
    label: str = ""
    request: ContinueRequest | None = None  # what was asked: "more like this" asks it again, drawn toward one
    result: ContinueResult | None = None  # for the audio of the variations after the first, "more like this"
    soundfont: str | None = None  # the SoundFont the audio is rendered with


@user_errors
def chain_result(index: int, run: ContinueRun, history: InputHistory):
    if index >= len(run.melodies):
        raise RequestError(f"There is no variation {index + 1} to continue from; click Continue first.")
    return push_result(history, run.melodies[index], f"Variation {index + 1} of {run.label}")


@user_errors
def continue_ui(studio: Studio, form: Form, panel: InputPanel, data: dict, progress=gr.Progress()):
    """The first pass: every MIDI, and the first variation's audio and roll, so it plays at once."""
    history = panel.settled(data)
    entry = panel.entry(history)
    req = form.request(data, melody=entry.melody)
    progress(0.05, desc="Writing the continuations")
    return _first_pass(studio, history, req, entry.label, f" Continued: {entry.label}.")


@user_errors
def more_like_ui(index: int, studio: Studio, form: Form, panel: InputPanel, run_state: gr.State, data: dict,
                 progress=gr.Progress()):
    """New variations of the last run's input, drawn toward its variation ``index`` (same bars)."""
    run = data[run_state]
    if run.result is None or index >= len(run.result.continuations):
        raise RequestError(f"There is no variation {index + 1} to write more like; click Continue first.")
    req = build_request(ContinueRequest, form.values(data) | {"bars": run.request.bars}, melody=run.request.melody,
                        like=run.result.continuations[index])
    progress(0.05, desc=f"Writing more like variation {index + 1}")
    return _first_pass(studio, data[panel.state], req, run.label,
                       f" More like variation {index + 1} of the last run ({run.label}).")


def _first_pass(studio: Studio, history: InputHistory, req: ContinueRequest, label: str, extra: str):
    result, files, folder = run_continue(studio, req, rolls=True, media_for=(0,), gone=client_gone)
    run = ContinueRun(tuple(v.melody for v in files.variations), result.start_step, str(folder), label,
                      request=req, result=result, soundfont=studio.font(req.soundfont))
    n = len(files.variations)
    low, high = result.pitch_range
    likelihoods = " · ".join(f"{i + 1}: {p:.2f}" for i, p in enumerate(result.log2p_per_note))
    status = widgets.status_line(result.seed, [*result.notices, *files.notices],
                                 f"{extra} Blue: the input; orange: the continuation ({n} variation"
                                 f"{'s' if n > 1 else ''}, the model's likeliest first). New notes stay within "
                                 f"{views.pitch_name(low)}-{views.pitch_name(high)}: the input's range, widened as "
                                 "far as real tunes widen it. How likely the model finds each variation, in bits "
                                 f"per note (log2; closer to 0 is likelier): {likelihoods}.")
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
    """What the player's label says of a variation: its rank by how likely the model finds it (the
    figures are in the status line), and whether it ends as asked."""
    label = f"Variation {i + 1}"
    p = result.log2p_per_note
    if i < len(p):
        label += f" · {ORDINALS[sum(x > p[i] for x in p)]}"
    if i < len(result.ended) and not result.ended[i]:
        label += " · could not end as asked"
    return label


@user_errors
def continue_rest_ui(run: ContinueRun, progress=gr.Progress()):
    """The second pass, while the first variation plays: the other variations' audio and rolls, then
    engraved scores and MusicXML downloads. Stops early when the page has gone. A refused first
    pass keeps the page's run and is followed by this pass too: a run whose last score is written
    (or that has no files) has had its second pass, and is left as it is."""
    n = len(run.melodies)
    if not run.folder or not n or (Path(run.folder) / f"variation-{n}.musicxml").is_file():
        return (gr.skip(),) * (5 * MAX_VARIATIONS)
    if client_gone():
        return (gr.skip(),) * (5 * MAX_VARIATIONS)
    progress(1 / (2 * n), desc=f"Rendering variations 2-{n}" if n > 2 else "Rendering variation 2")
    written = outputs.write_variations_media(run.result, range(1, n), Path(run.folder) / VARIATION_BASE,
                                             program=run.request.program_number, soundfont=run.soundfont)
    media = {i: (gr.update(value=str(wav), label=_variation_label(run.result, i)), str(roll), str(wav))
             for i, (wav, roll) in written.items()}  # variation -> (audio, roll, wav) updates
    out = []
    for i in range(MAX_VARIATIONS):
        if i >= n:
            out += [gr.skip()] * 3 + ["", None]
            continue
        if client_gone():
            return (gr.skip(),) * (5 * MAX_VARIATIONS)
        progress((n + i) / (2 * n), desc=f"Engraving variation {i + 1}")
        path = Path(run.folder) / f"variation-{i + 1}.musicxml"
        xml = outputs.write_musicxml(run.melodies[i], path)
        out += [*media.get(i, [gr.skip()] * 3), f'<div class="score">{views.score_svg(xml)}</div>', str(path)]
    return tuple(out)


def build(studio: Studio, heavy: dict) -> list:
    """The tab; returns each variation's "Add to my clips" button with the file it adds (its new bars)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            panel = input_panel("Input", DEFAULT_EXAMPLE, "continue", studio)
            undo = gr.Button("Undo: back to the previous input", size="sm", elem_id="continue-undo")
            form = Form(ContinueRequest, "continue")
            with gr.Row(elem_classes="compact-row"):
                form.widget("bars", min_width=100)
                form.widget("variations", min_width=100)
                form.widget("temperature", min_width=100)
            form.widget("seed")
            with gr.Row(elem_classes="compact-row", equal_height=True):
                form.widget("key_lock", min_width=150, info=form.declared["key_lock"].help)
                form.widget("ending", min_width=150, info=form.declared["ending"].help)
            form.widget("stay_close", label="Stay close ↔ wander", info=form.declared["stay_close"].help)
            with gr.Row(elem_classes="compact-row"):
                form.widget("program")
                form.widget("soundfont", choices=studio.soundfonts, value=studio.default_soundfont)
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
    panel_outs = panel.outputs
    undo.click(undo_input, [panel.state], panel_outs, api_visibility="private")
    slot_outs = [c for slot in slots for c in slot[:-2]]
    rest_outs = [c for group, audio, roll, score, _, _, wav, xml, *_ in slots for c in (audio, roll, wav, score, xml)]
    first_outs = [*panel_outs, run, status, *slot_outs]
    for i, slot in enumerate(slots):
        slot[-2].click(functools.partial(chain_result, i), [run, panel.state], panel_outs, api_visibility="private")
        like = widgets.refused_in_status(functools.partial(more_like_ui, i, studio, form, panel, run), first_outs,
                                         status)
        slot[-1].click(like, form.inputs | {run, panel.state}, first_outs, api_visibility="private",
                       show_progress_on=status, **heavy
                       ).success(continue_rest_ui, [run], rest_outs, api_visibility="private", show_progress="hidden",
                                 **heavy)
    go.click(widgets.refused_in_status(functools.partial(continue_ui, studio, form, panel), first_outs, status),
             form.inputs | panel.inputs, first_outs, api_visibility="private", show_progress_on=status, **heavy
             ).success(continue_rest_ui, [run], rest_outs, api_visibility="private", show_progress="hidden", **heavy)
    widgets.keep_files_while_open(studio, run, status)
    return clip_sources
