"""The melody input panel (example, upload, typed notes or a recording; track picker; what was
understood, and for a recording what was heard) and its handlers. Each panel keeps its own
:class:`~musicgen_app.actions.inputs.InputHistory` in ``gr.State``.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, replace

import gradio as gr

from ..actions.inputs import InputEntry, InputHistory, InputOrigin, audio_origin, read_input
from ..actions.studio import Studio, run_heard
from ..errors import ImportFailed, RequestError
from ..io.audio import AUDIO_EXTENSIONS
from ..io.examples import DEFAULT_EXAMPLE, example_names
from ..io.importer import HOW_TO_TYPE
from ..melody import Melody
from .recording import RecordTab, record_tab
from .refusals import user_errors
from .widgets import refusal_line, refused_in_status

UPLOAD_TYPES = [".mid", ".midi", ".kar", ".musicxml", ".xml", ".mxl", ".abc", ".txt", *AUDIO_EXTENSIONS]


def entry_markdown(entry: InputEntry | None, depth: int = 0) -> str:
    if entry is None:
        return "*No melody yet: pick an example, upload a file, type notes or record.*"
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
    """The track picker lists the pitched tracks only; it hides when there is no choice."""
    pitched = [t for t in entry.tracks if t.notes and not t.is_drum] if entry else []
    if len(pitched) < 2:
        return gr.update(choices=[], value=None, visible=False)
    return gr.update(choices=[(t.label, t.index) for t in pitched], value=entry.track, visible=True)


def _panel_out(history: InputHistory):
    return history, entry_markdown(history.current, len(history.entries)), _track_update(history.current)


@user_errors
def pick_example(name, history: InputHistory):
    """The example becomes the input; picking the one that already is (the dropdown reports a
    choice typed and then clicked twice) keeps the history as it is."""
    if not name:
        raise RequestError("Choose an example from the list.")
    current = history.current
    if current and current.origin == InputOrigin("example", name):
        return _panel_out(history)
    return _panel_out(history.push(read_input(InputOrigin("example", name))))


@user_errors
def pick_upload(path, history: InputHistory):
    current = history.current
    if not path or (current and current.origin == InputOrigin("file", str(path))):
        return _panel_out(history)  # cleared, or already read by an action that came first: keep
    return _panel_out(history.push(read_input(InputOrigin("file", str(path)))))


WITHOUT_COUNT_IN = ("This file is not the take recorded to the count-in (uploaded, or trimmed with the scissors), "
                    "so bar 1 is found from the notes; record again to play to the count-in.")


@user_errors
def pick_recording(path, qpm, snap, meter, downbeat, take, history: InputHistory):
    """The file in the Record tab's box becomes the input, read at the tempo and in the meter given:
    a take just recorded (``take`` set as it started) with the count-in's ``downbeat``; any other
    file (uploaded, or a take trimmed afterwards) without it, as its start is not the recorder's.
    -> the panel's outputs, the downbeat box, the take box (emptied: this take is read)."""
    current = history.current
    if not path:
        return (*_panel_out(history), gr.skip(), gr.skip())  # cleared
    if current and current.origin.kind == "audio" and current.origin.value == str(path):
        return (*_panel_out(history), gr.skip(), "")  # already read (the action button came first)
    entry = read_input(audio_origin(path, qpm, snap, meter, downbeat if take else ""))
    if not take and current is not None and current.origin.kind == "audio" and current.origin.downbeat is not None:
        entry = replace(entry, notices=(*entry.notices, WITHOUT_COUNT_IN))
    return (*_panel_out(history.push(entry)), downbeat if take else "", "")


@user_errors
def recording_setting(qpm, snap, meter, history: InputHistory):
    """The tempo, meter or snap-to-key changed: the current input, when it is a recording, is read
    again (a count-in's downbeat stays where it was heard)."""
    entry = history.current
    if entry is None or entry.origin.kind != "audio":
        return _panel_out(history)
    origin = audio_origin(entry.origin.value, qpm, snap, meter, entry.origin.downbeat)
    if origin == entry.origin:
        return _panel_out(history)
    return _panel_out(history.replace_current(read_input(origin)))


