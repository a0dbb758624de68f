"""The page in a real browser (Playwright driving Debian's chromium) against the shared app subprocess.

Each tab is used the way a person would: upload or pick, click, wait for the player and the piano
roll, download the MIDI and parse it. A 1280x800 screenshot of each tab goes to tests/out/
(MUSICGEN_SCREENSHOT_DIR=docs refreshes the ones the README shows).

The "every control" tests start from a fresh page, set each control of a tab, and check that the
downloaded files obey it (and that a refused click keeps what the page shows); their screenshots,
tests/out/every-control-*.png, are for looking at.
"""

from __future__ import annotations

import collections
import io
import math
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import mido
import pytest

pytest_plugins = ["conftest_app"]
pytestmark = pytest.mark.browser

playwright = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parent.parent
# Screenshots go to tests/out/ (ignored by git); MUSICGEN_SCREENSHOT_DIR=docs refreshes the README's.
DOCS = Path(os.environ.get("MUSICGEN_SCREENSHOT_DIR") or ROOT / "tests" / "out")
if not DOCS.is_absolute():
    DOCS = ROOT / DOCS
OUT = ROOT / "tests" / "out"  # screenshots only for looking at
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-quic", "--no-first-run"]
WAIT_MS = 90_000
WALTZ = ROOT / "musicgen_app" / "examples" / "waltz_3-4.mid"
CORRUPT = ROOT / "tests" / "data" / "corrupt" / "truncated.mid"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_server):
    OUT.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto(app_server.url)
    pg.wait_for_selector("#continue-go")
    yield pg
    ctx.close()


def _download(page, selector) -> Path:
    with page.expect_download() as info:
        page.locator(selector).first.click()
    return Path(info.value.path())


def _screenshot(page, path) -> None:
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))


def _meter_and_notes(path):
    mid = mido.MidiFile(path)
    msgs = [m for t in mid.tracks for m in t]
    ts = [m for m in msgs if m.type == "time_signature"][-1]
    return (ts.numerator, ts.denominator), sum(1 for m in msgs if m.type == "note_on" and m.velocity > 0)


def _status_seed(page, selector) -> str:
    page.wait_for_selector(f"{selector} >> text=Seed used")
    return re.search(r"Seed used: (\d+)", page.inner_text(selector)).group(1)


def test_continue_an_upload_then_chain_undo_and_survive_a_corrupt_file(page):
    DOCS.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Upload").first.click()
    page.locator("#continue-upload input[type=file]").set_input_files(str(WALTZ))
    page.wait_for_selector("#continue-info >> text=waltz_3-4.mid")
    bars = page.locator("#continue-bars input[type=number]")
    bars.fill("4")
    bars.press("Enter")
    page.click("#continue-go")
    seed = _status_seed(page, "#continue-status")
    page.wait_for_selector("#variation-1-audio audio, #variation-1-audio [data-testid=download-link]")
    page.wait_for_selector("#variation-1-roll img")
    assert page.locator("#variation-4").first.is_visible() and not page.locator("#variation-5").first.is_visible()
    midi = _download(page, "#variation-1-cont")
    meter, notes = _meter_and_notes(midi)
    assert meter == (3, 4) and notes > 0
    whole = _download(page, "#variation-1-midi")
    assert _meter_and_notes(whole)[1] > notes
    page.locator("#variation-1").first.get_by_text("Score", exact=True).click()
    page.wait_for_selector("#variation-1-score svg")  # the second pass ran
    for v in (2, 3, 4):  # and gave the other variations their audio and roll
        page.wait_for_selector(f"#variation-{v}-audio audio, #variation-{v}-audio [data-testid=download-link]")
        page.wait_for_selector(f"#variation-{v}-roll img")
    assert "rendering" not in page.inner_text("#variation-4")
    page.locator("#variation-1-score").first.scroll_into_view_if_needed()
    _screenshot(page, DOCS / "screenshot-continue.png")

    # "Continue from this" makes variation 2 the input; Undo goes back to the upload
    page.click("#variation-2-chain")
    page.wait_for_selector("#continue-info >> text=Variation 2 of waltz_3-4.mid")
    page.click("#continue-undo")
    # "waltz_3-4.mid" is in the chained label too: wait for the chained input to go away
    page.wait_for_function("() => !document.querySelector('#continue-info').innerText.includes('Variation 2')")
    assert "waltz_3-4.mid" in page.inner_text("#continue-info")

    # a corrupt file: the error is shown, the input stays, and Continue still works
    page.click("#continue-upload button[aria-label=Clear]")
    page.locator("#continue-upload input[type=file]").set_input_files(str(CORRUPT))
    page.wait_for_selector("text=/damaged|cut short|cannot be read/i")
    assert "waltz_3-4.mid" in page.inner_text("#continue-info")
    page.click("#continue-go")
    page.wait_for_function(
        "s => !document.querySelector('#continue-status').innerText.includes('Seed used: ' + s)", arg=seed)
    _status_seed(page, "#continue-status")


def test_continue_right_after_an_upload_continues_the_upload(page):
    # The click must not beat the upload's own event and continue the example still in the panel.
    page.get_by_role("tab", name="Upload").first.click()
    page.locator("#continue-upload input[type=file]").set_input_files(str(WALTZ))
    page.click("#continue-go")
    _status_seed(page, "#continue-status")
    meter, _ = _meter_and_notes(_download(page, "#variation-1-midi"))
    assert meter == (3, 4)  # the waltz, not the 2/4 folk tune the page started with
    assert "waltz_3-4.mid" in page.inner_text("#continue-info")


def test_every_continue_gets_its_score(page):
    # The score is engraved in a request thread; it used to work only for the first click.
    page.click("#continue-go")
    seed = _status_seed(page, "#continue-status")
    page.locator("#variation-1").first.get_by_text("Score", exact=True).click()
    for click in range(3):
        page.wait_for_selector("#variation-1-score svg")
        svg = page.inner_html("#variation-1-score")
        assert "could not read the score" not in page.content(), f"click {click + 1}: the score failed"
        page.click("#continue-go")
        page.wait_for_function(
            "s => !document.querySelector('#continue-status').innerText.includes('Seed used: ' + s)", arg=seed)
        seed = _status_seed(page, "#continue-status")
        page.wait_for_function("old => { const el = document.querySelector('#variation-1-score');"
                               " return el.querySelector('svg') && el.innerHTML !== old; }", arg=svg)


