"""Real FluidSynth audio from real SoundFonts (TimGM6mb for speed; one test on the default font)."""

from __future__ import annotations

import io
import shutil
import threading

import numpy as np
import pytest
import soundfile

from musicgen_app import render
from musicgen_app.errors import RenderError
from musicgen_app.io.examples import example_path
from musicgen_app.io.importer import load_melody
from musicgen_app.melody import Melody, Note
from musicgen_app.service import ContinueRequest, MelodyService

SR = 22050
SMALL_FONT = "TimGM6mb"  # ships with pretty_midi, loads in ~30 ms


def scale_melody(program: int = 0, qpm: float = 120.0) -> Melody:
    """C major scale up and down in eighth notes, with a rest and a held last note (4 s at 120)."""
    pitches = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62]
    notes = [Note(i * 2, p, 2, 70 + i * 3) for i, p in enumerate(pitches)]
    notes.append(Note(30, 60, 2))
    return Melody(tuple(notes), total_steps=32, qpm=qpm, program=program)


def spectrum(audio: np.ndarray) -> np.ndarray:
    mag = np.abs(np.fft.rfft(audio[: SR * 2]))
    return mag / np.linalg.norm(mag)


@pytest.fixture(autouse=True)
def no_cached_notes():
    """Every test here synthesises its notes, rather than summing notes an earlier test left."""
    render._NOTES._items.clear()


def played_whole(melody: Melody, program: int | None = None) -> np.ndarray:
    """FluidSynth playing the melody's note-ons and -offs in time, all on one synth, as the
    renderer did before it summed notes played alone: the reference for the sum. Unnormalised."""
    path = render.soundfont_path(SMALL_FONT)
    sec = melody.seconds_per_step
    events = sorted([(round(n.start * sec * SR), 1, n.pitch, n.velocity) for n in melody.notes]
                    + [(round(n.end * sec * SR), 0, n.pitch, 0) for n in melody.notes])
    stereo = np.zeros((round((melody.duration_seconds + render.TAIL_SECONDS) * SR), 2), np.float32)
    with render._free_synth(path, SR) as font:
        font.align()
        font.prime()
        font.synth.program_select(0, font.sfid, 0, melody.program if program is None else program)
        pos = 0
        for sample, is_on, pitch, velocity in events:
            if sample > pos:
                font.write(stereo[pos:sample])
                pos = sample
            font.synth.noteon(0, pitch, velocity) if is_on else font.synth.noteoff(0, pitch)
        font.write(stereo[pos:])
    audio = (stereo[:, 0] + stereo[:, 1]) * np.float32(0.5)
    fade = int(render._FADE_SECONDS * SR)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return audio


def repeats_and_overlapping_releases() -> Melody:
    """Repeated pitches (a release still ringing under the same key), 16ths at an odd tempo, a note
    too short to last a block, a rest, and a last note cut by the tail."""
    notes = [Note(0, 60, 1), Note(1, 60, 1), Note(2, 60, 2), Note(4, 67, 1, 30), Note(5, 72, 3, 127),
             Note(10, 60, 6), Note(16, 48, 1), Note(17, 84, 1), Note(18, 84, 14, 90)]
    return Melody(tuple(notes), total_steps=32, qpm=97.0)


@pytest.mark.parametrize("melody, program, within_db", [
    (scale_melody(), 0, -110), (repeats_and_overlapping_releases(), 0, -110), (scale_melody(qpm=233.0), 73, -110),
    # a string pad: FluidSynth's reused voice slots carry a trace of their last note into a new one
    # (why _FontSynth.prime exists); a note played alone starts from primed slots every time.
    # Measured on 48 random melodies: piano, flute, guitar, violin -115 dB or less; strings -64, choir -57.
    (repeats_and_overlapping_releases(), 48, -50),
], ids=["scale-piano", "repeats-piano", "fast-flute", "repeats-strings"])
def test_summed_notes_sound_as_fluidsynth_playing_the_melody_whole(melody, program, within_db):
    got = render.render(melody, SMALL_FONT, sample_rate=SR, program=program, normalize=False)
    want = played_whole(melody, program)
    assert len(got) == len(want) and np.abs(want).max() > 0.01
    worst = np.abs(got - want).max() / np.abs(want).max()
    assert worst <= 10 ** (within_db / 20), f"{20 * np.log10(worst):.0f} dB under the peak"


