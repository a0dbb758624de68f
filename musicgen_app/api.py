"""The HTTP API for ``gradio_client``: ``/continue``, ``/interpolate``, ``/generate`` with plain
inputs (a file, typed notes or an example name; numbers) and file outputs. Their widgets are never
shown; each number input is named and documented from the request's declared settings.
"""

from __future__ import annotations

import functools
import threading
import time

import gradio as gr
from gradio.context import LocalContext

from .inputs import resolve_api_input
from .phrasing import ENDINGS
from .service import PACINGS, SAMPLERS, ContinueRequest, InterpolateRequest, SampleRequest
from .settings import spec
from .studio import (
    KEEP_PROGRAM,
    Studio,
    continue_files,
    generate_files,
    interpolate_files,
    learn_style,
    user_errors,
)

# Gradio keeps a session for every caller it has not seen before, up to 10,000 of them: a copy of
# every component's config, about 0.5 MB with this page's 300 components. A curl-style call
# (/gradio_api/call/...) is a new caller each time, so 600 such calls held 300 MB more. The API
# keeps nothing in a session, so an API caller's session idle this long is dropped; a
# gradio_client that keeps calling keeps its own, and one back after a pause gets a new one.
SESSION_IDLE_SECONDS = 10.0


class ApiSessions:
    """The sessions the API endpoints were called from, and when; :meth:`touch` drops idle ones.
    Page sessions are never touched here, so their per-user state stays as Gradio keeps it."""

    def __init__(self, idle_seconds: float = SESSION_IDLE_SECONDS, clock=time.monotonic):
        self.idle_seconds, self.clock = idle_seconds, clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self) -> None:
        """In an API handler: note its session as used now, and forget those idle too long."""
        blocks, request = LocalContext.blocks.get(None), LocalContext.request.get(None)
        session, now = getattr(request, "session_hash", None), self.clock()
        with self._lock:
            if session:
                self._last[session] = now
            idle = [s for s, t in self._last.items() if now - t > self.idle_seconds]
            for s in idle:
                del self._last[s]
        holder = getattr(blocks, "state_holder", None)  # Gradio's, not public API: tests/test_api_sessions.py
        if holder is None:
            return
        for s in idle:
            holder.delete_state(s)
            with holder.lock:
                holder.session_data.pop(s, None)
                holder.time_last_used.pop(s, None)


_SESSIONS = ApiSessions()