@user_errors
def show_heard(studio: Studio, history: InputHistory):
    """What was heard, when the input is a recording: its notes over the pitch curve, and a player."""
    entry = history.current
    if entry is None or entry.transcription is None:
        return gr.update(visible=False), None, None
    files = run_heard(studio, entry.melody, entry.transcription)
    return gr.update(visible=True), str(files.roll), str(files.audio)


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
def push_result(history: InputHistory, melody: Melody, label: str):
    """A model's result becomes the current input ("Continue from this"); Undo goes back."""
    return _panel_out(history.push(InputEntry.result(melody, label)))


def initial_history(example: str | None = DEFAULT_EXAMPLE) -> InputHistory:
    if example is None:
        return InputHistory()
    return InputHistory((read_input(InputOrigin("example", example)),))


def settled(history: InputHistory, upload, mode: str = "upload", text: str = "", recording=None) -> InputHistory:
    """The history with what the panel shows but has not read yet, so the action uses the melody
    the musician sees: on the Type tab, notes typed without "Use these notes"; on the Upload tab, a
    file whose own upload event was still on the way when the action button was clicked; on the
    Record tab, a recording (``recording``: path, tempo box, snap box, meter, count-in downbeat) likewise.

    A file the panel refused stays in the upload box; it stays refused (its own event showed why).
    Typed notes that cannot be read are refused with the reason: the musician asked for them.
    """
    current = history.current
    if mode == "type":
        if text and text.strip() and (current is None or current.origin != InputOrigin("text", text)):
            return history.push(read_input(InputOrigin("text", text)))
        return history
    if mode == "record":
        path, *setting = recording or (None,)
        origin = audio_origin(path, *setting) if path else None
    else:
        origin = InputOrigin("file", str(upload)) if upload else None
    if origin is None or any(e.origin == origin for e in history.entries):
        return history
    try:
        return history.push(read_input(origin))
    except ImportFailed:
        return history


def panel_outputs(history: InputHistory):
    """What a panel shows for ``history``: its state, the summary, the track picker."""
    return _panel_out(history)


def current_entry(history: InputHistory, what: str = "a melody") -> InputEntry:
    if history.current is None:
        raise RequestError(f"Give {what} first: pick an example, upload a file, type notes or record.")
    return history.current


@dataclass
class InputPanel:
    state: gr.State
    example: gr.Dropdown
    upload: gr.File
    text: gr.Textbox
    use_text: gr.Button
    track: gr.Dropdown
    info: gr.Markdown
    mode: gr.State  # the tab the panel shows: "example", "upload", "type" or "record"
    record: RecordTab

    @property
    def recording(self) -> gr.Audio:
        return self.record.recording

    @property
    def recording_qpm(self) -> gr.Textbox:
        return self.record.qpm

    @property
    def snap(self) -> gr.Checkbox:
        return self.record.snap

    @property
    def inputs(self) -> set:
        """What an action reads of the panel (see :meth:`settled`)."""
        return {self.state, self.upload, self.text, self.mode, self.recording, *self.record.settings}

    @property
    def outputs(self) -> list:
        """What an action updates: the history, the summary, the track picker (panel_outputs)."""
        return [self.state, self.info, self.track]

    def settled(self, data: dict) -> InputHistory:
        recording = (data.get(self.recording), *(data.get(c) for c in self.record.settings))
        return settled(data[self.state], data[self.upload], data[self.mode], data[self.text], recording)

    @staticmethod
    def entry(history: InputHistory, what: str = "a melody") -> InputEntry:
        return current_entry(history, what)