def test_interpolate_two_examples(page):
    page.get_by_role("tab", name="Interpolate").click()
    page.click("#interpolate-go")
    _status_seed(page, "#interpolate-status")
    page.wait_for_selector("#interpolate-audio audio, #interpolate-audio [data-testid=download-link]")
    page.wait_for_selector("#interpolate-gallery img")
    assert page.locator("#interpolate-gallery img").count() >= 7
    last = page.locator("#interpolate-gallery .thumbnail-item").last.bounding_box()
    gallery = page.locator("#interpolate-gallery").bounding_box()
    assert last["y"] + last["height"] <= gallery["y"] + gallery["height"]  # every roll in sight, B too
    morph = mido.MidiFile(_download(page, "#interpolate-files a[download$='.mid']"))
    meters = [(m.numerator, m.denominator) for t in morph.tracks for m in t if m.type == "time_signature"]
    assert meters[0] == (4, 4) and meters[-1] == (2, 4)  # from clip A's (the chorale's) meter to B's (the folk tune's)
    assert any(m.type == "note_on" and m.velocity for t in morph.tracks for m in t)
    _screenshot(page, DOCS / "screenshot-interpolate.png")


def test_generate_melodies(page):
    page.get_by_role("tab", name="Generate").click()
    page.click("#generate-go")
    _status_seed(page, "#generate-status")
    page.wait_for_selector("#generate-gallery img")
    assert page.locator("#generate-gallery img").count() >= 4
    first = _download(page, "#generate-files a[download$='.mid']")
    meter, notes = _meter_and_notes(first)
    assert meter == (4, 4) and notes > 0
    _screenshot(page, DOCS / "screenshot-generate.png")


def test_more_like_these_learns_two_uploads_then_generates_in_their_meter(page):
    page.get_by_role("tab", name="Generate").click()
    page.locator("#generate-style").first.get_by_text("More like these", exact=False).first.click()
    page.locator("#generate-clips input[type=file]").set_input_files([str(WALTZ), str(WALTZ)])
    page.wait_for_function("() => document.querySelectorAll('#generate-clips td.filename').length === 2")
    assert _file_names(page, "#generate-clips") == ["waltz_3-4.mid"] * 2
    page.click("#generate-learn")
    page.wait_for_selector("#generate-style-info >> text=Learnt from 2 clips")
    assert page.locator("#generate-sampler input[value=style]").is_checked()
    page.click("#generate-go")
    page.wait_for_selector("#generate-status >> text=3/4")  # the clips' meter, said so
    meter, notes = _meter_and_notes(_download(page, "#generate-files a[download$='.mid']"))
    assert meter == (3, 4) and notes > 0


def test_results_i_like_become_my_clips_and_teach_a_style(page):
    """A Continue variation's new bars and a clicked Generate melody are added to the clips with a
    toast each; the style learns from both."""
    page.click("#continue-go")
    _status_seed(page, "#continue-status")
    page.wait_for_selector("#variation-1-audio [data-testid=download-link]")
    page.click("#variation-1-add-clip")
    page.wait_for_selector("text=Added variation 1's new bars to your clips")
    page.get_by_role("tab", name="Generate").click()
    page.click("#generate-go")
    page.wait_for_selector("#generate-gallery img")
    page.click("#generate-add-clip")  # nothing clicked yet: says what to do, adds nothing
    page.wait_for_selector("text=Click the piano roll of the melody you want first")
    page.locator("#generate-gallery img").nth(1).click()
    page.click("#generate-add-clip")
    page.wait_for_selector("text=Added melody 2 to your clips")
    page.locator("#generate-style").first.get_by_text("More like these", exact=False).first.click()
    page.wait_for_selector("#generate-clips >> text=continuation")
    page.click("#generate-learn")
    page.wait_for_selector("#generate-style-info >> text=Learnt from 2 clips")
    _screenshot(page, ROOT / "tests" / "out" / "add-to-clips.png")  # not one the README shows


def test_more_like_this_rewrites_toward_a_variation_and_every_player_fills(page):
    page.click("#continue-go")
    _status_seed(page, "#continue-status")
    page.wait_for_selector("#variation-2-audio [data-testid=download-link]")
    page.click("#variation-2-like")
    page.wait_for_selector("#continue-status >> text=More like variation 2")
    for v in (1, 2, 3, 4):
        page.wait_for_selector(f"#variation-{v}-audio [data-testid=download-link]")
    meter, notes = _meter_and_notes(_download(page, "#variation-1-cont"))
    assert meter == (2, 4) and notes > 0  # the folk tune the page starts with


# -- every control of every tab, from a fresh page ---------------------------------------------------
# Each test below starts from a fresh page, sets the tab's controls as a musician would, runs the
# action and checks that the result obeys each control (the downloaded files read with mido).

TYPED = "4/4 c4 d e f g2 g"
C_MAJOR = {0, 2, 4, 5, 7, 9, 11}
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass
class Midi:
    """What a downloaded MIDI file says, in quarter notes."""

    notes: list  # (onset, pitch, duration), by onset
    meters: list  # (numerator, denominator) in file order
    tempos: list  # quarter notes per minute, in file order
    programs: list
    end: float  # the last note's end

    @property
    def bars(self) -> float:
        num, den = self.meters[-1]
        return self.end / (num * 4 / den)


def _midi(source) -> Midi:
    """``source``: a path, or the file's bytes."""
    mid = mido.MidiFile(file=io.BytesIO(source)) if isinstance(source, bytes) else mido.MidiFile(source)
    tpq = mid.ticks_per_beat
    notes, meters, tempos, programs, sounding, t = [], [], [], [], {}, 0
    for msg in mido.merge_tracks(mid.tracks):
        t += msg.time
        if msg.type == "time_signature":
            meters.append((msg.numerator, msg.denominator))
        elif msg.type == "set_tempo":
            tempos.append(round(mido.tempo2bpm(msg.tempo), 1))
        elif msg.type == "program_change":
            programs.append(msg.program)
        elif msg.type == "note_on" and msg.velocity > 0:
            sounding[msg.note] = t
        elif msg.type in ("note_off", "note_on") and msg.note in sounding:
            start = sounding.pop(msg.note)
            notes.append((start / tpq, msg.note, (t - start) / tpq))
    notes.sort()
    return Midi(notes, meters, tempos, programs, max((s + d for s, _, d in notes), default=0.0))


