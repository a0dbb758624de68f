"""End to end: the real app (app.py, real checkpoints) in a subprocess, called through gradio_client.

Skipped when checkpoints/lstm.safetensors or checkpoints/vae.safetensors is missing (set
MUSICGEN_E2E_ALLOW_DEBUG=1 to run these against the debug model instead, e.g. while they train).
"""

from __future__ import annotations

import glob
import os
import tempfile
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from musicgen_app.io.examples import example_path
from musicgen_app.io.importer import load_melody

pytest_plugins = ["conftest_app"]
pytestmark = pytest.mark.e2e

CORRUPT = os.path.join(os.path.dirname(__file__), "data", "corrupt", "truncated.mid")
ALLOW_DEBUG = os.environ.get("MUSICGEN_E2E_ALLOW_DEBUG") == "1"


@pytest.fixture(scope="module")
def client(request):
    from conftest_app import real_checkpoints

    if not real_checkpoints() and not ALLOW_DEBUG:
        pytest.skip("checkpoints/lstm.safetensors and checkpoints/vae.safetensors are not there yet "
                    "(train them with `make train`)")
    server = request.getfixturevalue("app_server")
    if not server.real and not ALLOW_DEBUG:
        pytest.skip("the shared app runs the debug model (MUSICGEN_TEST_DEBUG_MODEL=1)")
    return Client(server.url, verbose=False)


def _meta(path):
    mid = mido.MidiFile(path)
    msgs = [m for t in mid.tracks for m in t]
    sigs = [(m.numerator, m.denominator) for m in msgs if m.type == "time_signature"]
    tempi = {round(mido.tempo2bpm(m.tempo), 3) for m in msgs if m.type == "set_tempo"}
    end = max(sum(m.time for m in t) for t in mid.tracks)
    num, den = sigs[-1]
    notes = sum(1 for m in msgs if m.type == "note_on" and m.velocity > 0)
    return sigs[-1], tempi, end / (mid.ticks_per_beat * 4 * num / den), notes


def _audible(path) -> bool:
    audio, sr = soundfile.read(path)
    return sr > 0 and len(audio) > sr and float(np.sqrt(np.mean(np.square(audio)))) > 0.01


@pytest.mark.parametrize("example,meter", [("Waltz (3/4, MIDI)", (3, 4)), ("Jig (6/8, MIDI)", (6, 8))])
def test_continue_keeps_meter_and_tempo_and_writes_the_requested_bars(client, example, meter):
    path = example_path(example)
    source = load_melody(path).melody
    midi, cont, audio, info = client.predict(melody_file=handle_file(str(path)), bars=4, temperature=0.9,
                                             variations=2, seed=42, api_name="/continue")
    assert len(midi) == len(cont) == len(audio) == 2 and info["seed"] == 42
    for whole_path, cont_path, wav in zip(midi, cont, audio):
        sig, tempi, bars, notes = _meta(cont_path)
        assert sig == meter and tempi == {round(source.qpm, 3)}
        assert bars == pytest.approx(4) and notes > 0
        sig, tempi, bars, notes = _meta(whole_path)
        assert sig == meter and tempi == {round(source.qpm, 3)}
        assert notes > len(source.notes)
        assert _audible(wav)


def test_continue_from_typed_notes_and_example_name(client):
    *_, info = client.predict(notes="4/4 c4 d e f g2 g", bars=2, variations=1, api_name="/continue")
    assert info["input"]["notes"] == 6 and info["variations"][0]["bars"] >= 2
    *_, info = client.predict(example="Multitrack (bass, fiddle, drums)", bars=1, variations=1,
                              api_name="/continue")
    assert info["track"] == 1


def test_interpolate_writes_a_morph_and_a_zip_of_steps(client):
    a, b = example_path("Jig (6/8, MIDI)"), example_path("Multitrack (bass, fiddle, drums)")
    morph, zipped, wav, info = client.predict(a_file=handle_file(str(a)), b_file=handle_file(str(b)), steps=5,
                                              temperature=0.0, seed=1, api_name="/interpolate")
    sig, tempi, bars, notes = _meta(morph)
    assert sig == (6, 8) and notes > 0 and len(info["clips"]) == 5
    assert bars == pytest.approx(sum(c["bars"] for c in info["clips"]))
    with zipfile.ZipFile(zipped) as zf:
        assert len(zf.namelist()) == 5
    assert _audible(wav)


def test_generate_gives_n_melodies_with_audio(client):
    midi, zipped, audio, info = client.predict(count=3, temperature=1.0, seed=5, time_signature="3/4", qpm=90,
                                               api_name="/generate")
    assert len(midi) == len(audio) == 3 and info["seed"] == 5
    for m, wav in zip(midi, audio):
        sig, tempi, bars, notes = _meta(m)
        assert sig == (3, 4) and tempi == {90.0} and notes > 0
        assert _audible(wav)
    assert len(zipfile.ZipFile(zipped).namelist()) == 3


def test_without_render_audio_the_api_writes_no_audio_and_the_same_midi(client, app_server):
    store = next(Path(p).parent for p in glob.glob(os.path.join(tempfile.gettempdir(), "musicgen-*", "owner.pid"))
                 if Path(p).read_text().strip() == str(app_server.process.pid) and (Path(p).parent / "out").is_dir())
    out = store / "out"
    before = set(out.iterdir()) if out.exists() else set()
    args = {"notes": "4/4 c4 d e f g2 g", "bars": 2, "variations": 2, "seed": 3}
    midi, cont, audio, info = client.predict(**args, render_audio=False, api_name="/continue")
    morph, _, wav, _ = client.predict(a_notes="4/4 c4 d e f", b_notes="4/4 g4 f e d", steps=3, seed=1,
                                      render_audio=False, api_name="/interpolate")
    midis, _, wavs, _ = client.predict(count=2, seed=5, render_audio=False, api_name="/generate")
    assert audio == [] and wav is None and wavs == [] and len(midis) == 2
    written = [f for d in set(out.iterdir()) - before for f in d.iterdir()]
    assert written and not [f for f in written if f.suffix == ".wav"]  # nothing rendered behind the caller's back
    with_audio = client.predict(**args, api_name="/continue")
    assert len(with_audio[2]) == 2
    assert [Path(m).read_bytes() for m in midi] == [Path(m).read_bytes() for m in with_audio[0]]
    with pytest.raises(AppError, match="render_audio .loud. must be true or false"):
        client.predict(**args, render_audio="loud", api_name="/continue")


def test_a_corrupt_upload_is_an_error_with_our_message(client):
    with pytest.raises(AppError, match="(?i)damaged|cut short|corrupt|cannot be read"):
        client.predict(melody_file=handle_file(CORRUPT), bars=2, api_name="/continue")
    *_, info = client.predict(example="Folk tune (2/4, ABC)", bars=1, variations=1, api_name="/continue")
    assert info["seed"] >= 0  # the server is fine afterwards


def test_the_readme_api_example_runs_as_written(client, app_server, monkeypatch):
    # The README promises a Python example that runs: execute its code block against this server.
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = re.search(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S).group(1)
    code = code.replace("http://127.0.0.1:7860/", app_server.url)
    monkeypatch.chdir(root)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert len(scope["midis"]) == 4 and all(os.path.exists(p) for p in scope["midis"] + scope["wavs"])
    assert len(scope["melody_mids"]) == 8 and os.path.exists(scope["morph_mid"])
