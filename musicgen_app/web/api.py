"""The HTTP API for ``gradio_client`` and curl, and the MCP tools: ``/continue``, ``/interpolate``,
``/generate`` with plain inputs (a file, typed notes or an example name; the settings) and file
outputs. Each setting's input is named, typed and documented from its declaration on the request
type; the endpoint's parameters are those names, so the page, the API and the MCP tools cannot
disagree on a range, a choice or a default. The endpoints' widgets are never shown.
"""

from __future__ import annotations

import inspect

import gradio as gr

from ..actions.inputs import resolve_api_input
from ..actions.studio import Studio, learn_style, run_continue, run_generate, run_interpolate
from ..service import ContinueRequest, InterpolateRequest, SampleRequest
from ..settings import Choice, Flag, Meter, Number, Seed, Setting, build_request, settings_of
from .api_sessions import ApiSessions
from .queue_adapter import client_gone
from .refusals import user_errors

_SESSIONS = ApiSessions()
# The settings each endpoint takes, in the order of its parameters (after its inputs).
CONTINUE_SETTINGS = ("bars", "temperature", "variations", "seed", "key_lock", "program", "soundfont", "ending",
                     "stay_close")
INTERPOLATE_SETTINGS = ("steps", "temperature", "seed", "pacing")
GENERATE_SETTINGS = ("count", "temperature", "seed", "time_signature", "qpm", "sampler", "notes_per_bar",
                     "range_semitones", "key", "ends_on_tonic")


def raw_input(component):
    """The component's value reaches our parser as sent, so a wrong type ("eight", [1], NaN) gets our
    "Check the settings" message, not Gradio's preprocessing error."""
    component.preprocess = lambda payload: payload
    return component


def api_input(name: str, declared: Setting):
    """A hidden input for one declared setting, labelled with its parameter name."""
    info = declared.describe()
    if isinstance(declared, Number | Seed):
        whole = isinstance(declared, Seed) or declared.whole
        return raw_input(gr.Number(declared.default, label=name, info=info, precision=0 if whole else None))
    if isinstance(declared, Flag):
        return raw_input(gr.Checkbox(declared.default, label=name, info=info))
    if isinstance(declared, Choice) and not all(isinstance(v, str) for v in declared.values):
        return raw_input(gr.Number(declared.default, label=name, info=info, precision=0))
    default = declared.default if isinstance(declared, Choice | Meter) else (declared.default or "")
    return gr.Textbox(str(default), label=name, info=info)


def endpoint(studio: Studio, run, request_type, inputs: dict, settings: tuple[str, ...], doc: str, *,
             inputs_last: bool = False):
    """A function for Gradio whose parameters are the input names and the settings' names (for the
    API page, gradio_client's keywords and the MCP tool schema), and the settings' hidden inputs;
    ``run(studio, inputs, settings)`` does the work with each by name."""
    declared = settings_of(request_type)
    names = [*settings, *inputs] if inputs_last else [*inputs, *settings]

    defaults = inputs | {n: _plain(declared[n].default) for n in settings}
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[n])
                                   for n in names])

    @user_errors
    def fn(*args, **kwargs):
        _SESSIONS.touch()
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        values = given.arguments
        return run(studio, {k: values[k] for k in inputs}, {k: values[k] for k in settings})

    fn.__signature__ = signature
    args = "\n".join(f"    {n}: {declared[n].label}: {declared[n].describe()}" for n in settings)
    fn.__doc__ = f"{doc}\n\nArgs:\n{inputs_doc(inputs)}\n{args}"
    fn.__name__ = request_type.__name__
    return fn, [api_input(n, declared[n]) for n in settings]


def _plain(value):
    return None if value is None else value if isinstance(value, int | float | str | bool) else str(value)


INPUT_DOCS = {
    "melody_file": "a MIDI, MusicXML or ABC file (wins over notes and example)",
    "notes": "typed notes, ABC or tinyNotation such as '4/4 c4 d e f g2 g' (wins over example)",
    "example": "the name of a bundled example, e.g. 'Jig (6/8, MIDI)'",
    "track": "which track or part of the file; empty: the studio picks the melody",
    "clips": "2-20 files (MIDI, MusicXML, ABC) whose style the 'style' sampler learns first",
}


def inputs_doc(inputs: dict) -> str:
    lines = []
    for n in inputs:
        key = n if n in INPUT_DOCS else n.split("_", 1)[1] if n.startswith(("a_", "b_")) else n
        key = "melody_file" if key == "file" else key
        clip = f"clip {n[0].upper()}: " if n.startswith(("a_", "b_")) else ""
        lines.append(f"    {n}: {clip}{INPUT_DOCS.get(key, '')}")
    return "\n".join(lines)


