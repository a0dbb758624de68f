"""Handler tests for the browser app on the tiny debug model: call the functions the buttons call."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import gradio as gr
import mido
import numpy as np
import pytest
import soundfile
from gradio.context import LocalContext
from gradio.queueing import Event

from musicgen_app import views
from musicgen_app.actions.inputs import InputHistory, InputOrigin, read_input
from musicgen_app.actions.studio import Studio
from musicgen_app.actions.tempfiles import TempStore
from musicgen_app.io.examples import DEFAULT_EXAMPLE, EXAMPLES, example_path
from musicgen_app.io.importer import parse_text
from musicgen_app.io.midi import melody_to_midi
from musicgen_app.service import KEEP_PROGRAM, ContinueRequest, InterpolateRequest, MelodyService, SampleRequest
from musicgen_app.settings import settings_of
from musicgen_app.web import api, panels, tab_continue, tab_generate, tab_interpolate
from musicgen_app.web import page as ui
from musicgen_app.web.forms import Form
from musicgen_app.web.queue_adapter import client_gone, quieter_queue
from musicgen_app.web.tab_continue import MAX_VARIATIONS, chain_result, continue_rest_ui
from musicgen_app.web.tab_generate import add_chosen, add_clip, learn_style_ui
from musicgen_app.web.widgets import FILES_CLEARED, keep_files

CORRUPT = Path(__file__).resolve().parent / "data" / "corrupt"
SLOT = 8  # group, audio, roll, score, midi, continuation midi, wav, musicxml per variation


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    return Studio.create(MelodyService.debug(), TempStore(tmp_path_factory.mktemp("store"), remove_at_exit=False))


def _forms():
    """The tabs' forms and input panels, as the page builds them, for calling handlers directly."""
    with gr.Blocks():
        forms = {}
        for request_type, prefix in ((ContinueRequest, "c"), (InterpolateRequest, "i"), (SampleRequest, "g")):
            forms[prefix] = Form(request_type, prefix)
            for name in settings_of(request_type):
                forms[prefix].widget(name)
        panels_ = {k: panels.input_panel(k, DEFAULT_EXAMPLE, k) for k in ("c", "a", "b")}
        run, style = gr.State(), gr.State()
    return forms, panels_, run, style


FORMS, PANELS, RUN, STYLE = _forms()


def _data(form: Form, panel_values: dict, **settings) -> dict:
    data = {w: None for w in form.widgets.values()} | dict(panel_values)
    data.update({form.widgets[name]: value for name, value in settings.items()})
    return data


def _panel(key: str, history, upload=None, mode="upload", text="") -> dict:
    p = PANELS[key]
    return {p.state: history, p.upload: upload, p.mode: mode, p.text: text}


def continue_ui(studio, history, upload, bars, temperature, variations, seed, key_lock, ending, stay_close, program,
                soundfont, *, mode="upload", text=""):
    """The Continue button's handler with the settings in the order of the old positional form."""
    data = _data(FORMS["c"], _panel("c", history, upload, mode, text), bars=bars, temperature=temperature,
                 variations=variations, seed=seed, key_lock=key_lock, ending=ending, stay_close=stay_close,
                 program=program, soundfont=soundfont)
    return tab_continue.continue_ui(studio, FORMS["c"], PANELS["c"], data)


def more_like_ui(index, studio, run, history, temperature, variations, seed, key_lock, ending, stay_close, program,
                 soundfont):
    data = _data(FORMS["c"], {PANELS["c"].state: history, RUN: run}, temperature=temperature, variations=variations,
                 seed=seed, key_lock=key_lock, ending=ending, stay_close=stay_close, program=program,
                 soundfont=soundfont)
    return tab_continue.more_like_ui(index, studio, FORMS["c"], PANELS["c"], RUN, data)


def interpolate_ui(studio, hist_a, upload_a, hist_b, upload_b, steps, temperature, pacing, seed, soundfont):
    data = _data(FORMS["i"], _panel("a", hist_a, upload_a) | _panel("b", hist_b, upload_b), steps=steps,
                 temperature=temperature, pacing=pacing, seed=seed, soundfont=soundfont)
    return tab_interpolate.interpolate_ui(studio, FORMS["i"], PANELS["a"], PANELS["b"], data)


def generate_ui(studio, count, temperature, seed, time_signature, qpm, sampler, notes_per_bar, range_semitones, key,
                ends_on_tonic, style, soundfont):
    data = _data(FORMS["g"], {STYLE: style}, count=count, temperature=temperature, seed=seed,
                 time_signature=time_signature, qpm=qpm, sampler=sampler, notes_per_bar=notes_per_bar,
                 range_semitones=range_semitones, key=key, ends_on_tonic=ends_on_tonic, soundfont=soundfont)
    return tab_generate.generate_ui(studio, FORMS["g"], STYLE, data)


class _Api:
    """The API endpoints' functions, called as gradio_client calls them (by keyword)."""

    def __getattr__(self, name):
        def call(studio, *args, **kwargs):
            with gr.Blocks():
                fn, _ = api.functions(studio)[name.removesuffix("_api")]
            return fn(*args, **kwargs)
        return call


API = _Api()


def _slots(outputs):
    _state, _info, _track, run, status, *flat = outputs
    return run, status, [flat[i : i + SLOT] for i in range(0, len(flat), SLOT)]