API_NAMES = ("bars", "key_lock", "stay_close", "pacing", "time_signature", "notes_per_bar", "ends_on_tonic")


def _fresh(page, tab: str | None = None):
    """The page as it first loads, on ``tab``: no toast, and none of the API endpoints' hidden
    inputs (labelled with their parameter names) on show."""
    if tab:
        page.get_by_role("tab", name=tab).click()
    assert page.locator("[data-testid=toast-body]").count() == 0
    for name in API_NAMES:
        assert not any(label.is_visible() for label in page.get_by_text(name, exact=True).all()), name


def _box(page, selector: str) -> dict:
    return page.locator(selector).first.evaluate(
        "e => { const r = e.getBoundingClientRect(), s = getComputedStyle(e);"
        " return {left: r.left, right: r.right, top: r.top, bottom: r.bottom, scroll: e.scrollWidth,"
        " client: e.clientWidth, padRight: parseFloat(s.paddingRight), border: s.borderTopWidth}; }")


def _whole_text(page, selector: str) -> None:
    """The text of the box ``selector`` is shown whole, not cut at its edge."""
    box = _box(page, selector)
    assert box["scroll"] <= box["client"], (selector, box)


def _file_names(page, files: str) -> list[str]:
    """The names a file box lists (shown as stem and suffix)."""
    return [re.sub(r"\s", "", t) for t in page.locator(f"{files} td.filename").all_inner_texts()]


def _type(page, elem_id: str, text: str) -> None:
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text]").first
    box.fill(text)
    assert box.input_value() == text


def _slide(page, elem_id: str, value: float) -> None:
    """A slider's number box, typed and confirmed; the slider moves to it."""
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_function("([id, v]) => Number(document.querySelector(`#${id} input[type=range]`).value) === v",
                           arg=[elem_id, value])


def _choose(page, elem_id: str, option: str) -> None:
    """Open a dropdown, narrow it by typing, click the option."""
    box = page.locator(f"#{elem_id} input[role=combobox]")
    box.click()
    box.fill(option)
    page.locator(f"#{elem_id} [role=option][aria-label=\"{option}\"]").click()
    assert box.input_value() == option


def _open_shape(page) -> None:
    """Open Generate's "Shape (empty: free)" accordion and wait for its boxes to settle."""
    page.locator("#generate-shape").get_by_text("Shape (empty: free)").click()
    page.wait_for_selector("#generate-density textarea, #generate-density input")
    page.wait_for_timeout(300)


def _radio(page, elem_id: str, value: str) -> None:
    page.locator(f"#{elem_id} input[type=radio][value=\"{value}\"]").check()


def _attr(page, selector: str, attr: str) -> str | None:
    return page.evaluate("([s, a]) => { const e = document.querySelector(s); return e ? e.getAttribute(a) : null; }",
                         [selector, attr])


def _press(page, button: str, result: str) -> None:
    """Click ``button`` and wait for a new ``result`` (an image whose src changes with each run, as
    each run writes its own folder), so two runs with the same seed and status are told apart.
    Fails on an error or warning toast instead of waiting for the timeout."""
    old = _attr(page, result, "src")
    page.click(button)
    page.wait_for_function(
        "([s, old]) => { const e = document.querySelector(s);"
        " const bad = document.querySelector('[data-testid=toast-body].error, [data-testid=toast-body].warning');"
        " return bad || (e && e.getAttribute('src') && e.getAttribute('src') !== old); }", arg=[result, old])
    _no_refusal(page)


def _close_toasts(page) -> None:
    for close in page.locator("[data-testid=toast-close]").all():
        close.click()
    page.wait_for_function("() => !document.querySelector('[data-testid=toast-body]')")


def _no_refusal(page) -> None:
    toasts = page.locator("[data-testid=toast-body].error, [data-testid=toast-body].warning")
    assert toasts.count() == 0, toasts.first.inner_text()


def _seed_shown(page, status: str, seed: int | str) -> None:
    """The status line gives the seed used (any seed for "")."""
    assert f"Seed used: {seed}" in page.inner_text(status)


def _downloads(page, files: str, suffix: str) -> list[Path]:
    """Every file of a gr.File list that ends with ``suffix``, downloaded by clicking its link."""
    links = page.locator(f"{files} a[download$='{suffix}']")
    return [_download_nth(page, links, i) for i in range(links.count())]


def _download_nth(page, links, i: int) -> Path:
    with page.expect_download() as info:
        links.nth(i).click()
    return Path(info.value.path())