def test_each_distinct_note_is_synthesised_once(monkeypatch):
    played = []
    note_audio = render._note_audio
    monkeypatch.setattr(render, "_note_audio", lambda *key: played.append(key[3:]) or note_audio(*key))
    melody = scale_melody()
    first = render.render(melody, SMALL_FONT, sample_rate=SR)
    distinct = {(n.pitch, n.velocity) for n in melody.notes}
    assert len(played) == len(distinct) == 15
    np.testing.assert_array_equal(render.render(melody, SMALL_FONT, sample_rate=SR), first)
    assert len(played) == 15  # all from the cache
    render.render(melody.replace(qpm=90.0), SMALL_FONT, sample_rate=SR)  # longer notes: new audio
    render.render(melody, SMALL_FONT, sample_rate=SR, program=73)  # another instrument: new audio
    assert len(played) == 45
    tail = Melody(melody.notes[-3:], total_steps=32, qpm=melody.qpm)
    render.render(tail, SMALL_FONT, sample_rate=SR)  # a melody sharing notes plays none again
    assert len(played) == 45


@pytest.fixture
def fonts_dir(tmp_path, monkeypatch):
    folder = tmp_path / "soundfonts"
    folder.mkdir()
    monkeypatch.setenv(render.SOUNDFONTS_ENV, str(folder))
    return folder


def test_audio_is_audible_and_as_long_as_the_melody():
    melody = scale_melody()
    audio = render.render(melody, SMALL_FONT, sample_rate=SR)
    assert audio.dtype == np.float32 and audio.ndim == 1
    expected = melody.duration_seconds + render.TAIL_SECONDS
    assert len(audio) / SR == pytest.approx(expected, rel=0.05)
    assert np.sqrt(np.mean(audio ** 2)) > 0.05
    assert np.max(np.abs(audio)) == pytest.approx(10 ** (render.PEAK_DBFS / 20), rel=1e-3)


