"""The Interpolate tab: two input panels (clip A over clip B), the morph's settings, its audio, a
piano roll per step and the downloads."""

from __future__ import annotations

import functools

import gradio as gr

from ..actions.studio import Studio, run_interpolate
from ..io.examples import DEFAULT_EXAMPLE
from ..service import InterpolateRequest
from . import widgets
from .forms import Form
from .panels import InputPanel, input_panel, panel_outputs
from .queue_adapter import client_gone
from .refusals import user_errors


@user_errors
def interpolate_ui(studio: Studio, form: Form, a: InputPanel, b: InputPanel, data: dict, progress=gr.Progress()):
    hist_a, hist_b = a.settled(data), b.settled(data)
    clip_a, clip_b = a.entry(hist_a, "clip A"), b.entry(hist_b, "clip B")
    req = form.request(data, a=clip_a.melody, b=clip_b.melody)
    progress(0.05, desc="Morphing")
    result, files = run_interpolate(studio, req, rolls=True, gone=client_gone)
    status = widgets.status_line(result.seed, [*result.notices, *files.notices],
                                 f" {len(result.clips)} clips from {clip_a.label} (A) to {clip_b.label} (B).")
    return (*panel_outputs(hist_a), *panel_outputs(hist_b), status, str(files.audio),
            [(str(p), c) for p, c in files.rolls], [str(files.midi), str(files.steps_zip)], str(files.midi.parent))


def build(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            # A over B, each as wide as Continue's panel: side by side, a fourth tab (Record) would fold
            # into Gradio's overflow menu and hide Upload
            a = input_panel("Clip A", "Chorale line (Bach, MusicXML)", "clip-a", studio)
            b = input_panel("Clip B", DEFAULT_EXAMPLE, "clip-b", studio)
            gr.Markdown("### Settings")
            form = Form(InterpolateRequest, "interpolate")
            with gr.Row(elem_classes="compact-row"):
                form.widget("steps", label="Steps (A and B included)")
                form.widget("temperature", label="Temperature (0: most likely)")
            form.widget("pacing", radio=True, info=form.declared["pacing"].help)
            form.widget("seed")
            form.widget("soundfont", choices=studio.soundfonts, value=studio.default_soundfont)
            go = gr.Button("Interpolate", variant="primary", elem_id="interpolate-go")
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown("The morph appears here: press **Interpolate**.", elem_id="interpolate-status")
            audio = gr.Audio(type="filepath", interactive=False, label="Morph A → B", elem_id="interpolate-audio")
            files = gr.File(file_count="multiple", label="Downloads (morph MIDI, zip of the steps)",
                            interactive=False, elem_id="interpolate-files")
            gallery = gr.Gallery(label="Piano roll of each step", columns=2, height="auto", object_fit="contain",
                                 elem_id="interpolate-gallery", elem_classes="rolls")
            folder = gr.State("")
    outs = [*a.outputs, *b.outputs, status, audio, gallery, files, folder]
    go.click(widgets.refused_in_status(functools.partial(interpolate_ui, studio, form, a, b), outs, status),
             form.inputs | a.inputs | b.inputs, outs, api_visibility="private", show_progress_on=status, **heavy)
    widgets.keep_files_while_open(studio, folder, status)