def _midi_bars(path_or_file) -> float:
    if isinstance(path_or_file, io.BytesIO):
        mid = mido.MidiFile(file=path_or_file)
    else:
        mid = mido.MidiFile(path_or_file)
    ts = [m for t in mid.tracks for m in t if m.type == "time_signature"][-1]
    end = max(sum(m.time for m in t) for t in mid.tracks)
    return end / (mid.ticks_per_beat * 4 * ts.numerator / ts.denominator)


def _meter(file) -> tuple[int, int]:
    ts = [m for t in mido.MidiFile(file=file).tracks for m in t if m.type == "time_signature"][-1]
    return ts.numerator, ts.denominator


def _loud(path) -> float:
    audio, _ = soundfile.read(path)
    return float(np.sqrt(np.mean(np.square(audio))))


def test_every_example_loads():
    for name in EXAMPLES:
        entry = read_input(InputOrigin("example", name))
        assert entry.melody.notes, name
        assert example_path(name).is_file()


def test_multitrack_example_offers_a_track_picker_and_switching_keeps_the_history_depth():
    hist = panels.initial_history()
    hist, info, track = panels.pick_example("Multitrack (bass, fiddle, drums)", hist)
    assert track["visible"] is True and len(track["choices"]) == 2  # drums are not offered
    assert not any("Drums" in label for label, _ in track["choices"])
    assert track["value"] == hist.current.track == 1  # the fiddle, not the bass or the drums
    assert "Fiddle" in info
    depth = len(hist.entries)
    hist2, info2, _ = panels.pick_track(0, hist)
    assert hist2.current.track == 0 and len(hist2.entries) == depth
    assert "Bass" in info2
    assert hist2.current.melody != hist.current.melody


REST = 5  # the second pass's outputs per variation: audio, roll, wav, score, musicxml


def test_continue_writes_audio_roll_and_midi_per_variation(studio):
    hist = panels.initial_history("Waltz (3/4, MIDI)")
    inp = hist.current.melody
    run, status, slots = _slots(
        continue_ui(studio, hist, None, 4, 1.0, 3, "123", "off", "tonic chord", 0.5, KEEP_PROGRAM, None)
    )
    assert "Seed used: **123**" in status
    low, high = run.result.pitch_range  # the pitch guard is stated
    assert f"within {views.pitch_name(low)}-{views.pitch_name(high)}" in status
    assert low <= min(n.pitch for n in inp.notes) - 7 and high >= max(n.pitch for n in inp.notes) + 7
    assert all(low <= n.pitch <= high for m in run.melodies for n in m.notes[len(inp.notes):])
    assert len(run.melodies) == 3 and len(slots) == MAX_VARIATIONS
    # the first pass: every MIDI, but audio and a roll for the first variation only, so it plays at once
    for i, (group, player, roll, _score, whole, cont, wav, xml) in enumerate(slots[:3]):
        assert group["visible"] is True and xml is None  # the second pass adds the score
        assert (player["value"] is None) == (roll is None) == (wav is None) == (i > 0)
        assert ("rendering" in player["label"]) == (i > 0)
        assert whole.endswith(".mid") and cont.endswith("-continuation.mid")
        assert _midi_bars(cont) == pytest.approx(4)
        assert _midi_bars(whole) == pytest.approx(inp.num_bars + 4)
        ts = next(m for t in mido.MidiFile(whole).tracks for m in t if m.type == "time_signature")
        assert (ts.numerator, ts.denominator) == (3, 4)
    for group, audio, *_ in slots[3:]:
        assert group["visible"] is False and audio is None
    rest = continue_rest_ui(run)
    assert len(rest) == REST * MAX_VARIATIONS
    rest = [rest[i : i + REST] for i in range(0, len(rest), REST)]
    players = [slots[0][1]] + [r[0] for r in rest[1:3]]
    likelihoods = []
    for i, (player, (_, roll, wav, score, xml)) in enumerate(zip(players, rest)):
        audio = player["value"]
        # the player says the rank in words; the status line has the exact figure
        assert "likeliest" in player["label"] and "bits" not in player["label"]
        likelihoods.append(float(re.search(rf"{i + 1}: (-?\d+\.\d+)", status.split("bits per note")[1]).group(1)))
        ranks = sorted(run.result.log2p_per_note, reverse=True)
        assert ("· likeliest" in player["label"]) == (run.result.log2p_per_note[i] == ranks[0])
        assert "rendering" not in player["label"]
        assert _loud(audio) > 0.01
        if i:
            assert Path(roll).read_bytes()[:4] == b"\x89PNG" and wav == audio
        assert "<svg" in score and xml.endswith(f"variation-{i + 1}.musicxml")
    assert rest[0][:3] == (gr.skip(),) * 3  # the first variation's player is left playing
    assert len(likelihoods) == 3  # each player says how likely the model finds its variation
    assert likelihoods == sorted(likelihoods, reverse=True) or not all(run.result.ended)
    # the input's notes come first, unchanged
    assert run.melodies[0].notes[: len(inp.notes)] == inp.notes
    # two passes write what one pass writes
    one = API.continue_api(studio, None, None, "Waltz (3/4, MIDI)", None, 4, 1.0, 3, 123, "off", KEEP_PROGRAM,
                           None, "tonic chord")
    assert [Path(w).read_bytes() for w in one[2]] == [Path(p["value"]).read_bytes() for p in players]


