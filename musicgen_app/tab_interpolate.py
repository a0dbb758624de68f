"""The Interpolate tab: two input panels, the morph's settings, its audio, a piano roll per step
and the downloads."""

from __future__ import annotations

import functools

import gradio as gr

from . import widgets
from .examples import DEFAULT_EXAMPLE
from .inputs import InputHistory
from .panels import current_entry, input_panel, panel_outputs, settled
from .service import PACINGS, InterpolateRequest
from .studio import Studio, interpolate_files, user_errors


@user_errors
def interpolate_ui(studio: Studio, hist_a: InputHistory, upload_a, hist_b: InputHistory, upload_b, steps, temperature,
                   pacing, seed, soundfont, progress=gr.Progress()):
    hist_a, hist_b = settled(hist_a, upload_a), settled(hist_b, upload_b)
    a, b = current_entry(hist_a, "clip A"), current_entry(hist_b, "clip B")
    progress(0.05, desc="Morphing")
    result, files = interpolate_files(studio, a.melody, b.melody, steps, temperature, seed, soundfont, rolls=True,
                                      pacing=pacing)
    status = widgets.status_line(result.seed, [*result.notices, *files.notices],
                                 f" {len(result.clips)} clips from A to B.")
    return (*panel_outputs(hist_a), *panel_outputs(hist_b), status, str(files.audio),
            [(str(p), c) for p, c in files.rolls], [str(files.midi), str(files.steps_zip)], str(files.midi.parent))


def build(studio: Studio, heavy: dict):
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            with gr.Row():
                with gr.Column(min_width=160):
                    a = input_panel("Clip A", "Chorale line (Bach, MusicXML)", "clip-a")
                with gr.Column(min_width=160):
                    b = input_panel("Clip B", DEFAULT_EXAMPLE, "clip-b")
            gr.Markdown("### Settings")
            with gr.Row(elem_classes="compact-row"):
                steps = widgets.slider(InterpolateRequest, "steps", label="Steps (A and B included)")
                temperature = widgets.slider(InterpolateRequest, "temperature", label="Temperature (0: most likely)")
            pacing = gr.Radio([(label, key) for key, label in PACINGS.items()], value="even", label="Pacing",
                              info="even: each step changes the melody about as much as the next",
                              elem_id="interpolate-pacing")
            seed = widgets.seed_row()
            soundfont = widgets.soundfont_dropdown(studio)
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
    widgets.keep_files_while_open(studio, folder, status)
