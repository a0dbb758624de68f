"""The HTTP API for ``gradio_client`` and curl, and the MCP tools: ``/continue``, ``/interpolate``,
``/generate`` with plain inputs (a file, typed notes or an example name; the settings) and file
outputs. Each setting's input is named, typed and documented from its declaration on the request
type; the endpoint's parameters are those names, so the page, the API and the MCP tools cannot
disagree on a range, a choice or a default. The endpoints' widgets are never shown. Each endpoint's
function is named and documented for its MCP tool (Gradio reads the name and the docstring); how the
tools' results come back: :mod:`.mcp_adapter`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from ..actions.inputs import resolve_api_input
from ..actions.studio import Studio, learn_style, run_continue, run_generate, run_interpolate
from ..io.examples import example_names
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
                     "range_semitones", "key", "ends_on_tonic", "bars")


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


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint, also an MCP tool: its name, ``run(studio, inputs, settings)``, the request
    type that declares its settings, its inputs (name -> default), its settings' names, what it does
    and what it returns (output name -> text)."""

    name: str
    run: Callable
    request_type: type
    inputs: dict
    settings: tuple[str, ...]
    doc: str
    returns: dict[str, str]
    inputs_last: bool = False  # the parameters: the settings, then the inputs
    appended: tuple[str, ...] = ()  # inputs added later: last, so positional callers' order holds


def endpoint(studio: Studio, spec: Endpoint):
    """A function for Gradio whose parameters are the input names and the settings' names (for the
    API page, gradio_client's keywords and the MCP tool schema), and the settings' hidden inputs;
    ``spec.run(studio, inputs, settings)`` does the work with each by name.

    The function is named ``spec.name`` (the MCP tool's name) and its docstring is the tool's
    description in the layout Gradio reads (``gradio.utils.get_function_description``): the summary,
    then ``Args:`` with one ``name: text`` line per parameter, then ``Returns:`` one line per output.
    """
    run, inputs, settings = spec.run, spec.inputs, spec.settings
    declared = settings_of(spec.request_type)
    names = [*settings, *inputs] if spec.inputs_last else [*inputs, *settings]
    names = [n for n in names if n not in spec.appended] + list(spec.appended)

    defaults = inputs | {n: _plain(declared[n].default) for n in settings}
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[n])
                                   for n in names])

    def call(*args, **kwargs):
        _SESSIONS.touch()
        given = signature.bind(*args, **kwargs)
        given.apply_defaults()
        values = given.arguments
        return run(studio, {k: values[k] for k in inputs}, {k: values[k] for k in settings})

    call.__name__ = call.__qualname__ = spec.name
    fn = user_errors(call)
    fn.__signature__ = signature
    args = {n: f"{declared[n].label}: {tool_describe(n, declared[n], studio)}" for n in settings}
    docs = inputs_doc(inputs) | args
    fn.__doc__ = "\n".join([spec.doc, "", "Args:", *(f"    {n}: {docs[n]}" for n in names), "",
                             "Returns:", *(f"    {k}: {v}" for k, v in spec.returns.items())])
    return fn, [api_input(n, declared[n]) for n in settings]


def tool_describe(name: str, declared: Setting, studio: Studio) -> str:
    """A setting's help for the tool docs: an MCP client has no dropdown to look in, so a long choice
    is listed in full (a run of whole numbers as its range, with the meaning of its first values), and
    the SoundFont lists those installed."""
    if name == "soundfont" and studio.soundfonts:
        return f"the SoundFont that plays the WAV files, one of: {', '.join(studio.soundfonts)}; empty: " \
               f"{studio.default_soundfont}"
    if not isinstance(declared, Choice) or len(declared.options) <= 8:
        return declared.describe()
    values = declared.values
    if all(isinstance(v, int) for v in values) and list(values) == list(range(values[0], values[0] + len(values))):
        meanings = [w if w.startswith(f"{v}:") else f"{v}: {w}" for v, w in declared.options[:3]]
        listed = f"a whole number from {values[0]} to {values[-1]}; {', '.join(meanings)}, ..."
    else:
        listed = "one of: " + ", ".join(map(str, values))
    return f"{declared.help} ({listed}; default {declared.default})".strip()


def _plain(value):
    return None if value is None else value if isinstance(value, int | float | str | bool) else str(value)


FILE_DOC = ("a MIDI, MusicXML or ABC file, or a recording (WAV, FLAC, OGG, MP3; transcribed); MCP: its http(s) "
            "URL (a result URL of this studio works too), or a data: URL with the file in base64 (wins over notes "
            "and example)")