def test_sound_starts_at_the_first_note_not_before():
    melody = Melody((Note(8, 67, 4),), total_steps=16)  # one second of rest first at 120 qpm
    audio = render.render(melody, SMALL_FONT, sample_rate=SR)
    onset = int(8 * melody.seconds_per_step * SR)
    assert np.max(np.abs(audio[: onset - 128])) == 0.0
    assert np.max(np.abs(audio[onset: onset + SR // 10])) > 0.1


def test_default_soundfont_renders():
    audio = render.render(scale_melody(), sample_rate=SR)
    assert np.sqrt(np.mean(audio ** 2)) > 0.05


def test_two_renders_of_one_melody_are_identical():
    melody = scale_melody()
    first = render.render(melody, SMALL_FONT, sample_rate=SR)
    second = render.render(melody, SMALL_FONT, sample_rate=SR)
    np.testing.assert_array_equal(first, second)


def test_other_renders_in_between_leave_no_trace():
    melody = scale_melody()
    first = render.render(melody, SMALL_FONT, sample_rate=SR)
    # A string pad whose release outlasts the tail, so voices are still ringing when it returns.
    render.render(Melody((Note(0, 40, 8, 127),), total_steps=8), SMALL_FONT, sample_rate=SR, program=48)
    render._NOTES._items.clear()  # played again, not summed from the cache
    again = render.render(melody, SMALL_FONT, sample_rate=SR)
    np.testing.assert_array_equal(again, first)  # each note played alone after the priming chord


def test_silent_melody_gives_zeros():
    melody = Melody((), total_steps=16)
    audio = render.render(melody, SMALL_FONT, sample_rate=SR)
    assert len(audio) == round((melody.duration_seconds + render.TAIL_SECONDS) * SR)
    assert not np.any(audio)


def test_program_changes_the_sound():
    melody = scale_melody()
    piano = render.render(melody, SMALL_FONT, sample_rate=SR)
    flute = render.render(melody, SMALL_FONT, sample_rate=SR, program=73)
    from_melody = render.render(melody.replace(program=73), SMALL_FONT, sample_rate=SR)
    assert float(spectrum(piano) @ spectrum(flute)) < 0.9
    np.testing.assert_array_equal(flute, from_melody)


def test_concurrent_renders_match_serial_ones():
    jobs = [(scale_melody(program=p, qpm=q), p) for p, q in ((0, 120), (73, 90), (40, 140), (24, 100))]
    serial = [render.render(m, SMALL_FONT, sample_rate=SR) for m, _ in jobs]
    render._NOTES._items.clear()
    results: list = [None] * len(jobs)

    def work(i):
        for _ in range(3):
            results[i] = render.render(jobs[i][0], SMALL_FONT, sample_rate=SR)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_overlapping_renders_each_get_a_synth_of_their_own(monkeypatch):
    """Two renders at once run on two synths of the font (not one after the other behind one lock),
    and each sounds as it does alone; a third waits for one to come free."""
    monkeypatch.setattr(render, "SYNTHS_PER_FONT", 2)
    melody = scale_melody(qpm=60)
    alone = render.render(melody, SMALL_FONT, sample_rate=SR)
    path = render.soundfont_path(SMALL_FONT)
    with render._free_synth(path, SR) as first, render._free_synth(path, SR) as second:
        assert first is not second and first.lock.locked() and second.lock.locked()
        done = threading.Event()
        render._NOTES._items.clear()  # so it needs a synth
        waiting = threading.Thread(target=lambda: (render.render(melody, SMALL_FONT, sample_rate=SR), done.set()))
        waiting.start()
        assert not done.wait(0.3)  # both synths held: the third render waits
    waiting.join(10)
    assert done.is_set()
    assert len(render._synths[(path.resolve(), SR)]) == 2
    render._NOTES._items.clear()
    results = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, render.render(melody, SMALL_FONT,
                                                                                       sample_rate=SR)))
               for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-6)


