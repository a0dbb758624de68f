from __future__ import annotations

import io
import threading

import music21
import numpy as np
import pytest
from PIL import Image

from musicgen_app import views
from musicgen_app.errors import RenderError
from musicgen_app.io.score import score_to_musicxml
from musicgen_app.melody import Melody, Note


def eight_bars(pickup: int = 0) -> Melody:
    notes = tuple(Note(pickup + i * 4, 60 + (i * 5) % 17, 3) for i in range(32))
    return Melody(notes, total_steps=pickup + 128, pickup_steps=pickup)


def colour_pixels(png: bytes, colour: tuple[int, int, int]) -> int:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    return int(np.all(rgb == colour, axis=-1).sum())


def test_piano_roll_is_a_png_of_the_requested_size():
    png = views.piano_roll_png(eight_bars(), title="eight bars")
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (900, 300)
    assert views.piano_roll_png(eight_bars(), width=600, height=200)[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(views.piano_roll_png(eight_bars(), width=600, height=200))).size == (600, 200)


def test_split_colours_input_and_continuation():
    melody = eight_bars()
    split = views.piano_roll_png(melody, split_step=64)
    assert colour_pixels(split, views.INPUT_COLOUR) > 500
    assert colour_pixels(split, views.CONTINUATION_COLOUR) > 500
    whole = views.piano_roll_png(melody)
    assert colour_pixels(whole, views.CONTINUATION_COLOUR) == 0


def test_bar_lines_follow_the_pickup():
    # Bar lines are full-height columns of the bar colour; a pickup shifts all of them.
    def bar_columns(melody):
        rgb = np.asarray(Image.open(io.BytesIO(views.piano_roll_png(melody))).convert("RGB"))
        share = np.all(rgb[40:260] == views._BAR_LINE, axis=-1).mean(axis=0)
        return set(np.nonzero(share > 0.5)[0])

    plain, shifted = bar_columns(eight_bars()), bar_columns(eight_bars(pickup=4))
    assert 8 <= len(plain) <= 12 and plain != shifted  # 8 bars plus the frame's edges


def test_piano_roll_writes_a_file(tmp_path):
    out = views.piano_roll_png(Melody(()), path=tmp_path / "empty.png")
    assert out == tmp_path / "empty.png"
    assert Image.open(out).size == (900, 300)


def test_pitch_names():
    assert [views.pitch_name(p) for p in (60, 61, 21, 108)] == ["C4", "C#4", "A0", "C8"]


def test_score_svg_engraves_musicxml():
    score = music21.converter.parse("tinyNotation: 4/4 c4 d e f g2 g")
    xml = score_to_musicxml(score)
    svg = views.score_svg(xml)
    assert svg.lstrip().startswith("<svg")
    assert svg.count('class="note"') == 6
    assert 'width="900px"' in svg
    assert views.score_svg(xml.decode()) == svg


def test_score_svg_rejects_non_music():
    with pytest.raises(RenderError, match="Verovio could not read"):
        views.score_svg("this is not a score")


def test_score_svg_works_from_any_thread():
    # Gradio serves each request from a worker thread; verovio used to read nothing after the first
    score = music21.converter.parse("tinyNotation: 3/4 c4 d e f2.")
    xml = score_to_musicxml(score)
    results = []
    for _ in range(3):
        t = threading.Thread(target=lambda: results.append(views.score_svg(xml)))
        t.start()
        t.join()
    assert len(results) == 3 and all("<svg" in r for r in results) and len(set(results)) == 1


def test_transcription_picture_draws_the_notes_over_the_pitch_curve():
    from types import SimpleNamespace

    melody = Melody((Note(0, 67, 4), Note(4, 71, 4), Note(8, 74, 8)), qpm=120.0, total_steps=16)
    times = np.arange(0, 2.2, 0.02)
    curve = np.where(times < 0.5, 67.2, np.where(times < 1.0, 70.8, 74.0)) + 0.3 * np.sin(times * 35)
    curve[(times > 0.95) & (times < 1.05)] = np.nan  # a breath: the line breaks
    heard = SimpleNamespace(curve_times=times, curve_pitch=curve, origin=0.05, duration=2.2, qpm=120.0,
                            qpm_estimated=True, steadiness=[1.0, 0.2, 0.9])
    png = views.transcription_png(melody, heard, width=600, height=200)
    assert Image.open(io.BytesIO(png)).size == (600, 200)
    assert colour_pixels(png, views.HEARD_CURVE_COLOUR) > 300  # the curve, plus its legend
    assert colour_pixels(png, views.INPUT_COLOUR) > 300 and colour_pixels(png, views.UNSTEADY_COLOUR) > 100
    silent = SimpleNamespace(**{**vars(heard), "curve_pitch": np.full_like(times, np.nan), "steadiness": []})
    png = views.transcription_png(melody, silent, width=600, height=200)
    assert colour_pixels(png, views.HEARD_CURVE_COLOUR) < 40  # the legend's line only
    assert colour_pixels(png, views.UNSTEADY_COLOUR) < 100  # the legend's box only


def test_bar_similarity_finds_a_bar_played_again_and_one_moved():
    """Bars: a rising line, another rhythm, the line again, the line a fourth up, silence."""
    line = [Note(4 * i, 60 + 2 * i, 4) for i in range(4)]
    other = [Note(16 + 8 * i, 70 - i, 8) for i in range(2)]
    notes = line + other + [Note(n.start + 32, n.pitch, 4) for n in line] + \
        [Note(n.start + 48, n.pitch + 5, 4) for n in line]
    sim = views.bar_similarity(Melody(notes=tuple(notes), total_steps=80))
    assert sim.shape == (5, 5) and (np.diag(sim) == 1).all()
    assert sim[0, 2] == sim[0, 3] == 1 and sim[0, 1] < 0.5 and sim[0, 4] == 0
    png = views.bar_similarity_png(Melody(notes=tuple(notes), total_steps=80), size=120)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