def test_same_seed_gives_the_same_music_and_the_scores_come_second(studio):
    hist = panels.initial_history("Jig (6/8, MIDI)")
    a = _slots(continue_ui(studio, hist, None, 2, 0.8, 2, 5, "detected", "tonic chord", 0.5, 40, None))
    b = _slots(continue_ui(studio, hist, None, 2, 0.8, 2, 5, "detected", "tonic chord", 0.5, 40, None))
    assert a[0].melodies == b[0].melodies
    assert all(m.program == 40 for m in a[0].melodies)
    assert Path(a[2][0][4]).read_bytes() == Path(b[2][0][4]).read_bytes()
    rest = continue_rest_ui(a[0])
    assert len(rest) == REST * MAX_VARIATIONS
    html0, xml0 = rest[3], rest[4]
    assert "<svg" in html0
    assert xml0.endswith(".musicxml") and Path(xml0).stat().st_size > 500
    assert rest[2 * REST:] == (gr.skip(), gr.skip(), gr.skip(), "", None) * (MAX_VARIATIONS - 2)


def test_client_gone_reads_gradios_queue_and_stops_the_second_pass(studio):
    demo = ui.build_ui(MelodyService.debug(), studio.store)
    demo.queue()
    queue = demo._queue
    event = Event("page-1", next(iter(demo.fns.values())), None, None)
    queue.event_ids_to_events[event._id] = event
    queue.active_jobs = [[event]]  # as if running
    tokens = LocalContext.blocks.set(demo), LocalContext.event_id.set(event._id)
    try:
        assert not client_gone()
        hist = panels.initial_history()
        run, _, _ = _slots(continue_ui(studio, hist, None, 2, 1.0, 3, 7, "off", "free", 0.5, KEEP_PROGRAM, None))
        asyncio.run(queue.clean_events(session_hash="page-1"))  # what Gradio does when the page's stream closes
        assert client_gone()
        assert continue_rest_ui(run) == (gr.skip(),) * (REST * MAX_VARIATIONS)
        assert not list(Path(run.folder).glob("*.wav"))[1:]  # only the first pass's WAV
        with pytest.raises(gr.Error, match="closed"):  # a new click's model runs, but nothing is rendered
            continue_ui(studio, hist, None, 2, 1.0, 3, 7, "off", "free", 0.5, KEEP_PROGRAM, None)
    finally:
        LocalContext.blocks.reset(tokens[0])
        LocalContext.event_id.reset(tokens[1])
    assert not client_gone()  # outside an event: never gone


def test_the_queue_polls_less_often_and_gradio_still_reads_what_we_set(studio):
    import inspect

    from gradio.queueing import Queue

    demo = ui.build_ui(MelodyService.debug(), studio.store)
    demo.queue()
    quieter_queue(demo, 0.01)
    assert (demo._queue.sleep_when_free, demo._queue.progress_update_sleep_when_free) == (0.01, 0.05)
    # the loops that wait between looks read these attributes (a Gradio upgrade that drops them
    # makes quieter_queue refuse to start rather than silently do nothing)
    assert "asyncio.sleep(self.sleep_when_free)" in inspect.getsource(Queue.start_processing)
    assert "self.progress_update_sleep_when_free" in inspect.getsource(Queue.start_progress_updates)


def test_more_like_a_variation_keeps_its_input_and_bars_and_comes_out_closer(studio):
    hist = panels.initial_history()
    run, _, _ = _slots(continue_ui(studio, hist, None, 2, 1.0, 4, 8, "off", "free", 0.5, KEEP_PROGRAM, None))
    hist2 = panels.initial_history("Waltz (3/4, MIDI)")  # the panel changed meanwhile: the run's input is used
    out = more_like_ui(2, studio, run, hist2, 1.0, 4, 9, "off", "free", 0.5, KEEP_PROGRAM, None)
    like, status = out[3], out[4]
    assert "More like variation 3" in status
    assert out[0] == hist2 and like.result.primer == run.result.primer and like.request.bars == 2
    target = run.result.continuations[2].notes
    def shared(m):
        return len(set(m.notes) & set(target))
    fresh, _, _ = _slots(continue_ui(studio, hist, None, 2, 1.0, 4, 9, "off", "free", 0.5, KEEP_PROGRAM, None))
    assert sum(map(shared, like.result.continuations)) > sum(map(shared, fresh.result.continuations))
    with pytest.raises(gr.Error, match="no variation 6"):
        more_like_ui(5, studio, run, hist, 1.0, 4, 9, "off", "free", 0.5, KEEP_PROGRAM, None)


def test_chain_a_result_then_undo(studio):
    hist = panels.initial_history()
    first = hist.current
    run, status, _ = _slots(continue_ui(studio, hist, None, 2, 1.0, 2, "", "off", "tonic chord", 0.5, KEEP_PROGRAM,
                                        None))
    assert "Seed used: **" in status  # an empty seed box means a random seed, shown back
    hist2, info, track = chain_result(1, run, hist)
    assert hist2.current.melody == run.melodies[1] and len(hist2.entries) == 2
    assert "Variation 2" in info and track["visible"] is False
    run2, _, _ = _slots(continue_ui(studio, hist2, None, 2, 1.0, 1, 2, "off", "tonic chord", 0.5, KEEP_PROGRAM, None))
    assert run2.melodies[0].notes[: len(run.melodies[1].notes)] == run.melodies[1].notes
    hist3, _, _ = panels.undo_input(hist2)
    assert hist3.current == first
    with pytest.raises(gr.Error):
        panels.undo_input(hist3)
    with pytest.raises(gr.Error):
        chain_result(5, run, hist)