INPUT_DOCS = {
    "melody_file": FILE_DOC,
    "notes": "the melody typed as text: ABC (with its X:, M:, L:, K: header lines) or tinyNotation such as "
             "'4/4 c4 d e f g2 g' (wins over example)",
    "example": "the name of a bundled example: " + ", ".join(f"'{n}'" for n in example_names()),
    "audio_qpm": "when the file is a recording: the tempo it was played at, in quarter notes a minute (30-300); "
                 "empty: estimated from the recording (a notice says so); other files carry their own tempo",
    "audio_meter": "when the file is a recording: the meter it was played in, such as 3/4 or 6/8; empty: 4/4",
    "audio_downbeat": "when the file is a recording: the seconds from its start at which bar 1 starts (after a "
                      "count-in, or a lead-in before the tune; what comes before it is a pickup); needs audio_qpm; "
                      "empty: bar 1 is found from the notes",
    "track": "which track or part of the file (0 = first); empty: the studio picks the melody",
    "render_audio": "whether to render the WAV files (default true); false: the MIDI files only, sooner",
    "clips": "2-20 files (MIDI, MusicXML, ABC; MCP: http(s) or data: URLs) whose style the 'style' sampler "
             "learns first; unused by the other samplers",
}


def inputs_doc(inputs: dict) -> dict[str, str]:
    """The inputs' help by parameter name; clip A's and B's inputs read like the melody's."""
    docs = {}
    for n in inputs:
        key = n if n in INPUT_DOCS else n.split("_", 1)[1] if n.startswith(("a_", "b_")) else n
        key = "melody_file" if key == "file" else key
        clip = f"clip {n[0].upper()}: " if n.startswith(("a_", "b_")) else ""
        docs[n] = f"{clip}{INPUT_DOCS.get(key, '')}"
    return docs


def _continue(studio: Studio, given: dict, values: dict):
    entry = resolve_api_input(given["melody_file"], given["notes"], given["example"], given["track"],
                              qpm=given["audio_qpm"], meter=given["audio_meter"], downbeat=given["audio_downbeat"])
    req = build_request(ContinueRequest, values, melody=entry.melody)
    result, files, _ = run_continue(studio, req, rolls=False, media_for=None if _wants_audio(given) else (),
                                    gone=client_gone)
    vs = files.variations
    info = {"seed": result.seed, "input": entry.melody.summary(), "track": entry.track,
            "start_step": result.start_step, "pitch_range": list(result.pitch_range),
            "notices": [*entry.notices, *result.notices, *files.notices],
            "variations": [v.melody.summary() | {"log2p_per_note": round(p, 3), "ended_as_asked": e}
                           for v, p, e in zip(vs, result.log2p_per_note, result.ended)]}
    return [str(v.midi) for v in vs], [str(v.new_bars_midi) for v in vs], [str(v.audio) for v in vs if v.audio], info


def _interpolate(studio: Studio, given: dict, values: dict):
    a, b = (resolve_api_input(given[f"{c}_file"], given[f"{c}_notes"], given[f"{c}_example"], name=f"clip {c.upper()}",
                              qpm=given[f"{c}_audio_qpm"], meter=given[f"{c}_audio_meter"],
                              downbeat=given[f"{c}_audio_downbeat"]) for c in "ab")
    req = build_request(InterpolateRequest, values, a=a.melody, b=b.melody)
    result, files = run_interpolate(studio, req, rolls=False, audio=_wants_audio(given), gone=client_gone)
    info = {"seed": result.seed, "notices": [*a.notices, *b.notices, *result.notices, *files.notices],
            "clips": [c.summary() for c in result.clips], "morph": result.morph.summary()}
    return str(files.midi), str(files.steps_zip), str(files.audio) if files.audio else None, info


def _generate(studio: Studio, given: dict, values: dict):
    style = None
    if str(values.get("sampler") or "").strip().lower() in ("style", "more like my clips"):
        style = learn_style(studio, given["clips"])
    req = build_request(SampleRequest, values, style=style)
    result, files = run_generate(studio, req, page=False, audio=_wants_audio(given), gone=client_gone)
    info = {"seed": result.seed, "notices": [*result.notices, *files.notices],
            "melodies": [m.summary() for m in result.melodies]}
    return [str(p) for p in files.midis], str(files.zip), [str(w) for w in files.audios], info


