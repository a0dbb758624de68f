"""Melody -> pictures: a piano-roll PNG (Pillow) and an engraved score SVG (verovio).

The piano roll is drawn with Pillow rather than matplotlib: it is a grid of rectangles, and Pillow
draws one in a few milliseconds where a matplotlib figure takes ~100 ms to set up.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import RenderError
from .melody import PITCH_NAMES, Melody

INPUT_COLOUR = (52, 111, 196)  # blue: the notes the user gave
CONTINUATION_COLOUR = (230, 126, 34)  # orange: the notes the model wrote
_BACKGROUND = (255, 255, 255)
_BLACK_KEY_ROW = (241, 243, 246)
_C_LINE = (205, 210, 218)
_BEAT_LINE = (228, 231, 236)
_BAR_LINE = (120, 128, 140)
_BEAT_LINE_DARK = (175, 181, 190)
_SPLIT_LINE = (200, 40, 40)
_TEXT = (60, 64, 72)
_BLACK_KEYS = {1, 3, 6, 8, 10}
_MIN_SPAN = 13  # show at least an octave of rows so a few notes do not become giant bars

# verovio units: the SVG is pageWidth * scale / 100 px wide.
SCORE_WIDTH_PX = 900
_SCORE_SCALE = 40
_SCORE_MAX_PAGE_HEIGHT = 60000  # verovio's maximum; one tall page instead of many


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def pitch_name(pitch: int) -> str:
    """MIDI pitch -> 'C4' (middle C is 60)."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _layout_pitches(melody: Melody) -> tuple[int, int]:
    low, high = melody.pitch_range or (60, 72)
    low, high = low - 1, high + 1
    if high - low + 1 < _MIN_SPAN:
        extra = _MIN_SPAN - (high - low + 1)
        low -= extra // 2
        high += extra - extra // 2
    return max(0, low), min(127, high)