def _continue(studio: Studio, given: dict, values: dict):
    entry = resolve_api_input(given["melody_file"], given["notes"], given["example"], given["track"])
    req = build_request(ContinueRequest, values, melody=entry.melody)
    result, files, _ = run_continue(studio, req, rolls=False, gone=client_gone)
    vs = files.variations
    info = {"seed": result.seed, "input": entry.melody.summary(), "track": entry.track,
            "start_step": result.start_step, "pitch_range": list(result.pitch_range),
            "notices": [*entry.notices, *result.notices, *files.notices],
            "variations": [v.melody.summary() | {"log2p_per_note": round(p, 3), "ended_as_asked": e}
                           for v, p, e in zip(vs, result.log2p_per_note, result.ended)]}
    return [str(v.midi) for v in vs], [str(v.new_bars_midi) for v in vs], [str(v.audio) for v in vs], info


def _interpolate(studio: Studio, given: dict, values: dict):
    a = resolve_api_input(given["a_file"], given["a_notes"], given["a_example"], name="clip A")
    b = resolve_api_input(given["b_file"], given["b_notes"], given["b_example"], name="clip B")
    req = build_request(InterpolateRequest, values, a=a.melody, b=b.melody)
    result, files = run_interpolate(studio, req, rolls=False, gone=client_gone)
    info = {"seed": result.seed, "notices": [*a.notices, *b.notices, *result.notices, *files.notices],
            "clips": [c.summary() for c in result.clips], "morph": result.morph.summary()}
    return str(files.midi), str(files.steps_zip), str(files.audio), info


def _generate(studio: Studio, given: dict, values: dict):
    style = None
    if str(values.get("sampler") or "").strip().lower() in ("style", "more like my clips"):
        style = learn_style(studio, given["clips"])
    req = build_request(SampleRequest, values, style=style)
    result, files = run_generate(studio, req, page=False, gone=client_gone)
    info = {"seed": result.seed, "notices": [*result.notices, *files.notices],
            "melodies": [m.summary() for m in result.melodies]}
    return [str(p) for p in files.midis], str(files.zip), [str(w) for w in files.audios], info


def functions(studio: Studio) -> dict:
    """The endpoints' functions by API name, each with its settings' hidden inputs."""
    continue_inputs = {"melody_file": None, "notes": None, "example": None, "track": None}
    return {
        "continue": endpoint(studio, _continue, ContinueRequest, continue_inputs, CONTINUE_SETTINGS,
                             "Continue a melody with the LSTM: the next bars, several variations best first. Returns "
                             "the whole melodies' MIDI files, the new bars' MIDI files, WAV files, and info (the seed "
                             "used, notices, each variation's summary)."),
        "interpolate": endpoint(studio, _interpolate, InterpolateRequest,
                                {f"{c}_{k}": None for c in "ab" for k in ("file", "notes", "example")},
                                INTERPOLATE_SETTINGS, "Morph clip A into clip B through the VAE's latent space. "
                                "Returns the morph as one MIDI file, a zip with one MIDI per step, the morph's WAV, "
                                "and info."),
        "generate": endpoint(studio, _generate, SampleRequest, {"clips": None}, GENERATE_SETTINGS,
                             "Generate new melodies with the VAE, optionally with a shape (notes per bar, range, key, "
                             "ending; the bank sampler) or near your own clips (sampler 'style'). Returns a MIDI per "
                             "melody, a zip of them, a WAV per melody, and info.", inputs_last=True),
    }


def add_endpoints(studio: Studio, heavy: dict):
    """Endpoints for gradio_client, curl and MCP clients with plain inputs; their widgets are never shown."""
    fns = functions(studio)
    with gr.Column(visible=False):
        fn, settings = fns["continue"]
        inputs = [gr.File(type="filepath", label="melody_file"), gr.Textbox(label="notes"),
                  gr.Textbox(label="example"),
                  raw_input(gr.Number(None, label="track", precision=0, info=INPUT_DOCS["track"]))]
        outputs = [gr.File(file_count="multiple", label="midi"), gr.File(file_count="multiple",
                   label="continuation_midi"), gr.File(file_count="multiple", label="audio"), gr.JSON(label="info")]
        gr.Button("continue").click(fn, inputs + settings, outputs, api_name="continue", **heavy)

        fn, settings = fns["interpolate"]
        inputs = [gr.File(type="filepath", label="a_file"), gr.Textbox(label="a_notes"), gr.Textbox(label="a_example"),
                  gr.File(type="filepath", label="b_file"), gr.Textbox(label="b_notes"), gr.Textbox(label="b_example")]
        outputs = [gr.File(label="morph_midi"), gr.File(label="steps_zip"), gr.File(label="audio"),
                   gr.JSON(label="info")]
        gr.Button("interpolate").click(fn, inputs + settings, outputs, api_name="interpolate", **heavy)

        fn, settings = fns["generate"]
        inputs = [gr.File(file_count="multiple", type="filepath", label="clips")]
        outputs = [gr.File(file_count="multiple", label="midi"), gr.File(label="zip"),
                   gr.File(file_count="multiple", label="audio"), gr.JSON(label="info")]
        gr.Button("generate").click(fn, settings + inputs, outputs, api_name="generate", **heavy)