@pytest.mark.parametrize(
    "name", ["truncated.mid", "random-bytes.mid", "not-music.txt", "drums-only.mid", "bad-xml.musicxml"]
)
def test_a_bad_upload_is_an_error_and_the_input_stays(name):
    hist = panels.initial_history()
    before = hist
    with pytest.raises(gr.Error) as err:
        panels.pick_upload(str(CORRUPT / name), hist)
    assert str(err.value.message)
    assert hist == before and hist.current.label == DEFAULT_EXAMPLE


def test_bad_typed_notes_and_bad_settings_are_errors(studio):
    hist = panels.initial_history()
    with pytest.raises(gr.Error, match="tinyNotation|ABC"):
        panels.pick_text("", hist)
    with pytest.raises(gr.Error, match="Bars 0"):
        continue_ui(studio, hist, None, 0, 1.0, 1, None, "off", "tonic chord", 0.5, KEEP_PROGRAM, None)
    with pytest.raises(gr.Error, match="H major|tonic"):
        continue_ui(studio, hist, None, 2, 1.0, 1, None, "H major", "tonic chord", 0.5, KEEP_PROGRAM, None)
    with pytest.raises(gr.Error, match="Seed"):
        continue_ui(studio, hist, None, 2, 1.0, 1, "twelve", "off", "tonic chord", 0.5, KEEP_PROGRAM, None)
    with pytest.raises(gr.Error, match="melody first"):
        continue_ui(studio, InputHistory(), None, 2, 1.0, 1, None, "off", "tonic chord", 0.5, KEEP_PROGRAM, None)
    assert len(hist.entries) == 1


def test_typed_notes_become_the_input():
    hist, info, _ = panels.pick_text("3/4 c4 d e f2 g4 a2 b4 c'2.", panels.initial_history())
    assert hist.current.label == "Typed notes" and len(hist.entries) == 2
    assert "3/4" in info and "notes" in info


def test_interpolate_gives_one_roll_per_step_and_a_zip_of_clips(studio):
    a, b = panels.initial_history("Jig (6/8, MIDI)"), panels.initial_history("Waltz (3/4, MIDI)")
    *_, status, audio, gallery, files, folder = interpolate_ui(studio, a, None, b, None, 5, 0.0, "even", 9, None)
    assert Path(files[0]).parent == Path(folder)
    assert "Seed used: **9**" in status
    assert len(gallery) == 5 and gallery[0][1].endswith("A") and gallery[-1][1].endswith("B")
    assert _loud(audio) > 0.01
    morph, zipped = files
    with zipfile.ZipFile(zipped) as zf:
        names = zf.namelist()
        assert len(names) == 5
        clip = mido.MidiFile(file=io.BytesIO(zf.read(names[2])))
        assert any(m.type == "note_on" for t in clip.tracks for m in t)
    assert _midi_bars(morph) == pytest.approx(5 * _midi_bars(io.BytesIO(zipfile.ZipFile(zipped).read(names[0]))))
    meters = [_meter(io.BytesIO(zipfile.ZipFile(zipped).read(n))) for n in names]
    # no 6/8 forced into 3/4: A's meter, then B's from the step nearer B on
    assert meters[0] == (6, 8) and meters[-1] == (3, 4) and meters == sorted(meters, key=lambda m: m != (6, 8))


def test_generate_gives_midis_a_zip_and_audio(studio):
    status, audio, gallery, files, wavs, folder = generate_ui(studio, 3, 1.0, 11, "3/4", 90, "gan", None, None,
                                                              "any", False, b"", None)
    assert Path(files[0]).parent == Path(folder)
    assert "**11**" in status and len(gallery) == 3
    assert len(files) == 4 and files[-1].endswith(".zip")
    assert len(wavs) == 4 and wavs[0] == audio  # all of them, then one each
    for f in files[:3]:
        ts = next(m for t in mido.MidiFile(f).tracks for m in t if m.type == "time_signature")
        assert (ts.numerator, ts.denominator) == (3, 4)
    with pytest.raises(gr.Error, match="How many 17"):
        generate_ui(studio, 17, 1.0, None, "4/4", 120, "gan", None, None, "any", False, b"", None)
    assert "**11**" in generate_ui(studio, 3, 1.0, 11, "3/4", 90, "gaussian", None, None, "any", False, b"", None)[0]
    with pytest.raises(gr.Error, match="Sampler"):
        generate_ui(studio, 1, 1.0, None, "4/4", 120, "magic", None, None, "any", False, b"", None)
    # the shape controls reach the corpus neighbourhood sampler (their effect on the real models is
    # measured in test_code_bank: the debug model's random decoder follows no attribute)
    status = generate_ui(studio, 2, 1.0, 5, "4/4", 120, "bank", "", "", "D minor", True, b"", None)[0]
    assert "**5**" in status
    with pytest.raises(gr.Error, match="no shape controls"):
        generate_ui(studio, 2, 1.0, 5, "4/4", 120, "gan", 4, None, "any", False, b"", None)
    with pytest.raises(gr.Error, match="Notes per bar|notes_per_bar"):
        generate_ui(studio, 2, 1.0, 5, "4/4", 120, "bank", 99, None, "any", False, b"", None)