ENDPOINTS = (
    Endpoint(
        "continue", _continue, ContinueRequest,
        {"melody_file": None, "notes": None, "example": None, "track": None, "audio_qpm": None, "render_audio": True,
         "audio_meter": None, "audio_downbeat": None},
        CONTINUE_SETTINGS,
        "Continue a melody with the LSTM: write the next bars after it, several variations, best first. Give the "
        "melody as one of melody_file (a score or a recording), notes (typed ABC or tinyNotation) or example. Each "
        "result file comes back as a URL to download.",
        {"midi": "per variation, a MIDI file of the whole melody (the input, then the new bars)",
         "continuation_midi": "per variation, a MIDI file of the new bars only",
         "audio": "per variation, a WAV file of the whole melody",
         "info": "JSON: the seed used (pass it back to repeat the result), notices, the input's summary (tempo, "
                 "time signature, key, bars, notes, range), and each variation's summary"},
        appended=("audio_qpm", "render_audio", "audio_meter", "audio_downbeat")),
    Endpoint(
        "interpolate", _interpolate, InterpolateRequest,
        {f"{c}_{k}": None for c in "ab" for k in ("file", "notes", "example", "audio_qpm")} | {"render_audio": True}
        | {"a_audio_meter": None, "b_audio_meter": None, "a_audio_downbeat": None, "b_audio_downbeat": None},
        INTERPOLATE_SETTINGS,
        "Morph clip A into clip B through the VAE's latent space: a chain of clips that starts as A and ends as B. "
        "Give each clip as one of its file, notes (typed ABC or tinyNotation) or example. Each result file comes "
        "back as a URL to download.",
        {"morph_midi": "a MIDI file of the whole morph, step after step",
         "steps_zip": "a zip with one MIDI file per step",
         "audio": "a WAV file of the whole morph",
         "info": "JSON: the seed used, notices, the clips' and the morph's summaries"},
        appended=("a_audio_qpm", "b_audio_qpm", "render_audio", "a_audio_meter", "b_audio_meter",
                  "a_audio_downbeat", "b_audio_downbeat")),
    Endpoint(
        "generate", _generate, SampleRequest, {"clips": None, "render_audio": True}, GENERATE_SETTINGS,
        "Generate new melodies with the VAE, from nothing: optionally with a shape (notes per bar, pitch range, "
        "key, ending on the tonic; the 'bank' sampler) or in the style of your own clips (sampler 'style' with "
        "clips). Each result file comes back as a URL to download.",
        {"midi": "a MIDI file per melody",
         "zip": "a zip of the MIDI files",
         "audio": "a WAV file per melody",
         "info": "JSON: the seed used (pass it back to repeat the result), notices, each melody's summary"},
        inputs_last=True, appended=("render_audio", "bars")),
)


def functions(studio: Studio) -> dict:
    """The endpoints' functions by API name (also the MCP tools' names), each with its settings' hidden inputs."""
    return {spec.name: endpoint(studio, spec) for spec in ENDPOINTS}


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
        recording = [_recording_input("audio_qpm"), _audio_flag(), _recording_input("audio_meter"),
                     _recording_input("audio_downbeat")]
        gr.Button("continue").click(fn, inputs + settings + recording, outputs, api_name="continue", **heavy)

        fn, settings = fns["interpolate"]
        inputs = [gr.File(type="filepath", label="a_file"), gr.Textbox(label="a_notes"), gr.Textbox(label="a_example"),
                  gr.File(type="filepath", label="b_file"), gr.Textbox(label="b_notes"), gr.Textbox(label="b_example")]
        outputs = [gr.File(label="morph_midi"), gr.File(label="steps_zip"), gr.File(label="audio"),
                   gr.JSON(label="info")]
        qpms, meters, downbeats = ([_recording_input(f"{c}_audio_{k}") for c in "ab"]
                                   for k in ("qpm", "meter", "downbeat"))
        gr.Button("interpolate").click(fn, inputs + settings + qpms + [_audio_flag()] + meters + downbeats, outputs,
                                       api_name="interpolate", **heavy)

        fn, settings = fns["generate"]
        inputs = [gr.File(file_count="multiple", type="filepath", label="clips")]
        outputs = [gr.File(file_count="multiple", label="midi"), gr.File(label="zip"),
                   gr.File(file_count="multiple", label="audio"), gr.JSON(label="info")]
        *settings, bars = settings  # "bars" came later: last, after render_audio (Endpoint.appended)
        gr.Button("generate").click(fn, settings + inputs + [_audio_flag(), bars], outputs, api_name="generate",
                                    **heavy)


def _recording_input(name: str):
    """A recording's tempo, meter or downbeat (``a_``/``b_``: a clip's), empty for the default: read by
    ``audio_origin`` and ``api_downbeat``, so a bad value gets our refusal, not Gradio's."""
    doc = INPUT_DOCS[name.removeprefix("a_").removeprefix("b_")]
    box = gr.Number(None, label=name, info=doc) if name.endswith("qpm") else gr.Textbox(label=name, info=doc)
    return raw_input(box)


def _audio_flag():
    return raw_input(gr.Checkbox(True, label="render_audio", info=INPUT_DOCS["render_audio"]))


# Not a setting of the music (no request type declares it): which files an API call renders.
RENDER_AUDIO = Flag("render_audio", True, INPUT_DOCS["render_audio"])


def _wants_audio(given: dict) -> bool:
    """``render_audio`` as sent: true, false or empty (the default, true); anything else is refused."""
    return RENDER_AUDIO.parse("render_audio", given.get("render_audio"))