def test_continue_every_control_from_a_fresh_page(page):
    _fresh(page)
    # the example picker and the track picker of a file with several tracks (no model involved)
    _choose(page, "continue-example", "Multitrack (bass, fiddle, drums)")
    page.wait_for_selector("#continue-info >> text=Multitrack")
    assert page.locator("#continue-track input[role=combobox]").input_value().startswith("1: Fiddle")
    _choose(page, "continue-track", "0: Bass (16 notes, pitches 43-50)")
    page.wait_for_selector("#continue-info >> text=track 0: Bass")
    assert "16 notes · pitches 43-50" in page.inner_text("#continue-info")

    # typed notes, without "Use these notes"
    page.click("#continue-tab-type-button")
    _type(page, "continue-text", TYPED)
    _slide(page, "continue-bars", 2)
    _slide(page, "continue-variations", 2)
    _slide(page, "continue-temperature", 0.8)
    page.locator("#continue-seed").locator("xpath=../..").get_by_role("button", name="New seed").click()
    page.wait_for_function("() => /^\\d+$/.test(document.querySelector('#continue-seed textarea').value)")
    _type(page, "continue-seed", "1234")
    _choose(page, "continue-key-lock", "C major")
    _choose(page, "continue-ending", "tonic")
    _slide(page, "continue-stay-close", 0.9)
    _choose(page, "continue-program", "40: Violin")
    _choose(page, "continue-soundfont", "TimGM6mb")
    _press(page, "#continue-go", "#variation-1-roll img")
    _seed_shown(page, "#continue-status", 1234)
    assert page.inner_text("#continue-info").startswith("Typed notes")
    assert [page.locator(f"#variation-{v}").first.is_visible() for v in (1, 2, 3)] == [True, True, False]
    assert "could not end as asked" not in page.inner_text("#variation-1-audio")

    whole = _midi(_download(page, "#variation-1-midi"))
    typed = [(0, 60, 1), (1, 62, 1), (2, 64, 1), (3, 65, 1), (4, 67, 2), (6, 67, 2)]
    assert whole.notes[:6] == typed, whole.notes[:8]  # the continuation starts with the typed notes
    assert whole.programs and set(whole.programs) == {40}  # Instrument: 40 Violin
    new_path = _download(page, "#variation-1-cont")
    new = _midi(new_path)
    assert new.meters[-1] == (4, 4) and 1 < new.bars <= 2  # Bars: 2, in the typed 4/4
    assert {p % 12 for _, p, _ in new.notes} <= C_MAJOR  # Key lock: C major, no accidentals
    assert new.notes[-1][1] % 12 == 0  # End on: the tonic of the key in force, the locked C major
    assert set(new.programs) == {40}
    wav_tim = _download(page, "#variation-1-wav").read_bytes()
    assert wav_tim[:4] == b"RIFF"

    # the same seed again: the same music; another SoundFont: the same MIDI, other sound
    def midis():
        return [_download(page, f"#variation-{v}-midi").read_bytes() for v in (1, 2)]

    first_midi = midis()
    _choose(page, "continue-soundfont", "FluidR3_GM")
    _press(page, "#continue-go", "#variation-1-roll img")
    _seed_shown(page, "#continue-status", 1234)
    assert midis() == first_midi
    assert _download(page, "#variation-1-wav").read_bytes() != wav_tim
    # Stay close and Temperature reach the model: another value, other music from the same seed (one
    # variation at least: the same seed draws the same random numbers, so a variation that Stay close
    # 0.9 pulls onto the input's bars can come out the same at another temperature)
    _slide(page, "continue-stay-close", 0.0)
    _press(page, "#continue-go", "#variation-1-roll img")
    assert midis() != first_midi
    _slide(page, "continue-stay-close", 0.9)
    _slide(page, "continue-temperature", 1.6)
    _press(page, "#continue-go", "#variation-1-roll img")
    assert midis() != first_midi
    _slide(page, "continue-temperature", 0.8)

    # what the tab shows is whole: the sliders' maxima, the chosen ending, the players without a heavy frame
    for slider in ("continue-bars", "continue-variations", "continue-temperature"):
        assert _box(page, f"#{slider} .max_value")["right"] <= _box(page, f"#{slider}")["right"], slider
    _whole_text(page, "#continue-ending input[role=combobox]")
    _whole_text(page, "#continue-program input[role=combobox]")
    assert _box(page, "#variation-1-audio")["border"] == _box(page, "#variation-1-roll")["border"] == "0px"

    # a refused Continue (a seed that is no number) says why and keeps the variations shown
    roll = _attr(page, "#variation-1-roll img", "src")
    _type(page, "continue-seed", "twelve")
    page.click("#continue-go")
    page.wait_for_selector("#continue-status >> text=Seed 'twelve' is not a whole number")
    page.wait_for_timeout(500)
    assert _attr(page, "#variation-1-roll img", "src") == roll and page.locator("#variation-2").first.is_visible()
    assert "Error" not in page.inner_text("#continue-status")
    _close_toasts(page)
    _type(page, "continue-seed", "1234")

    # More like this: new variations drawn toward variation 2, same bars, same settings
    page.wait_for_selector("#variation-2-roll img")
    _press(page, "#variation-2-like", "#variation-1-roll img")
    page.wait_for_selector("#continue-status >> text=More like variation 2")
    like = _midi(_download(page, "#variation-1-cont"))
    assert 1 < like.bars <= 2 and {p % 12 for _, p, _ in like.notes} <= C_MAJOR and set(like.programs) == {40}
    assert [page.locator(f"#variation-{v}").first.is_visible() for v in (1, 2, 3)] == [True, True, False]

    # the score and its MusicXML (the second pass)
    for v in (1, 2):
        page.locator(f"#variation-{v}").first.get_by_text("Score", exact=True).click()
        page.wait_for_selector(f"#variation-{v}-score svg")
    assert b"<score-partwise" in _download(page, "#variation-1-xml").read_bytes()

    # Add to my clips: the new bars go to Generate > More like these
    page.click("#variation-1-add-clip")
    page.wait_for_selector("text=Added variation 1's new bars to your clips")

    # Continue from this, then Undo
    page.click("#variation-1-chain")
    page.wait_for_selector("#continue-info >> text=Variation 1 of Typed notes")
    page.click("#continue-undo")
    page.wait_for_function("() => document.querySelector('#continue-info').innerText.startsWith('Typed notes')")
    page.locator("#variation-1-score").first.scroll_into_view_if_needed()
    _screenshot(page, OUT / "every-control-continue.png")
    _no_refusal(page)
    page.get_by_role("tab", name="Generate").click()
    page.locator("#generate-style").first.get_by_text("More like these", exact=False).first.click()
    page.wait_for_selector("#generate-clips >> text=continuation")