def test_more_like_these_learns_from_uploads_and_generates_in_their_meter(studio, tmp_path):
    paths = []
    for i, notes in enumerate(["3/4 c4 d e f2 e4 d2 c4 e g c'2.", "3/4 g4 a b c'2 b4 a g f e2.",
                               "3/4 e4 f g a2 g4 f e d c2."]):
        paths.append(tmp_path / f"clip{i}.mid")
        melody_to_midi(parse_text(notes).melody, paths[-1])
    style, info, sampler = learn_style_ui(studio, [str(p) for p in paths])
    assert "3 clips" in info and "3/4" in info and sampler["value"] == "style"
    status, _, gallery, files, *_ = generate_ui(studio, 2, 1.0, 4, "4/4", 120, "style", None, None, "any", False,
                                                style, None)
    assert "3/4" in status  # the clips' meter, said so
    assert all(_meter(io.BytesIO(Path(f).read_bytes())) == (3, 4) for f in files[:2])
    with pytest.raises(gr.Error, match="learn their style first"):
        generate_ui(studio, 2, 1.0, 4, "4/4", 120, "style", None, None, "any", False, b"", None)
    with pytest.raises(gr.Error, match="2 to 20 clips"):
        learn_style_ui(studio, [str(paths[0])])
    (tmp_path / "bad.mid").write_bytes(b"MThd nonsense")
    with pytest.raises(gr.Error, match=r"Clip 2 \(bad\.mid\)"):
        learn_style_ui(studio, [str(paths[0]), str(tmp_path / "bad.mid")])


def test_results_added_to_my_clips_teach_a_style(studio):
    """Two Generate results (by their clicked piano rolls) and a Continue variation's new bars go to
    the clips; "Learn their style" reads them. Nothing added twice, none past 20, none unchosen."""
    files = generate_ui(studio, 3, 1.0, 11, "4/4", 120, "gan", None, None, "any", False, b"", None)[3]
    clips = add_chosen(None, files, 0)
    clips = add_chosen(clips, files, 2)
    assert clips == [files[0], files[2]]
    with pytest.raises(gr.Error, match="already among"):
        add_chosen(clips, files, 2)
    with pytest.raises(gr.Error, match="Click the piano roll"):
        add_chosen(clips, files, -1)  # a new Generate resets the choice to -1
    with pytest.raises(gr.Error, match="no melody to add yet"):
        add_chosen(clips, [], -1)
    with pytest.raises(gr.Error, match="already hold 20"):
        add_clip([f"/x{i}.mid" for i in range(20)], files[1], "melody 2")
    run, *_ = _slots(continue_ui(studio, panels.initial_history(), None, 2, 1.0, 1, 3, "off", "free", 0.5,
                                 KEEP_PROGRAM, None))
    new_bars = str(next(Path(run.folder).glob("*-continuation.mid")))
    clips = add_clip(clips, new_bars, "variation 1's new bars")
    assert len(clips) == 3
    style, info, _ = learn_style_ui(studio, clips)
    assert "3 clips" in info and style


def test_an_open_page_keeps_its_files_and_is_told_when_they_were_cleared(studio):
    hist = panels.initial_history()
    run, status, _ = _slots(continue_ui(studio, hist, None, 1, 1.0, 1, 3, "off", "free", 0.5, KEEP_PROGRAM, None))
    wav = next(Path(run.folder).glob("*.wav"))
    os.utime(wav, (time.time() - 5000, time.time() - 5000))
    assert keep_files(studio, run, status) == (gr.skip(), gr.skip())  # kept: nothing on the page changes
    assert time.time() - wav.stat().st_mtime < 60
    shutil.rmtree(run.folder)  # the store made room
    run2, status2 = keep_files(studio, run, status)
    assert status2.startswith(status) and FILES_CLEARED in status2
    assert run2.folder == "" and run2.melodies == run.melodies  # "Continue from this" still works
    assert keep_files(studio, run2, status2) == (gr.skip(), gr.skip())  # said once
    assert keep_files(studio, "", "") == (gr.skip(), gr.skip())  # nothing shown yet
    *_, folder = generate_ui(studio, 1, 1.0, 1, "4/4", 120, "gan", None, None, "any", False, b"", None)
    shutil.rmtree(folder)
    assert keep_files(studio, folder, "Seed used") == ("", f"Seed used  \n⚠ {FILES_CLEARED}")


def test_api_functions_take_a_file_text_or_example(studio, tmp_path):
    midi, cont, wavs, info = API.continue_api(
        studio, str(example_path("Jig (6/8, MIDI)")), bars=2, variations=2, seed=3
    )
    assert len(midi) == len(cont) == len(wavs) == 2 and info["seed"] == 3
    assert info["input"]["time_signature"] == "6/8"
    low, high = info["pitch_range"]
    assert low < high and all(low <= m.note <= high for m in mido.MidiFile(cont[0]).tracks[-1] if m.type == "note_on")
    _, _, _, info = API.continue_api(studio, example="Multitrack (bass, fiddle, drums)", track=0, bars=1, variations=1)
    assert info["track"] == 0
    _, _, _, info = API.continue_api(studio, notes="4/4 c4 d e f", bars=1, variations=1)
    assert info["input"]["notes"] == 4
    with pytest.raises(gr.Error, match="Give the melody"):
        API.continue_api(
            studio,
        )
    morph, zipped, wav, info = API.interpolate_api(
        studio, a_example="Jig (6/8, MIDI)", b_notes="6/8 g8 a b c'4.", steps=3
    )
    assert len(info["clips"]) == 3 and Path(morph).is_file()
    mids, zipped, wavs, info = API.generate_api(studio, count=2, seed=1)
    assert len(mids) == len(wavs) == 2


