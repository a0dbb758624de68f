"""The page in a real browser (Playwright driving Debian's chromium) against the shared app subprocess.

Each tab is used the way a person would: upload or pick, click, wait for the player and the piano
roll, download the MIDI and parse it. A 1280x800 screenshot of each tab goes to tests/out/
(MUSICGEN_SCREENSHOT_DIR=docs refreshes the ones the README shows).
"""

from __future__ import annotations

import os
import re
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
    morph = _download(page, "#interpolate-files a[download$='.mid']")
    meter, notes = _meter_and_notes(morph)
    assert meter == (4, 4) and notes > 0  # clip A's (the chorale's) meter
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
    page.wait_for_selector("#generate-clips >> text=waltz_3-4.mid")
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