def test_a_clicks_melodies_render_side_by_side_in_order(monkeypatch):
    """render.each runs two renders at once with two synths (each waits at a barrier for the other:
    one after another would break it), keeps the order, sounds as alone, and raises a melody's error."""
    monkeypatch.setattr(render, "SYNTHS_PER_FONT", 2)
    melodies = [scale_melody(qpm=q) for q in (60, 90, 120, 150)]
    alone = [render.render(m, SMALL_FONT, sample_rate=SR) for m in melodies]
    together = threading.Barrier(2, timeout=20)

    def both_at_once(m):
        together.wait()
        return render.render(m, SMALL_FONT, sample_rate=SR)

    render._NOTES._items.clear()
    for got, want in zip(render.each(both_at_once, melodies), alone, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # a worker that asks for more renders gets them inline, not queued behind itself
    nested = render.each(lambda m: render.each(lambda n: render.render(n, SMALL_FONT, sample_rate=SR), [m, m]),
                         melodies[:2])
    np.testing.assert_allclose(nested[1][1], alone[1], rtol=0, atol=1e-6)
    with pytest.raises(RenderError, match="outside 0-127"):
        render.each(lambda m: render.render(m, SMALL_FONT, sample_rate=SR, program=m.qpm > 100 and 300 or 0),
                    melodies)


def test_dropped_soundfont_is_listed_and_renders(fonts_dir):
    shutil.copy(render.list_soundfonts()[SMALL_FONT], fonts_dir / "MyPiano.sf2")
    fonts = render.list_soundfonts()
    assert fonts["MyPiano"] == fonts_dir / "MyPiano.sf2"
    assert render.default_soundfont() in fonts
    audio = render.render(scale_melody(), "MyPiano", sample_rate=SR)
    assert np.sqrt(np.mean(audio ** 2)) > 0.05


def test_unknown_soundfont_names_the_choices(fonts_dir):
    with pytest.raises(RenderError, match=r"'NoSuchFont'.*TimGM6mb"):
        render.render(scale_melody(), "NoSuchFont")


def test_corrupt_soundfont_is_a_render_error(fonts_dir):
    (fonts_dir / "broken.sf2").write_bytes(b"RIFF\x10\x00\x00\x00sfbk not really a soundfont")
    with pytest.raises(RenderError, match="broken.sf2"):
        render.render(scale_melody(), "broken", sample_rate=SR)


def test_vanished_soundfont_is_a_render_error(fonts_dir):
    (fonts_dir / "gone.sf2").symlink_to(fonts_dir / "nowhere.sf2")
    with pytest.raises(RenderError, match="does not exist"):
        render.render(scale_melody(), "gone", sample_rate=SR)


def test_wav_and_ogg_bytes_read_back():
    audio = render.render(scale_melody(), SMALL_FONT, sample_rate=SR)
    wav, wav_sr = soundfile.read(io.BytesIO(render.to_wav_bytes(audio, SR)), dtype="float32")
    assert wav_sr == SR and len(wav) == len(audio)
    np.testing.assert_allclose(wav, audio, atol=1 / 16000)
    ogg_bytes = render.to_ogg_bytes(audio, SR)
    ogg, ogg_sr = soundfile.read(io.BytesIO(ogg_bytes), dtype="float32")
    assert ogg_bytes[:4] == b"OggS" and ogg_sr == SR
    assert abs(len(ogg) - len(audio)) < SR // 100
    assert len(ogg_bytes) < len(render.to_wav_bytes(audio, SR)) / 3


def test_wav_bytes_are_what_libsndfile_writes(tmp_path):
    # the fast writer must not change a sample: loud (clipped), quiet and silent audio, odd lengths
    rng = np.random.default_rng(0)
    for audio in (rng.standard_normal(10_001).astype(np.float32) * 1.5, rng.standard_normal(77) * 0.01,
                  np.zeros(5, np.float32), np.array([1.0, -1.0, 0.999999, -0.999999], np.float32)):
        buf = io.BytesIO()
        soundfile.write(buf, np.clip(np.asarray(audio, np.float32), -1, 1), SR, format="WAV", subtype="PCM_16")
        assert render.to_wav_bytes(audio, SR) == buf.getvalue()
        assert render.write_wav(audio, SR, tmp_path / "a.wav").read_bytes() == buf.getvalue()
    with pytest.raises(RenderError, match="0 Hz"):
        render.to_wav_bytes(np.zeros(3, np.float32), 0)


def test_write_audio_picks_the_format_by_suffix(tmp_path):
    audio = render.render(scale_melody(), SMALL_FONT, sample_rate=SR)
    assert soundfile.info(render.write_audio(audio, SR, tmp_path / "a.wav")).format == "WAV"
    assert soundfile.info(render.write_audio(audio, SR, tmp_path / "a.ogg")).format == "OGG"
    with pytest.raises(RenderError, match=r"'a\.mp3'"):
        render.write_audio(audio, SR, tmp_path / "a.mp3")


def test_missing_fluidsynth_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_fluidsynth(name, *args, **kwargs):
        if name == "fluidsynth":
            raise ImportError("Couldn't find the FluidSynth library.")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fluidsynth)
    with pytest.raises(RenderError, match="apt-get install libfluidsynth3"):
        render._import_fluidsynth()