def test_temp_store_sweeps_old_request_folders(tmp_path):
    store = TempStore(tmp_path, max_age=3600, remove_at_exit=False)
    old, new = store.request_dir("a"), store.request_dir("b")
    (old / "x.mid").write_bytes(b"x")
    import os
    import time

    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert store.sweep(force=True) == 1
    assert not old.exists() and new.exists()


@pytest.mark.parametrize(
    "bad",
    [
        dict(bars="eight"),
        dict(bars=float("nan")),
        dict(temperature=[1]),
        dict(variations=1e9),
        dict(seed="1.5"),
        dict(track="two"),
    ],
)
def test_wrong_api_values_get_our_settings_message(studio, bad):
    with pytest.raises(gr.Error) as err:
        API.continue_api(studio, example="Jig (6/8, MIDI)", **bad)
    assert err.value.title == "Check the settings"
    assert "Error" not in err.value.message and "Traceback" not in err.value.message


def test_continue_uses_an_upload_whose_own_event_has_not_arrived_yet(studio):
    # The page starts with the folk tune; the waltz is in the upload box, but its upload event is
    # still on its way when Continue is clicked.
    hist = panels.initial_history()
    waltz = str(example_path("Waltz (3/4, MIDI)"))
    state, info, _, run, status, *_ = continue_ui(
        studio, hist, waltz, 2, 1.0, 1, 1, "off", "tonic chord", 0.5, KEEP_PROGRAM, None
    )
    assert state.current.origin == InputOrigin("file", waltz) and "waltz_3-4.mid" in info
    assert run.melodies[0].time_signature == (3, 4)
    # once read, the same upload is not read again: an example picked later stays the input
    later = state.push(read_input(InputOrigin("example", "Jig (6/8, MIDI)")))
    state2, *_ = continue_ui(studio, later, waltz, 2, 1.0, 1, 1, "off", "tonic chord", 0.5, KEEP_PROGRAM, None)
    assert state2 == later


def test_a_refused_upload_left_in_the_box_does_not_block_continue(studio):
    hist = panels.initial_history()
    state, *_ = continue_ui(
        studio, hist, str(CORRUPT / "truncated.mid"), 1, 1.0, 1, 1, "off", "tonic chord", 0.5, KEEP_PROGRAM, None
    )
    assert state == hist


def test_api_variations_come_best_first_with_their_likelihood(studio):
    *_, info = API.continue_api(studio, example="Jig (6/8, MIDI)", bars=2, variations=5, seed=4, ending="tonic")
    vs = info["variations"]
    ended = [v["ended_as_asked"] for v in vs]
    assert ended == sorted(ended, reverse=True)  # those that end as asked first
    for flag in (True, False):
        scores = [v["log2p_per_note"] for v in vs if v["ended_as_asked"] is flag]
        assert scores == sorted(scores, reverse=True)  # then by the model's likelihood per note
    with pytest.raises(gr.Error, match="ending|End"):
        API.continue_api(studio, example="Jig (6/8, MIDI)", bars=1, variations=1, ending="subdominant")


def test_continue_uses_notes_typed_without_use_these_notes(studio):
    """On the Type tab, Continue reads what is typed there; the panel and the status say so."""
    hist = panels.initial_history()
    typed = "4/4 c4 d e f g2 g"
    state, info, _, run, status, *_ = continue_ui(studio, hist, None, 1, 1.0, 1, 2, "off", "free", 0.5,
                                                  KEEP_PROGRAM, None, mode="type", text=typed)
    assert state.current.origin == InputOrigin("text", typed) and "Typed notes" in info
    assert "Continued: Typed notes" in status
    assert run.result.primer == parse_text(typed).melody
    # read once: a second click continues the same entry, without pushing it again
    state2, *_ = continue_ui(studio, state, None, 1, 1.0, 1, 2, "off", "free", 0.5, KEEP_PROGRAM, None,
                             mode="type", text=typed)
    assert state2 == state
    # the Example tab shown again: the example picked there stays the input, whatever the text box holds
    state3, *_ = continue_ui(studio, hist, None, 1, 1.0, 1, 2, "off", "free", 0.5, KEEP_PROGRAM, None,
                             mode="example", text=typed)
    assert state3 == hist
    with pytest.raises(gr.Error, match="tinyNotation|ABC|notes"):  # unreadable typed notes are refused
        continue_ui(studio, hist, None, 1, 1.0, 1, 2, "off", "free", 0.5, KEEP_PROGRAM, None, mode="type",
                    text="4/4 zz9 !!")


def test_generates_shape_boxes_start_empty_and_empty_means_free(studio):
    """The optional settings are text boxes that start empty ("free"), so Generate works from a fresh
    page with any one of them set; a number box cannot be empty and showed 0, which was refused."""
    for name in ("notes_per_bar", "range_semitones"):
        box = FORMS["g"].widgets[name]
        assert isinstance(box, gr.Textbox) and box.value == "" and box.placeholder == "free"
    for shape in ({"key": "D minor"}, {"notes_per_bar": "4"}, {"range_semitones": "12"}, {"ends_on_tonic": True}):
        values = {"notes_per_bar": "", "range_semitones": "", "key": "any", "ends_on_tonic": False} | shape
        status = generate_ui(studio, 2, 1.0, 5, "4/4", 120, "bank", values["notes_per_bar"],
                             values["range_semitones"], values["key"], values["ends_on_tonic"], b"", None)[0]
        assert "**5**" in status
    req = FORMS["g"].request(_data(FORMS["g"], {}, notes_per_bar="", range_semitones=" ", key="D minor"))
    assert (req.notes_per_bar, req.range_semitones, req.attributes().key.name) == (None, None, "D minor")


