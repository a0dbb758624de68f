"""The command line (python -m musicgen_app) on the debug model."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

from musicgen_app.cli import main
from musicgen_app.io.examples import example_path

ROOT = Path(__file__).resolve().parent.parent
WALTZ = example_path("Waltz (3/4, MIDI)")
JIG = example_path("Jig (6/8, MIDI)")


def _meter(path):
    # the last one: a pickup bar gets its own short meter first (e.g. 1/8 before a 6/8 jig)
    ts = [m for t in mido.MidiFile(path).tracks for m in t if m.type == "time_signature"][-1]
    return ts.numerator, ts.denominator


def _bars(path):
    mid = mido.MidiFile(path)
    num, den = _meter(path)
    end = max(sum(m.time for m in t) for t in mid.tracks)
    return end / (mid.ticks_per_beat * 4 * num / den)


def test_continue_writes_the_requested_bars(tmp_path, capsys):
    out = tmp_path / "out.mid"
    assert main(["--debug-model", "continue", str(WALTZ), "--bars", "3", "--temperature", "0.9", "--seed", "4",
                 "--variations", "1", "--continuation-only", "-o", str(out)]) == 0
    assert _bars(out) == 3 and _meter(out) == (3, 4)
    assert "seed 4" in capsys.readouterr().out


def test_continue_variations_are_numbered_and_reproducible(tmp_path):
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    for out in (a, b):
        assert main(["--debug-model", "continue", str(JIG), "--bars", "2", "--variations", "2", "--seed", "9",
                     "-o", str(out)]) == 0
    for i in (1, 2):
        assert (tmp_path / f"a-{i}.mid").read_bytes() == (tmp_path / f"b-{i}.mid").read_bytes()
        assert _meter(tmp_path / f"a-{i}.mid") == (6, 8)


def test_interpolate_writes_the_morph_and_a_zip(tmp_path):
    out, z = tmp_path / "morph.mid", tmp_path / "steps.zip"
    assert main(["--debug-model", "interpolate", str(JIG), str(WALTZ), "--steps", "4", "-o", str(out),
                 "--zip", str(z)]) == 0
    assert len(zipfile.ZipFile(z).namelist()) == 4
    assert any(m.type == "note_on" for t in mido.MidiFile(out).tracks for m in t)


def test_generate_writes_n_files(tmp_path):
    assert main(["--debug-model", "generate", "-n", "3", "--time-signature", "6/8", "-o", str(tmp_path / "g")]) == 0
    files = sorted((tmp_path / "g").glob("*.mid"))
    assert len(files) == 3 and all(_meter(f) == (6, 8) for f in files)
    assert main(["--debug-model", "generate", "-n", "2", "--notes-per-bar", "2", "--key", "D minor", "--ends-on-tonic",
                 "-o", str(tmp_path / "shaped")]) == 0
    assert len(list((tmp_path / "shaped").glob("*.mid"))) == 2
    # 16 bars of 6/8, typed as the option's text
    assert main(["--debug-model", "generate", "-n", "1", "--bars", "16", "--time-signature", "6/8", "-o",
                 str(tmp_path / "long")]) == 0
    (long,) = (tmp_path / "long").glob("*.mid")
    assert round(mido.MidiFile(long).length / (60 / 120 * 3)) == 16  # a bar of 6/8: 3 quarters, 1.5 s at 120
    # more like these: learn the clips' style first (the jig and a copy of it: 6/8)
    like = tmp_path / "like"
    assert main(["--debug-model", "generate", "-n", "2", "--like", str(JIG), str(JIG), "-o", str(like)]) == 0
    assert all(_meter(f) == (6, 8) for f in like.glob("*.mid"))
    # shape controls belong to the corpus neighbourhood sampler
    assert main(["--debug-model", "generate", "--sampler", "gan", "--key", "minor", "-o", str(tmp_path / "x")]) == 2


def test_render_writes_audible_wav(tmp_path):
    out = tmp_path / "jig.wav"
    assert main(["render", str(JIG), "-o", str(out)]) == 0
    audio, sr = soundfile.read(out)
    assert sr == 44100 and np.abs(audio).max() > 0.1


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    assert main(["--debug-model", "continue", str(bad), "-o", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main(["--debug-model", "continue", str(WALTZ), "--bars", "99", "-o", str(tmp_path / "x.mid")]) == 2
    assert main(["--debug-model", "continue", str(WALTZ), "--stay-close", "2", "-o", str(tmp_path / "x.mid")]) == 2
    assert "Bars 99" in capsys.readouterr().err
    assert not (tmp_path / "x.mid").exists()


def test_module_entry_point_runs_as_a_subprocess(tmp_path):
    out = tmp_path / "o.mid"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "musicgen_app", "--debug-model", "continue", str(WALTZ),
                           "--bars", "1", "--variations", "1", "-o", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and (tmp_path / "o-continuation.mid").is_file() and "seed" in proc.stdout


def test_a_recording_is_read_at_the_tempo_and_meter_given(tmp_path):
    from musicgen_app.io.importer import load_melody, parse_text
    from musicgen_app.render import render

    wav = tmp_path / "played.wav"
    soundfile.write(wav, render(parse_text("3/4 g4 b d' c' b a g2.").melody, sample_rate=22050), 22050)
    out = tmp_path / "more.mid"
    assert main(["--debug-model", "--input-qpm", "100", "--input-meter", "3/4", "continue", str(wav), "-o", str(out),
                 "--bars", "1", "--variations", "1"]) == 0
    assert _meter(out) == (3, 4)
    with pytest.raises(SystemExit) as refused:  # a usage error, as argparse reports them
        main(["--input-meter", "waltz", "render", str(wav), "-o", str(tmp_path / "x.wav")])
    assert refused.value.code == 2
    # bar 1 where the musician says it starts: the first note (a beat before) becomes a pickup
    assert main(["--debug-model", "--input-qpm", "100", "--input-meter", "3/4", "--input-downbeat", "0.6", "continue",
                 str(wav), "-o", str(out), "--bars", "1", "--variations", "1"]) == 0
    assert load_melody(out).melody.pickup_steps == 4
    assert main(["--input-qpm", "100", "--input-downbeat", "soon", "render", str(wav), "-o",
                 str(tmp_path / "x.wav")]) == 2