@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_a4_sounds_at_440_hz(sample_rate):
    audio = render.render(Melody((Note(0, 69, 8),), program=73), SMALL_FONT, sample_rate=sample_rate)
    window = audio[sample_rate // 4: sample_rate // 4 + sample_rate // 2]  # 2 Hz bins, past the attack
    freqs = np.fft.rfftfreq(len(window), 1 / sample_rate)
    peak = freqs[np.argmax(np.abs(np.fft.rfft(window * np.hanning(len(window)))))]
    assert peak == pytest.approx(440, abs=4)


def test_continued_audio_sounds_like_one_render_of_the_whole():
    # the input's audio is rendered once and the continuation added; compare loudness envelopes
    m = load_melody(example_path("Jig (6/8, MIDI)")).melody
    r = MelodyService.debug().continue_(ContinueRequest(m, bars=4, variations=1, seed=2))
    mixed = render.render_continued(m, r.continuations[0])
    full = render.render(r.melodies[0])
    assert abs(len(mixed) - len(full)) <= 64

    def envelope(x, w=2205):
        n = len(x) // w
        return np.sqrt((x[:n * w].reshape(n, w) ** 2).mean(1))

    e1, e2 = envelope(mixed), envelope(full)
    n = min(len(e1), len(e2))
    assert np.corrcoef(e1[:n], e2[:n])[0, 1] > 0.95
    # one normalisation for the sum: the level matches the whole render, not just its shape
    assert np.abs(e1[:n] - e2[:n]).max() < 0.02


# -- the libfluidsynth adapter: pyfluidsynth's private ctypes handle `fluidsynth._fl` ---------------
def test_the_libfluidsynth_adapter_finds_what_it_needs():
    # Fails, naming what went, when a pyfluidsynth or FluidSynth upgrade removes `fluidsynth._fl`,
    # a C function render.py calls through it, or Synth.synth; the app would then render 16-bit
    # samples whose dither makes two renders of one melody differ, and log FluidSynth's warnings.
    fluidsynth = render._import_fluidsynth()
    problems = render._c_api_problems(fluidsynth)
    assert not problems, f"update the libfluidsynth section of musicgen_app/render.py: {'; '.join(problems)}"
    font = render._get_synth(render.soundfont_path(SMALL_FONT), SR)
    assert font.write_float is not None, "render.py fell back to pyfluidsynth's 16-bit get_samples"
    assert isinstance(font.synth.synth, int) and font.synth.synth, "pyfluidsynth's Synth.synth is no C pointer"
    with font.lock:
        font.synth.noteon(0, 69, 100)
        out = np.full((4 * render._BLOCK, 2), np.nan, np.float32)
        font.write(out)
    assert np.isfinite(out).all() and np.abs(out).max() > 0, "fluid_synth_write_float wrote no samples"


def test_an_unreachable_c_function_is_named_and_logged_once(monkeypatch, caplog):
    import ctypes
    import types

    monkeypatch.setattr(render, "_unreachable_logged", set())
    without_handle = types.SimpleNamespace(__file__="fluidsynth.py")
    without_symbols = types.SimpleNamespace(_fl=ctypes.CDLL(None))  # the process itself: no fluid_* symbols
    assert "has no ctypes library handle `_fl`" in render._c_api_problems(without_handle)[0]
    assert [p.split()[-1] for p in render._c_api_problems(without_symbols)] == list(render._C_FUNCTIONS)
    with caplog.at_level("WARNING", logger=render.__name__):
        assert render._float_writer(without_handle) is None and render._float_writer(without_symbols) is None
        render._mute_warnings(without_symbols)
    messages = [r.getMessage() for r in caplog.records if r.name == render.__name__]
    assert len(messages) == 2 and "fluid_synth_write_float" in messages[0] and "`_fl`" in messages[0]
    assert "fluid_set_log_function" in messages[1]