def test_variation_labels_rank_in_words_and_the_status_has_the_figures(studio):
    run, status, slots = _slots(continue_ui(studio, panels.initial_history(), None, 1, 1.0, 4, 3, "off", "free", 0.5,
                                            KEEP_PROGRAM, None))
    labels = [slot[1]["label"] for slot in slots[:4]]
    assert all("bits" not in label and "-" not in label.split("·")[1] for label in labels)
    assert sorted(label.split("·")[1].strip() for label in labels) == [
        "2nd likeliest", "3rd likeliest", "4th likeliest", "likeliest"]
    for p in run.result.log2p_per_note:
        assert f"{p:.2f}" in status


def _sung(tmp_path) -> str:
    """Two bars in G major at 100 qpm, sung by the synthetic voice, as a WAV file."""
    from musicgen_app.melody import Key, Melody, Note
    from musicgen_app.training.audio_set import sing

    tune = Melody((Note(0, 67, 4), Note(4, 71, 2), Note(6, 74, 2), Note(8, 72, 4), Note(12, 71, 2), Note(14, 70, 2),
                   Note(16, 67, 4), Note(20, 62, 8)), qpm=100.0, key=Key(7, "major"), total_steps=32)
    path = tmp_path / "hum.wav"
    soundfile.write(path, sing(tune, 22050), 22050)
    return str(path)


def test_a_take_keeps_its_count_in_and_a_file_that_replaces_it_does_not(tmp_path):
    """The take recorded to the count-in is read with its downbeat; a file that then replaces it in the
    box without a new recording (an upload, or the take trimmed with the scissors: its start moved) is
    read without it, and says so."""
    import shutil

    hum = _sung(tmp_path)
    hist = panels.initial_history()
    hist, info, _, downbeat, take = panels.pick_recording(hum, 100, False, "4/4", "0.600", "1733400000000", hist)
    assert hist.current.origin.downbeat == 0.6 and (downbeat, take) == ("0.600", "")
    assert "count-in&#x27;s grid" in info and "not the take recorded" not in info
    trimmed = str(tmp_path / "trimmed.wav")
    shutil.copy(hum, trimmed)  # Gradio writes the trimmed take as a new file
    hist, info, _, downbeat, take = panels.pick_recording(trimmed, 100, False, "4/4", downbeat, take, hist)
    assert hist.current.origin.value == trimmed and hist.current.origin.downbeat is None
    assert (downbeat, take) == ("", "") and "not the take recorded to the count-in" in info
    assert len(hist.entries) == 3  # Undo goes back to the take as recorded


def test_a_recording_becomes_the_input_shows_what_was_heard_and_snaps_to_its_key(studio, tmp_path):
    hum = _sung(tmp_path)
    hist = panels.initial_history()
    hist, info, _, downbeat, take = panels.pick_recording(hum, 100, False, "4/4", "", "1", hist)
    assert (downbeat, take) == ("", "")  # the take is read: its box is emptied
    entry = hist.current
    assert entry.origin == InputOrigin("audio", hum, 100.0, False) and len(hist.entries) == 2
    assert "hum.wav" in info and "100 qpm" in info and "Transcribed" in info and "G major" in info
    assert entry.transcription is not None and not entry.transcription.qpm_estimated
    assert 70 in [n.pitch for n in entry.melody.notes]  # the B flat, outside G major
    assert panels.pick_recording(hum, 100, False, "4/4", "", "", hist)[0] is hist  # the same take is not read twice

    group, roll, played = panels.show_heard(studio, hist)
    assert group["visible"] and Path(roll).is_file() and soundfile.info(played).duration > 4
    assert panels.show_heard(studio, panels.initial_history())[0]["visible"] is False  # not a recording: hidden

    # snap to key reads the take again in place (Undo still goes back to the example)
    snapped, info, _ = panels.recording_setting(100, True, "4/4", hist)
    assert len(snapped.entries) == 2 and snapped.current.origin.snap
    assert 70 not in [n.pitch for n in snapped.current.melody.notes] and "Snapped 1 note to the scale" in info
    assert panels.recording_setting(100, True, "4/4", snapped)[0] is snapped
    assert panels.recording_setting(None, True, "4/4", panels.initial_history())[0].current.origin.kind == "example"
    with pytest.raises(gr.Error, match="outside 30-300"):
        panels.recording_setting(10, True, "4/4", snapped)


def test_continue_on_the_record_tab_uses_the_recording_it_shows(studio, tmp_path):
    hum = _sung(tmp_path)
    p = PANELS["c"]
    data = _data(FORMS["c"], _panel("c", panels.initial_history(), None, "record") |
                 {p.recording: hum, p.recording_qpm: None, p.snap: False}, bars=2, variations=1, seed=3)
    state, info, _, run, status, *_ = tab_continue.continue_ui(studio, FORMS["c"], p, data)
    assert state.current.origin == InputOrigin("audio", hum) and "Tempo estimated" in info
    assert run.melodies[0].notes[: len(state.current.melody.notes)] == state.current.melody.notes
    assert "Continued: hum.wav" in status