def endpoint(fn):
    """An API handler: our exceptions become messages (studio.user_errors), idle API sessions go."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _SESSIONS.touch()
        return fn(*args, **kwargs)

    return user_errors(wrapper)


def SettingNumber(*args, **kwargs) -> gr.Number:  # noqa: N802 (it stands where a component class would)
    """A Number input whose value reaches our parser as sent, so a wrong type ("eight", [1], NaN) gets
    our "Check the settings" message, not Gradio's preprocessing error. (Not a subclass: Gradio
    writes a .pyi stub beside the module of every component subclass.)"""
    number = gr.Number(*args, **kwargs)
    number.preprocess = lambda payload: payload
    return number


def _number(request_type, name: str) -> gr.Number:
    s = spec(request_type, name)
    return SettingNumber(s.default, label=name, info=s.describe(), precision=0 if s.whole else None)


@endpoint
def continue_api(studio: Studio, melody_file=None, notes=None, example=None, track=None, bars=None,
                 temperature=None, variations=None, seed=None, key_lock="off", program=KEEP_PROGRAM, soundfont=None,
                 ending="tonic chord", stay_close=None):
    """/continue: a file, typed notes or an example name -> MIDIs, continuation MIDIs, WAVs, info."""
    entry = resolve_api_input(melody_file, notes, example, track)
    result, files, _ = continue_files(studio, entry.melody, bars, temperature, variations, seed, key_lock, program,
                                      soundfont, rolls=False, ending=ending, stay_close=stay_close)
    vs = files.variations
    info = {"seed": result.seed, "input": entry.melody.summary(), "track": entry.track,
            "start_step": result.start_step, "pitch_range": list(result.pitch_range),
            "notices": [*entry.notices, *result.notices, *files.notices],
            "variations": [v.melody.summary() | {"log2p_per_note": round(p, 3), "ended_as_asked": e}
                           for v, p, e in zip(vs, result.log2p_per_note, result.ended)]}
    return [str(v.midi) for v in vs], [str(v.new_bars_midi) for v in vs], [str(v.audio) for v in vs], info


@endpoint
def interpolate_api(studio: Studio, a_file=None, a_notes=None, a_example=None, b_file=None, b_notes=None,
                    b_example=None, steps=None, temperature=None, seed=None, pacing="even"):
    """/interpolate: clips A and B (file, typed notes or example) -> morph MIDI, steps zip, WAV, info."""
    a = resolve_api_input(a_file, a_notes, a_example, name="clip A")
    b = resolve_api_input(b_file, b_notes, b_example, name="clip B")
    result, files = interpolate_files(studio, a.melody, b.melody, steps, temperature, seed, None, rolls=False,
                                      pacing=pacing)
    info = {"seed": result.seed, "notices": [*a.notices, *b.notices, *result.notices, *files.notices],
            "clips": [c.summary() for c in result.clips], "morph": result.morph.summary()}
    return str(files.midi), str(files.steps_zip), str(files.audio), info


@endpoint
def generate_api(studio: Studio, count=None, temperature=None, seed=None, time_signature="4/4", qpm=None,
                 sampler="bank", notes_per_bar=None, range_semitones=None, key="any", ends_on_tonic=False,
                 clips=None):
    """/generate: how many, temperature, seed, time signature, tempo, sampler, attributes (bank sampler;
    empty: free), clips (2-20 files: the "style" sampler learns them first) -> MIDIs, zip, WAVs, info."""
    style = learn_style(studio, clips) if sampler == "style" else None
    result, files = generate_files(studio, count, temperature, seed, time_signature, qpm, None, page=False,
                                   sampler=sampler, notes_per_bar=notes_per_bar, range_semitones=range_semitones,
                                   key=key, ends_on_tonic=ends_on_tonic, style=style)
    info = {"seed": result.seed, "notices": [*result.notices, *files.notices],
            "melodies": [m.summary() for m in result.melodies]}
    return [str(p) for p in files.midis], str(files.zip), [str(w) for w in files.audios], info


def add_endpoints(studio: Studio, heavy: dict):
    """Endpoints for gradio_client with plain inputs; their widgets are never shown."""
    with gr.Column(visible=False):
        c_file = gr.File(type="filepath", label="melody_file")
        c_notes = gr.Textbox(label="notes")
        c_example = gr.Textbox(label="example")
        c_track = SettingNumber(None, label="track", precision=0, info="which track or part; empty: guess")
        c_bars = _number(ContinueRequest, "bars")
        c_temp = _number(ContinueRequest, "temperature")
        c_var = _number(ContinueRequest, "variations")
        c_seed = SettingNumber(None, label="seed", precision=0, info="empty: a random one (returned in info)")
        c_key = gr.Textbox("off", label="key_lock")
        c_prog = SettingNumber(KEEP_PROGRAM, label="program", precision=0,
                               info="General MIDI program 0-127; -1 keeps the input's")
        c_font = gr.Textbox("", label="soundfont")
        c_end = gr.Textbox("tonic chord", label="ending", info=f"one of: {', '.join(ENDINGS)}")
        c_close = _number(ContinueRequest, "stay_close")
        o_midi = gr.File(file_count="multiple", label="midi")
        o_cont = gr.File(file_count="multiple", label="continuation_midi")
        o_wav = gr.File(file_count="multiple", label="audio")
        o_info = gr.JSON(label="info")
        c_btn = gr.Button("continue")
        c_btn.click(functools.partial(continue_api, studio),
                    [c_file, c_notes, c_example, c_track, c_bars, c_temp, c_var, c_seed, c_key, c_prog, c_font, c_end,
                     c_close],
                    [o_midi, o_cont, o_wav, o_info], api_name="continue", **heavy)

        i_a_file, i_b_file = gr.File(type="filepath", label="a_file"), gr.File(type="filepath", label="b_file")
        i_a_notes, i_b_notes = gr.Textbox(label="a_notes"), gr.Textbox(label="b_notes")
        i_a_ex, i_b_ex = gr.Textbox(label="a_example"), gr.Textbox(label="b_example")
        i_steps = _number(InterpolateRequest, "steps")
        i_temp = _number(InterpolateRequest, "temperature")
        i_seed = SettingNumber(None, label="seed", precision=0, info="empty: a random one (returned in info)")
        i_pacing = gr.Textbox("even", label="pacing", info=f"one of: {', '.join(PACINGS)}")
        io_morph, io_zip, io_wav = gr.File(label="morph_midi"), gr.File(label="steps_zip"), gr.File(label="audio")
        io_info = gr.JSON(label="info")
        i_btn = gr.Button("interpolate")
        i_btn.click(functools.partial(interpolate_api, studio),
                    [i_a_file, i_a_notes, i_a_ex, i_b_file, i_b_notes, i_b_ex, i_steps, i_temp, i_seed, i_pacing],
                    [io_morph, io_zip, io_wav, io_info], api_name="interpolate", **heavy)

        g_count = _number(SampleRequest, "count")
        g_temp = _number(SampleRequest, "temperature")
        g_seed = SettingNumber(None, label="seed", precision=0, info="empty: a random one (returned in info)")
        g_ts = gr.Textbox("4/4", label="time_signature")
        g_qpm = _number(SampleRequest, "qpm")
        g_sampler = gr.Textbox("bank", label="sampler", info=f"one of: {', '.join(SAMPLERS)}")
        g_density, g_range = _number(SampleRequest, "notes_per_bar"), _number(SampleRequest, "range_semitones")
        g_key = gr.Textbox("any", label="key", info="any, major, minor, or a key such as 'D minor' (bank sampler)")
        g_tonic = gr.Checkbox(False, label="ends_on_tonic", info="the last note is the key's tonic (bank sampler)")
        g_clips = gr.File(file_count="multiple", type="filepath", label="clips")  # the "style" sampler learns them
        go_midi, go_zip = gr.File(file_count="multiple", label="midi"), gr.File(label="zip")
        go_wav, go_info = gr.File(file_count="multiple", label="audio"), gr.JSON(label="info")
        g_btn = gr.Button("generate")
        g_btn.click(functools.partial(generate_api, studio),
                    [g_count, g_temp, g_seed, g_ts, g_qpm, g_sampler, g_density, g_range, g_key, g_tonic, g_clips],
                    [go_midi, go_zip, go_wav, go_info], api_name="generate", **heavy)