def input_panel(title: str, default_example: str, key: str, studio: Studio | None = None,
                record: bool = True) -> InputPanel:
    """The panel; with ``studio``, a recording's transcription is shown (and played) under it;
    ``record``: a Record tab (a narrow column folds a fourth tab into a menu)."""
    history = initial_history(default_example)
    state = gr.State(history)
    mode = gr.State("example")
    gr.Markdown(f"### {title}")
    with gr.Tabs():
        with gr.Tab("Example", elem_id=f"{key}-tab-example") as example_tab:
            example = gr.Dropdown(example_names(), value=default_example, show_label=False,
                                  elem_id=f"{key}-example")
        with gr.Tab("Upload", elem_id=f"{key}-tab-upload") as upload_tab:
            upload = gr.File(file_types=UPLOAD_TYPES, type="filepath", show_label=False, height=90,
                             elem_id=f"{key}-upload")
        with gr.Tab("Type", elem_id=f"{key}-tab-type") as type_tab:
            text = gr.Textbox(lines=3, max_lines=8, show_label=False, placeholder=HOW_TO_TYPE,
                              elem_id=f"{key}-text", info="the action uses these notes while this tab is open")
            use_text = gr.Button("Use these notes", size="sm", elem_id=f"{key}-use-text")
        with gr.Tab("Record", elem_id=f"{key}-tab-record", visible=record) as recording_tab:
            take = record_tab(key)
    tabs = ((example_tab, "example"), (upload_tab, "upload"), (type_tab, "type"), (recording_tab, "record"))
    for tab, name in tabs:
        tab.select(functools.partial(lambda name: name, name), None, mode, api_visibility="private", queue=False)
    track = gr.Dropdown([], label="Track", visible=False, interactive=True, elem_id=f"{key}-track")
    info = gr.Markdown(entry_markdown(history.current), elem_id=f"{key}-info")
    panel = InputPanel(state, example, upload, text, use_text, track, info, mode, take)
    outs = [state, info, track]
    # a take from the microphone, a file put in the box, or either after the waveform's scissors: each
    # changes the box's file (a trimmed take also fires stop_recording, an uploaded one trimmed does not)
    take_outs = [*outs, take.downbeat, take.take]
    take.recording.change(kept_on_refusal(pick_recording, take_outs),
                          [take.recording, *take.settings, take.take, state], take_outs, api_visibility="private")
    for event in (take.qpm.submit, take.qpm.blur, take.snap.input, take.meter.input):
        event(kept_on_refusal(recording_setting, outs), [take.qpm, take.snap, take.meter, state], outs,
              api_visibility="private")
    if studio is not None:
        with gr.Group(visible=False, elem_id=f"{key}-heard", elem_classes="heard") as heard:
            roll = gr.Image(type="filepath", interactive=False, show_label=False, height=150,
                            elem_id=f"{key}-heard-roll", buttons=["fullscreen"])
            played = gr.Audio(type="filepath", interactive=False, label="What was heard, played back",
                              elem_id=f"{key}-heard-audio")
        state.change(functools.partial(show_heard, studio), [state], [heard, roll, played], api_visibility="private")
    example.input(kept_on_refusal(pick_example, outs), [example, state], outs, api_visibility="private")
    upload.upload(kept_on_refusal(pick_upload, outs), [upload, state], outs, api_visibility="private")
    use_text.click(kept_on_refusal(pick_text, outs), [text, state], outs, api_visibility="private")
    text.submit(kept_on_refusal(pick_text, outs), [text, state], outs, api_visibility="private")
    track.input(kept_on_refusal(pick_track, outs), [track, state], outs, api_visibility="private")
    return panel


def _refusal_below_summary(exc: gr.Error, *args) -> str:
    history = args[-1]  # a panel event's last argument is the panel's history
    return f"{entry_markdown(history.current, len(history.entries))}  \n{refusal_line(exc)}"


def kept_on_refusal(handler, outs: list):
    """A panel event whose refusal keeps the input: the summary of what is still the input says why
    below it (see widgets.refused_in_status)."""
    return refused_in_status(handler, outs, outs[1], said=_refusal_below_summary)