def test_the_api_reads_a_recording_at_the_tempo_given_or_estimates_it(studio, tmp_path):
    from musicgen_app.render import render

    wav = tmp_path / "played.wav"
    tune = parse_text("4/4 g4 b d' c' b a g2").melody
    soundfile.write(wav, render(tune, sample_rate=22050), 22050)
    _, _, _, info = API.continue_api(studio, str(wav), audio_qpm=100, bars=1, variations=1, seed=1)
    assert info["input"]["tempo_qpm"] == 100 and not any("estimated" in n for n in info["notices"])
    _, _, _, info = API.continue_api(studio, str(wav), bars=1, variations=1, seed=1)
    assert any("Tempo estimated" in n for n in info["notices"]), info["notices"]
    with pytest.raises(gr.Error, match="is not a number"):
        API.continue_api(studio, str(wav), audio_qpm="fast", bars=1, variations=1)
    _, _, _, info = API.interpolate_api(studio, a_file=str(wav), a_audio_qpm=100, b_file=str(wav), steps=3)
    assert info["clips"][0]["tempo_qpm"] == 100  # the morph plays at clip A's tempo
    assert sum("Tempo estimated" in n for n in info["notices"]) == 1  # clip B's, not A's
    # the meter it was played in (default 4/4)
    assert info["clips"][0]["time_signature"] == "4/4"
    _, _, _, info = API.continue_api(studio, str(wav), audio_qpm=100, audio_meter="3/4", bars=1, variations=1, seed=1)
    assert info["input"]["time_signature"] == "3/4"
    _, _, _, info = API.interpolate_api(studio, a_file=str(wav), a_audio_qpm=100, a_audio_meter="6/8",
                                        b_file=str(wav), b_audio_qpm=100, b_audio_meter="6/8", steps=3)
    assert {c["time_signature"] for c in info["clips"]} == {"6/8"}
    with pytest.raises(gr.Error, match="Time signature 'waltz' is not like 3/4 or 6/8"):
        API.continue_api(studio, str(wav), audio_qpm=100, audio_meter="waltz", bars=1, variations=1)


def test_the_api_puts_bar_1_of_a_recording_where_its_downbeat_is_given(studio, tmp_path):
    """A waltz played after a lead-in of silence, its pickup before bar 1: bar 1 is where audio_downbeat
    says, as with the page's count-in; a bad downbeat, or one without the tempo, is refused in our words."""
    from musicgen_app.melody import Key, Melody, Note
    from musicgen_app.render import render

    waltz = Melody((Note(0, 62, 4), Note(4, 67, 8), Note(12, 71, 4), Note(16, 74, 8), Note(24, 72, 4),
                    Note(28, 71, 12)), qpm=100.0, key=Key(7, "major"), time_signature=(3, 4), pickup_steps=4,
                   total_steps=40)
    sr, bar_one = 22050, 1.6  # the pickup (4 steps at 100 qpm: 0.6 s) starts 1.0 s in
    audio = np.concatenate([np.zeros(int(1.0 * sr), np.float32), render(waltz, sample_rate=sr)])
    wav = tmp_path / "lead-in.wav"
    soundfile.write(wav, audio, sr)
    _, _, _, info = API.continue_api(studio, str(wav), audio_qpm=100, audio_meter="3/4", audio_downbeat=str(bar_one),
                                     bars=1, variations=1, seed=1)
    assert info["input"]["pickup_steps"] == 4, info
    # told that bar 1 starts on the first note instead, it does: the downbeat given decides, not the notes
    _, _, _, info = API.continue_api(studio, str(wav), audio_qpm=100, audio_meter="3/4", audio_downbeat="1.0",
                                     bars=1, variations=1, seed=1)
    assert info["input"]["pickup_steps"] == 0, info
    # Interpolate takes clip A's bars from its bar 1 on: where that is moves what A is
    clip_a = [API.interpolate_api(studio, a_file=str(wav), a_audio_qpm=100, a_audio_meter="3/4",
                                  a_audio_downbeat=db, b_example=None, b_notes="3/4 g4 b d'", steps=3)[3]["clips"][0]
              for db in (bar_one, "1.0")]
    assert (clip_a[0]["notes"], clip_a[0]["range"]) != (clip_a[1]["notes"], clip_a[1]["range"]), clip_a
    with pytest.raises(gr.Error, match="Downbeat 'soon' is not a time in the recording"):
        API.continue_api(studio, str(wav), audio_qpm=100, audio_downbeat="soon", bars=1, variations=1)
    with pytest.raises(gr.Error, match="needs the tempo the recording was played at"):
        API.continue_api(studio, str(wav), audio_downbeat="1.6", bars=1, variations=1)


@pytest.mark.parametrize("bad, said", [
    (dict(seed=-5), "Seed -5 must be a whole number from 0"), (dict(seed="-1"), "Seed -1 must be"),
    (dict(track=1.5), "Track '1.5' is not a track number"), (dict(track=-1), "Track '-1' is not a track number"),
    (dict(notes="0/0 c4 d e f", example=None), "Time signature 0/0 is not supported"),
])
def test_a_negative_seed_a_fractional_track_and_a_zero_meter_are_refused_in_our_words(studio, bad, said):
    """Not silently made random or rounded, and no library text ("float division by zero")."""
    with pytest.raises(gr.Error) as err:
        API.continue_api(studio, **({"example": "Multitrack (bass, fiddle, drums)"} | bad))
    assert said in err.value.message and "division" not in err.value.message