def tile_sheet(pngs: list[bytes | None], columns: int, path: str | Path) -> Path:
    """PNG images of one size, ``columns`` to a row, as one PNG at ``path`` (a None leaves its place
    blank, so a group can start a new row)."""
    tiles = [None if p is None else Image.open(io.BytesIO(p)) for p in pngs]
    w, h = next(t for t in tiles if t is not None).size
    sheet = Image.new("RGB", (columns * w, -(-len(tiles) // columns) * h), "white")
    for i, t in enumerate(tiles):
        if t is not None:
            sheet.paste(t, ((i % columns) * w, (i // columns) * h))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


def piano_roll_png(melody: Melody, *, split_step: int | None = None, path: str | Path | None = None,
                   title: str = "", width: int = 900, height: int = 300) -> bytes | Path:
    """Draw ``melody`` as a piano roll, ``width`` x ``height`` pixels.

    Notes before ``split_step`` are blue (input), from it on orange (continuation), with a red
    line at the split; without ``split_step`` every note is blue. Bar lines follow
    ``pickup_steps`` and ``bar_steps``, bars are numbered from 1 (a pickup bar is 0), and rows
    are labelled at every C and at the lowest and highest note. Returns PNG bytes, or writes
    ``path`` and returns it.
    """
    img = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    small = _font(11)
    left, right = 34, 8
    top = 20 if title or split_step is not None else 6
    bottom = 16
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = _layout_pitches(melody)
    rows = high - low + 1
    row_h = plot_h / rows
    steps = max(melody.total_steps, melody.bar_steps)
    step_w = plot_w / steps

    def x_of(step: float) -> float:
        return left + step * step_w

    def y_of(pitch: int) -> float:  # top edge of the row
        return top + (high - pitch) * row_h

    _draw_rows(draw, melody, (low, high), (left, plot_w), y_of, row_h)

    # Beat and bar lines; a bar number when bars are wide enough to hold one.
    beat, bar, pickup = melody.beat_steps, melody.bar_steps, melody.pickup_steps
    if beat * step_w >= 4:
        for step in range(pickup % beat, steps + 1, beat):
            draw.line([x_of(step), top, x_of(step), top + plot_h], fill=_BEAT_LINE)
    bar_w = bar * step_w
    label_every = 1 if bar_w >= 24 else int(24 // bar_w) + 1
    bar_colour = _BAR_LINE if bar_w >= 16 else _BEAT_LINE_DARK  # dense bar lines read as a grey wall
    # Bar k (from 1) starts at pickup + (k - 1) * bar; the pickup before it is bar 0 and unlabelled.
    for number, step in enumerate(range(pickup, steps + 1, bar), start=1):
        x = x_of(step)
        draw.line([x, top, x, top + plot_h], fill=bar_colour)
        if step < steps and (number - 1) % label_every == 0:
            draw.text((x + 2, top + plot_h + 2), str(number), fill=_TEXT, font=small)
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=_BAR_LINE)

    # Notes.
    for note in melody.notes:
        colour = INPUT_COLOUR if split_step is None or note.start < split_step else CONTINUATION_COLOUR
        x0, x1 = x_of(note.start), max(x_of(note.end) - 1, x_of(note.start) + 1)
        y0 = y_of(note.pitch) + 1
        y1 = max(y0 + 1, y_of(note.pitch) + row_h - 1)
        draw.rectangle([x0, y0, x1, y1], fill=colour, outline=tuple(c // 2 for c in colour))

    # Title, split marker and legend.
    if title:
        draw.text((left, 3), title, fill=_TEXT, font=_font(13))
    if split_step is not None:
        if 0 < split_step < steps:
            x = x_of(split_step)
            draw.line([x, top - 3, x, top + plot_h], fill=_SPLIT_LINE, width=2)
        x = width - right
        for label, colour in (("continuation", CONTINUATION_COLOUR), ("input", INPUT_COLOUR)):
            x -= draw.textlength(label, font=small)
            draw.text((x, 4), label, fill=_TEXT, font=small)
            draw.rectangle([x - 14, 6, x - 4, 14], fill=colour)
            x -= 26
    return _save(img, path)


def score_svg(musicxml: bytes | str) -> str:
    """Engrave MusicXML with verovio; an SVG about 900 px wide, systems broken to fit.

    Verovio ships its music fonts, so this needs no network. One tall page is requested; if a
    very long score still spills over, the pages' SVGs follow one another in the returned string.
    """
    import verovio

    if isinstance(musicxml, bytes):
        musicxml = musicxml.decode("utf-8", errors="replace")
    verovio.enableLog(verovio.LOG_OFF)
    # A toolkit finds its fonts by itself only in the thread that made the first toolkit (Gradio
    # serves requests from worker threads), so each is pointed at the wheel's data folder.
    tk = verovio.toolkit(False)
    tk.setResourcePath(str(Path(verovio.__file__).parent / "data"))
    # (A toolkit holds the loaded document, so each call gets its own: creating one takes ~5 ms.)
    tk.setOptions({
        "pageWidth": SCORE_WIDTH_PX * 100 // _SCORE_SCALE,
        "pageHeight": _SCORE_MAX_PAGE_HEIGHT,
        "scale": _SCORE_SCALE,
        "adjustPageHeight": True,
        "breaks": "auto",
        "pageMarginLeft": 50,
        "pageMarginRight": 50,
        "pageMarginTop": 50,
        "pageMarginBottom": 50,
        "footer": "none",
        "header": "none",
        "xmlIdSeed": 1,  # stable element ids, so one score always gives the same SVG
    })
    if not tk.loadData(musicxml) or tk.getPageCount() < 1:
        raise RenderError(
            f"Verovio could not read the score ({len(musicxml)} characters starting "
            f"{musicxml[:40]!r}); pass MusicXML such as melody_to_musicxml produces."
        )
    return "\n".join(tk.renderToSVG(page) for page in range(1, tk.getPageCount() + 1))


HEARD_CURVE_COLOUR = (200, 40, 40)  # red: the pitch the transcriber heard, frame by frame
UNSTEADY_COLOUR = (236, 178, 60)  # amber: a note whose pitch wavered (see Transcription.steadiness)
UNSTEADY_BELOW = 0.5  # a note with fewer steady frames than this share is drawn amber


def transcription_png(melody: Melody, transcription, *, path: str | Path | None = None, width: int = 900,
                      height: int = 260) -> bytes | Path:
    """What was heard in a recording: ``melody`` (its notes as light blue boxes, amber where the pitch wavered)
    drawn in seconds over the pitch curve (a thin red line), ``width`` x ``height`` pixels.

    ``transcription`` is an :class:`musicgen_app.io.audio.Transcription` (read by attribute:
    ``curve_times`` and ``curve_pitch`` in seconds and fractional MIDI pitch, ``origin`` in seconds
    where step 0 falls, ``duration``, ``steadiness`` per note, ``qpm``, ``qpm_estimated``). Bar
    lines follow the melody's grid, numbered from 1. Returns PNG bytes, or writes ``path`` and
    returns it.
    """
    img = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    small = _font(11)
    left, right, top, bottom = 34, 8, 20, 16
    plot_w, plot_h = width - left - right, height - top - bottom
    sec, origin = melody.seconds_per_step, float(transcription.origin)
    times = np.asarray(transcription.curve_times, dtype=float)
    pitch = np.asarray(transcription.curve_pitch, dtype=float)
    low, high = _layout_pitches(melody)
    heard = pitch[np.isfinite(pitch)]
    if heard.size:  # the curve's range too, within a fifth of the notes' (a stray octave jump stays off the picture)
        low = max(0, low - 7, min(low, int(np.floor(np.percentile(heard, 2)))))
        high = min(127, high + 7, max(high, int(np.ceil(np.percentile(heard, 98)))))
    rows = high - low + 1
    row_h = plot_h / rows
    t_end = max(float(transcription.duration), origin + melody.total_steps * sec, 1e-3)
    t0 = min(0.0, origin)
    scale = plot_w / (t_end - t0)

    def x_of(t: float) -> float:
        return left + (t - t0) * scale

    def y_of(p: float) -> float:  # top edge of the row of (integer) pitch p; fractional p: its centre line - row_h/2
        return top + (high - p) * row_h

    _draw_rows(draw, melody, (low, high), (left, plot_w), y_of, row_h)
    bar, beat, pickup = melody.bar_steps, melody.beat_steps, melody.pickup_steps
    if beat * sec * scale >= 4:
        for step in range(pickup % beat, melody.total_steps + 1, beat):
            x = x_of(origin + step * sec)
            draw.line([x, top, x, top + plot_h], fill=_BEAT_LINE)
    for number, step in enumerate(range(pickup, melody.total_steps + 1, bar), start=1):
        x = x_of(origin + step * sec)
        draw.line([x, top, x, top + plot_h], fill=_BAR_LINE)
        if step < melody.total_steps and bar * sec * scale >= 14:
            draw.text((x + 2, top + plot_h + 2), str(number), fill=_TEXT, font=small)
    draw.rectangle([left, top, left + plot_w, top + plot_h], outline=_BAR_LINE)

    steadiness = list(getattr(transcription, "steadiness", []) or [])
    for i, note in enumerate(melody.notes):
        unsteady = i < len(steadiness) and steadiness[i] < UNSTEADY_BELOW
        colour = UNSTEADY_COLOUR if unsteady else INPUT_COLOUR
        x0 = x_of(origin + note.start * sec)
        x1 = max(x_of(origin + note.end * sec) - 1, x0 + 1)
        y0 = y_of(note.pitch) + 1
        y1 = max(y0 + 1, y_of(note.pitch) + row_h - 1)
        draw.rectangle([x0, y0, x1, y1], fill=tuple((c + 255) // 2 for c in colour), outline=colour)

    # The curve: one polyline per voiced run, clipped to the rows shown.
    ys = top + (high - np.clip(pitch, low - 0.5, high + 0.5) + 0.5) * row_h
    xs = left + (times - t0) * scale
    voiced = np.isfinite(pitch)
    run: list[tuple[float, float]] = []
    for x, y, v in zip(xs.tolist(), ys.tolist(), voiced.tolist()):
        if v:
            run.append((x, y))
            continue
        _polyline(draw, run)
        run = []
    _polyline(draw, run)

    tempo = f"{transcription.qpm:.0f} qpm{' (estimated)' if transcription.qpm_estimated else ''}"
    draw.text((left, 3), f"What was heard: {len(melody.notes)} notes · {melody.key.name} · {tempo}", fill=_TEXT,
              font=_font(13))
    x = width - right
    for label, colour, line in (("pitch heard", HEARD_CURVE_COLOUR, True), ("unsteady", UNSTEADY_COLOUR, False),
                                ("notes", INPUT_COLOUR, False)):
        x -= draw.textlength(label, font=small)
        draw.text((x, 4), label, fill=_TEXT, font=small)
        if line:
            draw.line([x - 16, 10, x - 4, 10], fill=colour, width=2)
        else:
            draw.rectangle([x - 14, 6, x - 4, 14], fill=colour)
        x -= 26
    return _save(img, path)


def _polyline(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]]) -> None:
    if len(points) > 1:
        draw.line(points, fill=HEARD_CURVE_COLOUR, width=2, joint="curve")
    elif points:
        x, y = points[0]
        draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=HEARD_CURVE_COLOUR)


def _draw_rows(draw: ImageDraw.ImageDraw, melody: Melody, pitches: tuple[int, int], span: tuple[float, float],
               y_of, row_h: float) -> None:
    """Shade the black keys' rows (``pitches``: lowest and highest shown; ``span``: the plot's left
    edge and width in pixels), a line under each C, labels at C and the melody's extremes."""
    (low, high), (left, plot_w), font = pitches, span, _font(11)
    labelled = {p for p in range(low, high + 1) if p % 12 == 0}
    if melody.pitch_range:
        labelled |= set(melody.pitch_range)
    for pitch in range(low, high + 1):
        y0, y1 = y_of(pitch), y_of(pitch) + row_h
        if pitch % 12 in _BLACK_KEYS:
            draw.rectangle([left, y0, left + plot_w, y1], fill=_BLACK_KEY_ROW)
        if pitch % 12 == 0:
            draw.line([left, y1, left + plot_w, y1], fill=_C_LINE)
    last_label_y = -100.0
    for pitch in sorted(labelled, reverse=True):
        y = y_of(pitch) + row_h / 2
        if y - last_label_y >= 11:  # skip a label that would overlap the one above
            draw.text((left - 4, y), pitch_name(pitch), fill=_TEXT, font=font, anchor="rm")
            last_label_y = y


def _save(img: Image.Image, path: str | Path | None) -> bytes | Path:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=3)
    if path is None:
        return buf.getvalue()
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path


def bar_similarity(melody: Melody) -> np.ndarray:
    """(bars, bars) in [0, 1]: how far bar j plays bar i again, at best moved by up to an octave:
    the share of steps where either bar starts a note at which both start the same note (after the
    move); 1 between two bars with no note. Whole bars only; a tune's repeated phrases show as
    bright diagonals off the main one."""
    whole = int((melody.total_steps - melody.pickup_steps) // melody.bar_steps)
    bars = np.full((whole, melody.bar_steps), -100)  # the pitch starting at each step; -100: none
    for note in melody.notes:
        bar, step = divmod(note.start - melody.pickup_steps, melody.bar_steps)
        if 0 <= bar < whole:
            bars[bar, step] = note.pitch
    onsets = bars >= 0
    n = len(bars)
    out = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            either = onsets[i] | onsets[j]
            if either.any():
                same = [(onsets[i] & onsets[j] & (bars[i] + s == bars[j])).sum() for s in range(-12, 13)]
                out[i, j] = max(same) / either.sum()
    return out


def bar_similarity_png(melody: Melody, *, size: int = 200, title: str = "") -> bytes:
    """The bar self-similarity matrix (bar_similarity) as a grey square, ``size`` pixels: black is
    a bar played again, white nothing in common; bar 1 top left."""
    sim = bar_similarity(melody)
    n = max(len(sim), 1)
    img = Image.new("RGB", (size, size), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    top, left = 18, 4
    cell = (size - top - 4) / n
    for i in range(len(sim)):
        for j in range(len(sim)):
            g = int(255 * (1 - sim[i, j]))
            draw.rectangle([left + j * cell, top + i * cell, left + (j + 1) * cell - 1, top + (i + 1) * cell - 1],
                           fill=(g, g, g))
    draw.text((left, 2), title or "bar self-similarity", fill=_TEXT, font=_font(11))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
