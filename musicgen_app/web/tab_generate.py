"""The Generate tab: how many, meter, tempo, the sampler and its shape controls; the melodies as a
medley, a piano roll each (click one to hear it alone) and the downloads."""

from __future__ import annotations

import functools
import html

import gradio as gr

from ..actions.studio import Studio, learn_style, run_generate
from ..errors import RequestError
from ..models.style import MAX_CLIPS, MIN_CLIPS, StyleModel
from ..service import SampleRequest
from . import widgets
from .forms import Form
from .panels import UPLOAD_TYPES
from .queue_adapter import client_gone
from .refusals import user_errors


@user_errors
def generate_ui(studio: Studio, form: Form, style_state: gr.State, data: dict, progress=gr.Progress()):
    """Generate from the form; the style learnt on this page (its bytes) feeds the "style" sampler."""
    style = StyleModel.from_bytes(data[style_state]) if data[style_state] else None
    req = form.request(data, style=style)
    progress(0.05, desc="Sampling")
    result, files = run_generate(studio, req, page=True, gone=client_gone)
    status = widgets.status_line(result.seed, [*result.notices, *files.notices],
                                 " The player plays them all in turn; click a piano roll to hear that melody alone.")
    return (status, str(files.medley), [(str(p), c) for p, c in files.rolls],
            [str(p) for p in files.midis] + [str(files.zip)], [str(files.medley)] + [str(w) for w in files.audios],
            str(files.medley.parent))


def _generate_anew(studio: Studio, form: Form, style_state: gr.State, data: dict, progress=gr.Progress()):
    """Generate's outputs, and no melody chosen among the new ones yet (a refusal keeps the choice)."""
    return (*generate_ui(studio, form, style_state, data, progress), -1)


@user_errors
def learn_style_ui(studio: Studio, clips, progress=gr.Progress()):
    """"More like these": learn the style of the uploaded clips; the page keeps it (as bytes) and
    switches the sampler to it. A failure leaves the style learnt before, if any."""
    style = learn_style(studio, clips, lambda fraction, message: progress(fraction, desc=message))
    notes = "".join(f"  \n⚠ {html.escape(n)}" for n in style.notices)
    info = (f"Learnt from {style.clips} clips ({style.windows} windows of {style.meter}). **More like my clips** "
            f"is now the sampler: press Generate.{notes}")
    return style.to_bytes(), info, gr.update(value="style")


@user_errors
def add_clip(clips, path, name: str):
    """A result the musician liked, added to the clips "More like these" learns from: the new list,
    and a toast that says where it went."""
    clips = [c if isinstance(c, str) else getattr(c, "name", str(c)) for c in clips or []]
    if not path:
        raise RequestError(f"There is no {name} to add yet; make one first.")
    if len(clips) >= MAX_CLIPS:
        raise RequestError(f"Your clips already hold {MAX_CLIPS}, the most a style takes; remove one in "
                           "Generate > More like these first.")
    if path in clips:
        raise RequestError(f"{name[0].upper()}{name[1:]} is already among your clips.")
    clips.append(path)
    more = f"learn their style when you have {MIN_CLIPS} to {MAX_CLIPS}" if len(clips) >= MIN_CLIPS else \
        f"add {MIN_CLIPS - len(clips)} more to learn a style"
    gr.Info(f"Added {name} to your clips in Generate > More like these ({len(clips)} now; {more}).")
    return clips


@user_errors
def add_chosen(clips, files, chosen: int):
    """The Generate result whose piano roll was clicked last (``files``: a MIDI per melody, then the zip)."""
    midis = [str(f) for f in files or [] if str(f).endswith(".mid")]
    if midis and not 0 <= chosen < len(midis):
        raise RequestError("Click the piano roll of the melody you want first, then add it.")
    return add_clip(clips, midis[chosen] if midis else "", f"melody {chosen + 1}" if midis else "melody")