def test_interpolate_every_control_from_a_fresh_page(page, tmp_path):
    _fresh(page, "Interpolate")
    _choose(page, "clip-a-example", "Jig (6/8, MIDI)")
    page.wait_for_selector("#clip-a-info >> text=Jig (6/8, MIDI)")
    page.click("#clip-b-tab-upload-button")
    page.locator("#clip-b-upload input[type=file]").set_input_files(str(WALTZ))
    page.wait_for_selector("#clip-b-info >> text=waltz_3-4.mid")
    assert _file_names(page, "#clip-b-upload") == ["waltz_3-4.mid"]
    _whole_text(page, "#clip-b-upload td.filename .stem")
    _choose(page, "clip-a-example", "Chorale line (Bach, MusicXML)")  # long: cut with an ellipsis before the arrow
    box = _box(page, "#clip-a-example input[role=combobox]")
    assert box["right"] - box["padRight"] <= _box(page, "#clip-a-example .icon-wrap")["left"] + 1
    _choose(page, "clip-a-example", "Jig (6/8, MIDI)")
    page.wait_for_selector("#clip-a-info >> text=Jig (6/8, MIDI)")
    page.wait_for_timeout(500)  # a second event of the same choice would land by now
    assert "4 inputs in the history" in page.inner_text("#clip-a-info")  # one entry a choice, none twice
    _slide(page, "interpolate-steps", 5)
    _slide(page, "interpolate-temperature", 0.5)
    _radio(page, "interpolate-pacing", "linear")
    _type(page, "interpolate-seed", "77")
    _choose(page, "interpolate-soundfont", "TimGM6mb")
    _press(page, "#interpolate-go", "#interpolate-gallery img")
    _seed_shown(page, "#interpolate-status", 77)
    assert "5 clips from Jig (6/8, MIDI) (A) to waltz_3-4.mid (B)" in page.inner_text("#interpolate-status")
    assert page.locator("#interpolate-gallery img").count() == 5  # Steps: 5
    captions = page.locator("#interpolate-gallery .caption-label").all_inner_texts()
    assert captions[0].startswith("1/5") and captions[-1].startswith("5/5"), captions
    page.wait_for_selector("#interpolate-audio audio, #interpolate-audio [data-testid=download-link]")
    linear = _download(page, "#interpolate-files a[download$='.mid']").read_bytes()
    morph = _midi(linear)
    assert morph.meters[0] == (6, 8) and morph.meters[-1] == (3, 4)  # from the jig (A) to the waltz (B)
    with zipfile.ZipFile(_download(page, "#interpolate-files a[download$='.zip']")) as zf:
        assert len([n for n in zf.namelist() if n.endswith(".mid")]) == 5
    _screenshot(page, OUT / "every-control-interpolate.png")

    # Pacing reaches the morph: even steps instead of equal latent distance, the same seed
    _radio(page, "interpolate-pacing", "even")
    _press(page, "#interpolate-go", "#interpolate-gallery img")
    assert _download(page, "#interpolate-files a[download$='.mid']").read_bytes() != linear
    # Temperature 0 is the likeliest notes: another seed gives the same morph; the SoundFont changes the sound
    _slide(page, "interpolate-temperature", 0)
    _press(page, "#interpolate-go", "#interpolate-gallery img")
    cold = _download(page, "#interpolate-files a[download$='.mid']").read_bytes()
    wav_tim = _audio(page, "#interpolate-audio")
    _type(page, "interpolate-seed", "78")
    _choose(page, "interpolate-soundfont", "FluidR3_GM")
    _press(page, "#interpolate-go", "#interpolate-gallery img")
    _seed_shown(page, "#interpolate-status", 78)
    assert _download(page, "#interpolate-files a[download$='.mid']").read_bytes() == cold
    assert _audio(page, "#interpolate-audio") != wav_tim

    # a recording into clip B's Record tab, played at 100 qpm: what was heard shows, and the morph ends on it
    page.click("#clip-b-tab-record-button")
    _type(page, "clip-b-audio-qpm", "100")
    _upload_recording(page, "clip-b-audio-in", _played(tmp_path))
    page.wait_for_selector("#clip-b-info >> text=played.wav")
    page.wait_for_selector("#clip-b-heard-roll img")
    assert "· 100 qpm ·" in page.inner_text("#clip-b-info") and "Transcribed" in page.inner_text("#clip-b-info")
    _press(page, "#interpolate-go", "#interpolate-gallery img")
    assert "to played.wav (B)" in page.inner_text("#interpolate-status")
    morph = _midi(_download(page, "#interpolate-files a[download$='.mid']").read_bytes())
    assert morph.meters[0] == (6, 8) and morph.meters[-1] == (4, 4)  # from the jig (A) to the recording's 4/4
    _no_refusal(page)
    page.locator("#clip-b-heard").first.scroll_into_view_if_needed()
    page.screenshot(path=str(OUT / "every-control-interpolate-recording.png"))


def _played(tmp_path) -> Path:
    """Two bars in G major at 100 qpm, played through FluidSynth, as a WAV file."""
    import soundfile

    from musicgen_app.melody import Key, Melody, Note
    from musicgen_app.render import render

    tune = Melody((Note(0, 67, 4), Note(4, 71, 4), Note(8, 74, 4), Note(12, 72, 4), Note(16, 71, 4), Note(20, 69, 4),
                   Note(24, 67, 8)), qpm=100.0, key=Key(7, "major"), total_steps=32)
    path = tmp_path / "played.wav"
    soundfile.write(path, render(tune, sample_rate=22050), 22050, subtype="PCM_16")
    return path


def _upload_recording(page, elem_id: str, path: Path) -> None:
    """A file into an audio input that offers the microphone first: its upload source, then the file."""
    box = page.locator(f"#{elem_id}")
    box.get_by_role("button", name=re.compile("upload", re.I)).first.click()
    box.locator("input[type=file]").set_input_files(str(path))


def _audio(page, elem: str) -> bytes:
    """The bytes of the audio player's file (its download link)."""
    return page.request.get(page.locator(f"{elem} a[href]").first.get_attribute("href")).body()


