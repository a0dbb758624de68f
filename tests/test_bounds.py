"""No small file can hog the studio: crafted inputs meet a budget and a clear message.

Budgets are enforced by the code (a child process killed past its time, a memory cap, caps on notes,
bars and audio seconds); these tests check that the budget is applied, not how fast a machine is.
How long the crafted files take is printed by ``bench/bench_bounds.py``.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import gradio as gr
import mido
import numpy as np
import pytest

from musicgen_app import render
from musicgen_app.actions import tempfiles
from musicgen_app.actions.tempfiles import OWNER_FILE, StoreFull, TempStore, remove_stale_stores, request_scope
from musicgen_app.errors import ParseBudgetError, RequestError
from musicgen_app.io import sandbox
from musicgen_app.io.importer import load_melody, parse_text
from musicgen_app.io.midi import MAX_NOTES
from musicgen_app.io.sandbox import ShuttingDown
from musicgen_app.io.score import melody_to_musicxml
from musicgen_app.melody import Melody, Note
from musicgen_app.service import MelodyService, SampleRequest
from musicgen_app.web.refusals import user_errors

ROOT = Path(__file__).resolve().parent.parent
TUNE = "X:1\nT:Reel\nM:4/4\nL:1/8\nK:D\n" + "|:DFAF dFAF|GBdB gBdB|AcEc AcEc|dfaf d2 d2:|\n"


def many_notes_midi(n: int, ticks: int = 60) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for i in range(n):
        track.append(mido.Message("note_on", note=60 + i % 12, velocity=80, time=0))
        track.append(mido.Message("note_off", note=60 + i % 12, velocity=0, time=ticks))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def test_a_slow_parse_is_stopped_at_its_time_budget(monkeypatch):
    monkeypatch.setattr(sandbox, "TIME_BUDGET_SECONDS", 0.5)
    huge = TUNE + "".join(f"X:{i}\nT:t\nM:4/4\nL:1/8\nK:G\n" + "GABc dedB|" * 40 + "\n" for i in range(2, 400))
    with pytest.raises(ParseBudgetError, match=r"longer than 0\.5 s"):
        parse_text(huge)
    assert parse_text("4/4 c4 d e f").melody.notes  # the next parse works


def test_a_parse_that_eats_memory_is_stopped():
    with pytest.raises(ParseBudgetError, match="more than 256 MB"):
        sandbox.run_bounded(bytearray, 2**31, memory=256 * 2**20)


def test_a_small_mxl_holding_megabytes_of_musicxml_is_stopped(monkeypatch):
    monkeypatch.setattr(sandbox, "TIME_BUDGET_SECONDS", 1.0)
    one = melody_to_musicxml(Melody(notes=tuple(Note(2 * i, 60 + i % 7, 2) for i in range(8)), total_steps=16))
    head, rest = one.split(b"<measure", 1)
    measure, tail = (b"<measure" + rest).split(b"</part>", 1)
    xml = head + measure * 2500 + b"</part>" + tail  # megabytes, and music21 reads every measure
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/container.xml", '<container><rootfiles><rootfile full-path="score.xml"/>'
                                              "</rootfiles></container>")
        zf.writestr("score.xml", xml)
    assert len(xml) > 2_000_000 and len(buf.getvalue()) < 200_000
    with pytest.raises(ParseBudgetError, match="longer than 1 s"):
        load_melody(buf.getvalue(), filename="small.mxl")


def test_a_midi_with_many_notes_is_trimmed_to_64_bars_and_capped():
    r = load_melody(many_notes_midi(MAX_NOTES + 5000), filename="flood.mid")
    assert r.melody.num_bars <= 64
    assert any("kept the first 64" in n for n in r.notices)
    assert any(f"more than {MAX_NOTES:,} notes" in n for n in r.notices)


def test_a_tiny_midi_asking_for_hours_of_audio_renders_at_most_the_cap():
    # one 64-bar note of 8/2 at 10 qpm: 102 minutes
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track += [mido.MetaMessage("time_signature", numerator=8, denominator=2),
              mido.MetaMessage("set_tempo", tempo=6_000_000), mido.Message("note_on", note=60, velocity=90, time=0),
              mido.Message("note_off", note=60, velocity=0, time=480 * 16 * 64)]
    buf = io.BytesIO()
    mid.save(file=buf)
    assert len(buf.getvalue()) < 100
    m = load_melody(buf.getvalue(), filename="long.mid").melody
    assert m.duration_seconds > 3600
    audio = render.render(m)
    assert len(audio) <= (render.MAX_AUDIO_SECONDS + render.TAIL_SECONDS) * render.SAMPLE_RATE + 64
    assert "MIDI file has all of it" in render.audio_cut(m)


def test_the_input_audio_cache_is_bounded_in_bytes():
    cache = render._AudioCache(max_bytes=3 * 4000)
    for i in range(10):
        cache.get(i, lambda: np.zeros(1000, np.float32))
    assert len(cache._items) == 3 and list(cache._items) == [7, 8, 9]


def test_generate_refuses_a_meter_longer_than_the_model_window():
    svc = MelodyService.debug()
    with pytest.raises(RequestError, match="9/2"):
        svc.sample(SampleRequest(count=1, seed=1, time_signature=(9, 2)))


def test_the_store_is_bounded_by_age_and_size(tmp_path):
    store = TempStore(tmp_path / "s", max_age=3600, max_bytes=10_000, remove_at_exit=False, protect=60, reserve=0)
    folders = []
    for i in range(5):  # written unasked (as Gradio writes its uploads): only a sweep can bound them
        d = store.out / f"continue-{i}"
        d.mkdir()
        (d / "a.wav").write_bytes(bytes(4000))
        os.utime(d, (time.time() - 1000 + i, time.time() - 1000 + i))
        folders.append(d)
    assert store.sweep(force=True) == 3  # 20 kB over a 10 kB cap: the three oldest go
    assert [d.exists() for d in folders] == [False, False, False, True, True]
    os.utime(folders[3], (time.time() - 7200, time.time() - 7200))
    assert store.sweep(force=True) == 1 and not folders[3].exists() and folders[4].exists()


def test_a_settled_folder_is_not_counted_again_until_a_file_comes_or_goes(tmp_path, monkeypatch):
    """The census remembers a request folder's size once no file has come or gone for a while,
    and counts it again when one does; a folder still being written is always counted."""
    store = TempStore(tmp_path / "s", max_bytes=10**9, remove_at_exit=False, reserve=0)
    settled, fresh = store.out / "continue-1", store.out / "continue-2"
    for d in (settled, fresh):
        d.mkdir()
        (d / "a.wav").write_bytes(bytes(4000))
    os.utime(settled, (time.time() - 60, time.time() - 60))
    counted, real_size = [], tempfiles._size
    monkeypatch.setattr(tempfiles, "_size", lambda folder: counted.append(folder.name) or real_size(folder))
    assert store._census()[1] == 8000 and sorted(counted) == ["continue-1", "continue-2"]
    counted.clear()
    (fresh / "a.wav").write_bytes(bytes(6000))  # a file still growing in a folder just made
    assert store._census()[1] == 10000 and counted == ["continue-2"]
    counted.clear()
    (settled / "b.png").write_bytes(bytes(500))  # a new file: the folder's mtime moves
    assert store._census()[1] == 10500 and sorted(counted) == ["continue-1", "continue-2"]


def test_the_cap_is_hard_and_never_removes_live_results(tmp_path):
    """Room is reserved before writing; a full store refuses, and keeps results just made or in flight."""
    store = TempStore(tmp_path / "s", max_bytes=10_000, remove_at_exit=False, protect=60, reserve=4000)
    store.wait = 0.2
    with request_scope():
        mine = store.request_dir("continue")  # in flight: 4000 bytes held for it
        with store.reserved(4000), pytest.raises(StoreFull, match="full"):  # and an upload in flight
            store.request_dir("continue")  # 4000 + 4000 + 4000 > 10000, for longer than it waits
        (mine / "a.wav").write_bytes(bytes(2500))
        got = []
        waiting = threading.Thread(target=lambda: got.append(store.request_dir("continue")))  # waits for room ...
        with store.reserved(4000):
            waiting.start()
            time.sleep(0.05)
            assert not got
        waiting.join()
        assert got and got[0].is_dir()  # ... and gets it once the upload is done
    just_made = store.request_dir("continue")  # no scope: checked, not held
    (just_made / "a.wav").write_bytes(bytes(5000))
    with pytest.raises(StoreFull, match="in the last 60 seconds"):  # 7500 on disk, both live
        store.request_dir("continue")
    assert mine.exists() and just_made.exists() and store.size() <= 10_000
    old = time.time() - 120  # past the protection: now they may go, oldest first
    os.utime(mine, (old, old))
    assert store.request_dir("continue").is_dir() and not mine.exists() and just_made.exists()


def test_a_request_reserves_what_it_will_write_so_sixteen_fit_in_the_default_cap(tmp_path):
    from musicgen_app.actions.tempfiles import FILES_BYTES, MAX_BYTES, audio_bytes
    from musicgen_app.melody import Melody, Note

    # Continue 8 bars x 4 variations of a 4-bar 4/4 tune at 120 qpm: four 12-bar (24 s) WAVs
    whole = Melody(notes=(Note(0, 60, 4),), total_steps=12 * 16, qpm=120)
    need = audio_bytes(*[whole] * 4)
    assert need == int(4 * (24 + render.TAIL_SECONDS) * render.SAMPLE_RATE * 2) + FILES_BYTES
    store = TempStore(tmp_path / "s", max_bytes=MAX_BYTES, remove_at_exit=False)
    store.wait = 0
    with request_scope():
        for _ in range(16):
            store.request_dir("continue", need)
        assert sum(n for n, _ in store._reserved.values()) == 16 * need <= MAX_BYTES
    # a request that cannot say what it writes holds the most any request writes, and no estimate more
    with request_scope():
        store.request_dir("continue", 10**12)
        assert [n for n, _ in store._reserved.values()] == [store.reserve]


def test_a_closed_store_refuses_and_removes_its_owner_last(tmp_path):
    store = TempStore(tmp_path / "s", remove_at_exit=False)
    (store.request_dir("x") / "f.wav").write_bytes(b"0")
    assert (store.root / OWNER_FILE).is_file() and store.private == [str(store.root / OWNER_FILE)]  # not served
    store.close()
    assert not store.root.exists()
    with pytest.raises(ShuttingDown):
        store.request_dir("x")


def test_a_request_has_one_parse_budget_for_all_its_files(monkeypatch):
    monkeypatch.setattr(sandbox, "REQUEST_BUDGET_SECONDS", 1.0)
    assert sandbox.run_bounded(time.sleep, 0.6) is None and sandbox.run_bounded(time.sleep, 0.6) is None  # no request

    @user_errors
    def handler():  # every handler of the page, the API and the MCP tools is wrapped so
        for _ in range(3):  # each parse is well within its own 6 s
            sandbox.run_bounded(time.sleep, 0.6)

    with pytest.raises(gr.Error, match=r"longer than 1 s in all"):
        handler()
    assert sandbox.run_bounded(abs, -2) == 2  # the next request has its own


def test_a_parse_ended_by_a_signal_is_not_called_too_big():
    """SIGTERM to the process group (a stopping server) ends the parse: said so, not "needs more than 1024 MB"."""
    said = []

    def parse():
        try:
            sandbox.run_bounded(time.sleep, 30)
        except ParseBudgetError as exc:
            said.append(str(exc))
        except ShuttingDown as exc:
            said.append(str(exc))

    sandbox.warm_up()
    before = set(_descendants(os.getpid()))
    thread = threading.Thread(target=parse)
    thread.start()
    deadline = time.monotonic() + 10
    while not (child := set(_descendants(os.getpid())) - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    for pid in child:
        os.kill(pid, signal.SIGTERM)
    thread.join(timeout=10)
    assert said and "shutting down" in said[0] and "MB" not in said[0], said


def test_the_parser_processes_die_with_a_server_killed_with_sigkill():
    code = ("import threading, time; from musicgen_app.io import sandbox; sandbox.warm_up();"
            "threading.Thread(target=sandbox.run_bounded, args=(time.sleep, 60), daemon=True).start();"
            "time.sleep(1); print('ready', flush=True); time.sleep(60)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        # libraries may print a line first (pyfluidsynth says where it found libfluidsynth)
        lines = []
        while len(lines) < 20 and (line := proc.stdout.readline()):  # "" only at the end of the output
            lines.append(line.strip())
            if lines[-1] == "ready":
                break
        assert lines and lines[-1] == "ready", lines
        family = _descendants(proc.pid)
        assert len(family) >= 2  # the forkserver and the parse (and the resource tracker)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while [p for p in family if _alive(p)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in family if _alive(p)], "a parser process outlived the server"
    finally:
        proc.kill()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout
        found += [int(p) for p in out.split()]
        todo += [int(p) for p in out.split()]
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has died
    except FileNotFoundError:
        return False


def test_a_kept_folder_outlives_the_age_limit_and_only_store_folders_are_kept(tmp_path):
    store = TempStore(tmp_path / "s", max_age=3600, max_bytes=10**9, remove_at_exit=False)
    shown, closed = store.request_dir("continue"), store.request_dir("continue")
    for d in (shown, closed):
        (d / "a.wav").write_bytes(bytes(100))
        for path in (d / "a.wav", d):
            os.utime(path, (time.time() - 7000, time.time() - 7000))
    assert store.keep(shown)  # an open page still shows it
    assert time.time() - (shown / "a.wav").stat().st_ctime < 60  # Gradio's cache ages files by ctime
    assert store.sweep(force=True) == 1 and shown.exists() and not closed.exists()
    assert not store.keep(closed)  # gone: the page is told
    assert not store.keep(tmp_path) and not store.keep(store.root) and not store.keep("/etc")


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for name, pid in (("musicgen-dead", int(dead.stdout)), ("musicgen-live", os.getpid())):
        (tmp_path / name).mkdir()
        (tmp_path / name / OWNER_FILE).write_text(str(pid))
    (tmp_path / "musicgen-foreign").mkdir()  # no owner file: not ours to judge
    assert remove_stale_stores(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["musicgen-foreign", "musicgen-live"]


def test_sigterm_removes_the_app_temp_folder(tmp_path):
    code = ("import os, signal, sys, time; from musicgen_app.actions.tempfiles import TempStore;"
            "s = TempStore(); signal.signal(signal.SIGTERM, lambda *_: sys.exit(0));"
            "(s.request_dir('x') / 'f.wav').write_bytes(b'0' * 1000); print(s.root, flush=True); time.sleep(60)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    root = Path(proc.stdout.readline().strip())
    assert root.is_dir()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert not root.exists()