def build(studio: Studio, heavy: dict, clip_sources=()):
    """``clip_sources``: (button, file component, name) of results elsewhere on the page that the
    button adds to this tab's "More like these" clips."""
    form = Form(SampleRequest, "generate")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=340):
            gr.Markdown("### Settings")
            with gr.Row(elem_classes="compact-row"):
                form.widget("count")
                form.widget("bars", radio=True, elem_id="generate-bars", info=form.declared["bars"].help)
            form.widget("temperature", label="Temperature (higher: wilder)")
            with gr.Row(elem_classes="compact-row"):
                form.widget("time_signature")
                form.widget("qpm", label="Tempo (quarter notes per minute)")
            sampler = form.widget("sampler", radio=True, info=form.declared["sampler"].help)
            with gr.Accordion("Shape (empty: free)", open=False, elem_id="generate-shape"):
                with gr.Row(elem_classes="compact-row align-inputs", equal_height=True):
                    form.widget("notes_per_bar", elem_id="generate-density")
                    form.widget("range_semitones", elem_id="generate-range")
                with gr.Row(elem_classes="compact-row", equal_height=True):
                    form.widget("key", info=form.declared["key"].help)
                    form.widget("ends_on_tonic", elem_id="generate-tonic")
            with gr.Accordion("More like these: learn from your clips", open=False, elem_id="generate-style"):
                clips = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", height=120,
                                label=f"{MIN_CLIPS}-{MAX_CLIPS} clips (MIDI, MusicXML, ABC or recordings)",
                                elem_id="generate-clips")
                learn = gr.Button("Learn their style", size="sm", elem_id="generate-learn")
                style_info = gr.Markdown("No style learnt yet.", elem_id="generate-style-info")
                style = gr.State(b"")
            form.widget("seed")
            form.widget("soundfont", choices=studio.soundfonts, value=studio.default_soundfont)
            go = gr.Button("Generate", variant="primary", elem_id="generate-go")
        with gr.Column(scale=3, min_width=480):
            status = gr.Markdown("New melodies appear here: press **Generate**.", elem_id="generate-status")
            audio = gr.Audio(type="filepath", interactive=False, label="Listen", elem_id="generate-audio")
            files = gr.File(file_count="multiple", label="Downloads (a MIDI per melody, and a zip)",
                            interactive=False, height=130, elem_id="generate-files")
            gallery = gr.Gallery(label="Piano rolls (click one to hear it)", columns=2, height="auto",
                                 object_fit="contain", elem_id="generate-gallery", elem_classes="rolls")
            add = gr.Button("Add the melody you clicked to my clips", size="sm", elem_id="generate-add-clip")
            wavs, folder, chosen = gr.State([]), gr.State(""), gr.State(-1)
    outs = [status, audio, gallery, files, wavs, folder, chosen]
    go.click(widgets.refused_in_status(functools.partial(_generate_anew, studio, form, style), outs, status),
             form.inputs | {style}, outs, api_visibility="private", show_progress_on=status, **heavy)
    # queued (not queue=False), so that their toasts reach the page
    add.click(widgets.refused_in_status(add_chosen, [clips]), [clips, files, chosen], clips, api_visibility="private")
    for button, source, name in clip_sources:
        button.click(widgets.refused_in_status(
            functools.partial(lambda path, clips, name: add_clip(clips, path, name), name=name), [clips]),
            [source, clips], clips, api_visibility="private")
    widgets.keep_files_while_open(studio, folder, status)
    learnt = [style, style_info, sampler]
    learn.click(widgets.refused_in_status(functools.partial(learn_style_ui, studio), learnt, style_info), [clips],
                learnt, api_visibility="private", show_progress_on=style_info, **heavy)

    def play(wav_paths, evt: gr.SelectData):
        # wav_paths[0] is all of them in turn; melody k is at k + 1
        return (wav_paths[evt.index + 1] if evt.index + 1 < len(wav_paths) else gr.update()), evt.index

    gallery.select(play, [wavs], [audio, chosen], api_visibility="private", queue=False)