def test_generate_shape_from_a_fresh_page(page):
    _fresh(page, "Generate")
    _open_shape(page)
    for box in ("generate-density", "generate-range"):
        field = page.locator(f"#{box} textarea, #{box} input").first
        field.wait_for()
        assert field.input_value() == "" and field.get_attribute("placeholder") == "free"
        colours = field.evaluate("e => [getComputedStyle(e).borderColor, getComputedStyle(e).outlineColor,"
                                 " getComputedStyle(e.closest('.block')).borderColor]")
        for colour in colours:  # no red outline (a box that starts invalid)
            r, g, b = (int(x) for x in re.findall(r"\d+", colour)[:3])
            assert not (r > 150 and g < 110 and b < 110), colours
        assert field.get_attribute("aria-invalid") != "true"
    density, spread = (_box(page, f"#{b} textarea, #{b} input") for b in ("generate-density", "generate-range"))
    assert abs(density["top"] - spread["top"]) <= 1, (density, spread)  # the two boxes in line
    assert page.locator("#generate-key input[role=combobox]").input_value() == "any"
    assert not page.locator("#generate-tonic input[type=checkbox]").is_checked()

    # Key alone
    _choose(page, "generate-key", "D minor")
    _type(page, "generate-seed", "4")
    _press(page, "#generate-go", "#generate-gallery img")
    _seed_shown(page, "#generate-status", 4)
    assert page.locator("#generate-gallery img").count() == 4
    melodies = [_midi(p) for p in _downloads(page, "#generate-files", ".mid")]
    assert len(melodies) == 4
    # D minor, estimated from the notes and robust to a melody that strays: D minor's F and B-flat (its
    # third and sixth) outnumber D major's F-sharp and B natural, the notes are mostly in D minor's scale
    # (its raised 6th and 7th allowed), and most rolls are captioned D minor (the key the page estimates)
    pcs = collections.Counter(p % 12 for m in melodies for _, p, _ in m.notes)
    assert pcs[5] + pcs[10] > pcs[6] + pcs[11], pcs
    assert sum(pcs[pc] for pc in (2, 4, 5, 7, 9, 10, 11, 0, 1)) >= 0.9 * sum(pcs.values()), pcs
    captions = page.locator("#generate-gallery .caption-label").all_inner_texts()
    assert sum(c.endswith("· D minor") for c in captions) >= 3, captions
    # the gallery's label does not cover the first roll (its title)
    assert _box(page, "#generate-gallery [data-testid=block-label]")["bottom"] <= \
        _box(page, "#generate-gallery img")["top"]

    # Notes per bar alone: sparse, then dense
    _choose(page, "generate-key", "any")
    densities = {}
    for per_bar in ("2", "8"):
        _type(page, "generate-density", per_bar)
        _press(page, "#generate-go", "#generate-gallery img")
        got = [_midi(p) for p in _downloads(page, "#generate-files", ".mid")]
        densities[per_bar] = sum(len(m.notes) for m in got) / sum(math.ceil(m.bars - 0.01) for m in got)
    assert 1 <= densities["2"] <= 3.5 and 5.5 <= densities["8"] <= 10.5, densities

    # Ends on the tonic alone: each melody's last note is the tonic of the key its roll is captioned with
    _type(page, "generate-density", "")
    page.locator("#generate-tonic input[type=checkbox]").check()
    _press(page, "#generate-go", "#generate-gallery img")
    captions = page.locator("#generate-gallery .caption-label").all_inner_texts()
    ends = []
    for caption, path in zip(captions, _downloads(page, "#generate-files", ".mid"), strict=True):
        name = re.search(r"· ([A-G][#b]?) (major|minor)$", caption).group(1)
        tonic = PITCH_CLASSES[name[0]] + {"#": 1, "b": -1}.get(name[1:], 0)
        ends.append(_midi(path).notes[-1][1] % 12 == tonic % 12)
    assert sum(ends) >= 3, (captions, ends)  # a model's control, not a rule: 3 of 4 (by chance: 1 in 7 each)
    _screenshot(page, OUT / "every-control-generate-shape.png")


def test_generate_every_setting_and_sampler_from_a_fresh_page(page):
    _fresh(page, "Generate")
    _slide(page, "generate-count", 3)
    _slide(page, "generate-temperature", 0.9)
    _choose(page, "generate-time-signature", "3/4")
    _slide(page, "generate-qpm", 90)
    _type(page, "generate-seed", "5")
    _choose(page, "generate-soundfont", "TimGM6mb")
    made = {}
    for sampler in ("bank", "gan", "gaussian"):  # "style" needs clips: see the More like these tests
        _radio(page, "generate-sampler", sampler)
        _press(page, "#generate-go", "#generate-gallery img")
        _seed_shown(page, "#generate-status", 5)
        assert page.locator("#generate-gallery img").count() == 3  # How many: 3
        paths = _downloads(page, "#generate-files", ".mid")
        assert len(paths) == 3 and page.locator("#generate-files a[download$='.zip']").count() == 1
        for path in paths:
            m = _midi(path)
            assert m.meters == [(3, 4)] and m.tempos == [90.0] and m.notes, (sampler, m.meters, m.tempos)
        made[sampler] = paths[0].read_bytes()
    assert len(set(made.values())) == 3  # each sampler writes its own melodies

    # Bars: 16-bar tunes, from the bank and from the Gaussian (which borrows a tune's form)
    for sampler in ("bank", "gaussian"):
        _radio(page, "generate-sampler", sampler)
        _radio(page, "generate-bars", "16")
        _press(page, "#generate-go", "#generate-gallery img")
        long = [_midi(p) for p in _downloads(page, "#generate-files", ".mid")]
        assert len(long) == 3 and all(m.meters == [(3, 4)] and 12 < m.bars <= 16 for m in long), \
            [(m.meters, m.bars) for m in long]
    _screenshot(page, OUT / "every-control-generate-16-bars.png")
    _radio(page, "generate-bars", "4")

    # the same seed: the same melodies; another SoundFont: the same MIDI, other sound
    wav_tim = _audio(page, "#generate-audio")
    _choose(page, "generate-soundfont", "FluidR3_GM")
    _press(page, "#generate-go", "#generate-gallery img")
    assert _download(page, "#generate-files a[download$='.mid']").read_bytes() == made["gaussian"]
    assert _audio(page, "#generate-audio") != wav_tim
    # Temperature reaches the sampler
    _slide(page, "generate-temperature", 1.8)
    _press(page, "#generate-go", "#generate-gallery img")
    assert _download(page, "#generate-files a[download$='.mid']").read_bytes() != made["gaussian"]
    _screenshot(page, OUT / "every-control-generate.png")

    # the clicked melody goes to my clips
    page.locator("#generate-gallery img").nth(2).click()
    page.click("#generate-add-clip")
    page.wait_for_selector("text=Added melody 3 to your clips")
    page.locator("#generate-style").first.get_by_text("More like these", exact=False).first.click()
    page.wait_for_selector("#generate-clips >> text=melody-03")
    # refusals keep the clips on show: the same melody again, a style from one clip
    page.click("#generate-add-clip")
    page.wait_for_selector("[data-testid=toast-body] >> text=Melody 3 is already among your clips")
    page.click("#generate-learn")
    page.wait_for_selector("#generate-style-info >> text=Give 2 to 20 clips")
    page.wait_for_timeout(500)
    for kept in ("#generate-clips", "#generate-style-info", "#generate-sampler"):
        assert "Error" not in page.inner_text(kept), kept
    assert _file_names(page, "#generate-clips") == ["melody-03.mid"]
    assert page.locator("#generate-sampler input[value=gaussian]").is_checked()


def test_a_refused_generate_keeps_what_the_page_showed(page):
    _fresh(page, "Generate")
    _press(page, "#generate-go", "#generate-gallery img")
    rolls = [img.get_attribute("src") for img in page.locator("#generate-gallery img").all()]
    sound = page.locator("#generate-audio a[href]").first.get_attribute("href")
    files = page.locator("#generate-files a[download]").evaluate_all("links => links.map(a => a.href)")
    assert len(rolls) == 4 and sound and len(files) == 5
    page.locator("#generate-gallery img").nth(1).click()  # melody 2 chosen: shown large, and it plays
    page.wait_for_function("() => document.querySelector('#generate-audio a[href]').href.endsWith('melody-02.wav')")
    rolls = [img.get_attribute("src") for img in page.locator("#generate-gallery img").all()]
    sound = page.locator("#generate-audio a[href]").first.get_attribute("href")
    _open_shape(page)
    for change, says in ((lambda: _type(page, "generate-density", "99"), "Notes per bar 99"),
                         (lambda: (_type(page, "generate-density", ""), _choose(page, "generate-key", "D minor"),
                                   _radio(page, "generate-sampler", "gan")), "no shape controls")):
        change()
        page.click("#generate-go")
        page.wait_for_selector(f"#generate-status >> text={says}")  # the status says what to change
        assert "choose" in page.inner_text("#generate-status")
        page.wait_for_selector(f"[data-testid=toast-body] >> text={says}")  # and so does a toast
        page.wait_for_timeout(500)  # anything the refusal would still change
        assert [img.get_attribute("src") for img in page.locator("#generate-gallery img").all()] == rolls
        assert page.locator("#generate-audio a[href]").first.get_attribute("href") == sound
        assert page.locator("#generate-files a[download]").evaluate_all("links => links.map(a => a.href)") == files
        for shown in ("#generate-gallery", "#generate-audio", "#generate-files", "#generate-status"):
            assert not page.locator(f"{shown} [data-testid=status-tracker].error").count(), shown
            assert "Error" not in page.inner_text(shown), shown
    _screenshot(page, OUT / "refused-generate.png")
    _close_toasts(page)
    page.click("#generate-add-clip")  # the choice survived the refusals too
    page.wait_for_selector("text=Added melody 2 to your clips")
    # and the page still works: the corpus sampler again
    _radio(page, "generate-sampler", "bank")
    _press(page, "#generate-go", "#generate-gallery img")
    _seed_shown(page, "#generate-status", "")


def test_record_a_tune_with_the_microphone_see_what_was_heard_and_continue_it(browser, app_server, tmp_path):
    """Chromium's fake microphone plays a sung tune (training/audio_set.py's voice) into the Record tab;
    its flags need a browser of its own (launched by the module's Playwright)."""
    import numpy as np
    import soundfile

    from musicgen_app.melody import Key, Melody, Note
    from musicgen_app.training.audio_set import sing

    tune = Melody((Note(0, 67, 4), Note(4, 71, 4), Note(8, 74, 4), Note(12, 72, 4), Note(16, 71, 4), Note(20, 69, 4),
                   Note(24, 67, 8)), qpm=100.0, key=Key(7, "major"), total_steps=32)
    voice = sing(tune, 48000)
    wav = tmp_path / "sung.wav"  # the fake microphone loops its file: a second of silence between takes
    soundfile.write(wav, np.concatenate([voice, np.zeros(48000, np.float32)]), 48000, subtype="PCM_16")
    args = [*ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]
    mic_browser = browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    try:
        ctx = mic_browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["microphone"])
        page = ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(app_server.url)
        page.wait_for_selector("#continue-go")
        page.locator("#continue-tab-record-button, button[role=tab]:has-text('Record')").first.click()
        panel = page.locator("#continue-audio-in")
        panel.get_by_role("button", name=re.compile("^Record$", re.I)).first.click()
        page.wait_for_timeout(5000)
        panel.get_by_role("button", name=re.compile("^Stop", re.I)).first.click()
        page.wait_for_selector("#continue-info >> text=Transcribed")
        page.wait_for_selector("#continue-heard-roll img")
        page.wait_for_selector("#continue-heard-audio audio, #continue-heard-audio [data-testid=download-link]")
        info = page.inner_text("#continue-info")
        assert "Tempo estimated" in info and "notes" in info
        page.screenshot(path=str(OUT / "record-tab-transcription.png"), full_page=True)
        # the tempo played at, typed: the take is read again at that tempo (one history entry, replaced)
        box = page.locator("#continue-audio-qpm textarea, #continue-audio-qpm input").first
        box.fill("100")
        box.press("Enter")
        page.wait_for_function("() => document.querySelector('#continue-info').innerText.includes('· 100 qpm ·')")
        assert "Tempo estimated" not in page.inner_text("#continue-info")
        # snap to key: read again, and the panel says how many notes moved (or that none had to)
        page.locator("#continue-audio-snap input[type=checkbox]").check()
        page.wait_for_selector("#continue-info >> text=/Snapped \\d+ notes? to the scale|none snapped/")
        page.click("#continue-go")
        _status_seed(page, "#continue-status")
        page.wait_for_selector("#variation-1-audio audio, #variation-1-audio [data-testid=download-link]")
        assert "Continued:" in page.inner_text("#continue-status")
    finally:
        mic_browser.close()


# Each AudioBufferSourceNode started in the page, with its context's state and clock (the count-in's clicks).
CLICK_LOG = """
window.startedSources = [];
const start = AudioBufferSourceNode.prototype.start;
AudioBufferSourceNode.prototype.start = function (when, ...rest) {
  window.startedSources.push({when: when || 0, context: this.context, hz: this.buffer && this.buffer.length});
  return start.call(this, when, ...rest);
};
"""


def test_record_to_the_count_in_the_take_is_read_on_its_grid_and_continued(browser, app_server, tmp_path):
    """Tempo 100 and 3/4 typed, Record: the page plays one bar of clicks (three, heard: the audio clock
    runs past them) and the fake microphone sings a waltz whose pickup falls in the clicks' bar; the
    transcription puts bar 1 on the count-in's downbeat, and the continuation starts with the waltz
    exactly (its notes on their steps, the pickup kept)."""
    import numpy as np
    import soundfile

    from musicgen_app.melody import Key, Melody, Note
    from musicgen_app.training.audio_set import sing

    waltz = Melody((Note(0, 62, 4), Note(4, 67, 8), Note(12, 71, 4), Note(16, 74, 8), Note(24, 72, 4),
                    Note(28, 71, 12)), qpm=100.0, key=Key(7, "major"), time_signature=(3, 4), pickup_steps=4,
                   total_steps=40)
    # the fake microphone opens as the recorder starts; the page's first click comes 0.15 s later, so bar 1
    # falls 0.15 s + one bar (1.8 s) into the take; the waltz's pickup (0.6 s) starts before it
    sr, bar_one = 48000, 0.15 + 1.8
    voice = 0.5 * sing(waltz, sr, seed=2)  # under the fake microphone's clipping
    lead = np.zeros(int(round((bar_one - 0.6) * sr)), np.float32)
    wav = tmp_path / "waltz-sung.wav"
    soundfile.write(wav, np.concatenate([lead, voice, np.zeros(2 * sr, np.float32)]), sr, subtype="PCM_16")
    args = [*ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}", "--autoplay-policy=no-user-gesture-required"]
    mic_browser = browser.browser_type.launch(executable_path=str(CHROMIUM), headless=True, args=args)
    try:
        ctx = mic_browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["microphone"],
                                      accept_downloads=True)
        ctx.add_init_script(CLICK_LOG)
        page = ctx.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(app_server.url)
        page.wait_for_selector("#continue-go")
        page.locator("#continue-tab-record-button, button[role=tab]:has-text('Record')").first.click()
        page.locator("#continue-audio-qpm textarea, #continue-audio-qpm input").first.fill("100")
        _choose(page, "continue-audio-meter", "3/4")
        assert page.locator("#continue-audio-count-in input[type=checkbox]").is_checked()  # on by default
        panel = page.locator("#continue-audio-in")
        panel.get_by_role("button", name=re.compile("^Record$", re.I)).first.click()
        page.wait_for_timeout(7000)
        panel.get_by_role("button", name=re.compile("^Stop", re.I)).first.click()
        clicks = page.evaluate("""() => ({
            when: window.startedSources.map(s => s.when),
            state: window.startedSources.map(s => s.context.state),
            now: window.startedSources.length ? window.startedSources[0].context.currentTime : 0,
            downbeat: window.musicgenCountIn && window.musicgenCountIn.downbeat})""")
        assert len(clicks["when"]) == 3 and set(clicks["state"]) == {"running"}  # one bar of 3/4
        assert clicks["now"] > max(clicks["when"]) + 1  # the audio clock ran past the clicks: they sounded
        assert abs(clicks["when"][1] - clicks["when"][0] - 0.6) < 1e-6  # a beat at 100 qpm
        assert 1.9 < clicks["downbeat"] < 2.3
        page.wait_for_selector("#continue-info >> text=count-in's grid")
        info = page.inner_text("#continue-info")
        assert "3/4 · 100 qpm" in info and "pickup 4 steps" in info and "6 notes" in info, info
        said = float(re.search(r"bar 1 starts ([\d.]+) s", info).group(1))
        assert abs(said - clicks["downbeat"]) < 0.075  # within half a step of where the page said
        page.screenshot(path=str(OUT / "record-count-in.png"), full_page=True)
        bars = page.locator("#continue-bars input[type=number]")
        bars.fill("2")
        bars.press("Enter")
        page.click("#continue-go")
        _status_seed(page, "#continue-status")
        mid = mido.MidiFile(_download(page, "#variation-1-midi"))
        step_ticks = mid.ticks_per_beat // 4
        onsets, t = [], 0
        for m in mido.merge_tracks(mid.tracks):
            t += m.time
            if m.type == "note_on" and m.velocity > 0:
                onsets.append((t // step_ticks, m.note))
        assert onsets[: len(waltz.notes)] == [(n.start, n.pitch) for n in waltz.notes]

        # The take trimmed with the waveform's scissors (Gradio's default selection): its start is no longer
        # the recorder's, so it is read again without the count-in's downbeat, and the panel says why
        page.locator("#continue-tab-record-button, button[role=tab]:has-text('Record')").first.click()
        panel.get_by_role("button", name="Trim audio to selection").first.click()
        panel.get_by_role("button", name=re.compile("^Trim$")).first.click()
        page.wait_for_selector("#continue-info >> text=not the take recorded to the count-in")
        assert "count-in's grid" not in page.inner_text("#continue-info")
        page.screenshot(path=str(OUT / "record-trimmed.png"), full_page=True)

        # Count-in off: the next take starts without clicks and is read without the count-in's grid
        page.locator("#continue-tab-record-button, button[role=tab]:has-text('Record')").first.click()
        page.locator("#continue-audio-count-in input[type=checkbox]").uncheck()
        before = page.evaluate("() => window.startedSources.length")
        panel.get_by_role("button", name=re.compile("clear", re.I)).first.click()  # the last take's x
        panel.get_by_role("button", name=re.compile("^Record$", re.I)).first.click()
        page.wait_for_timeout(5000)
        panel.get_by_role("button", name=re.compile("^Stop", re.I)).first.click()
        page.wait_for_function("() => !document.querySelector('#continue-info').innerText.includes(\"count-in's grid\")"
                               " && document.querySelector('#continue-info').innerText.includes('Transcribed')")
        assert page.evaluate("() => window.startedSources.length") == before  # no clicks played
        assert "100 qpm" in page.inner_text("#continue-info")  # the typed tempo still holds
    finally:
        mic_browser.close()
