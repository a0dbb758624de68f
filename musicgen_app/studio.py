"""What the page and the API share: the :class:`Studio` (service, temp store, SoundFonts), one
function per action that turns raw form values into a request, runs it and writes its files, and
the mapping of our exceptions to ``gr.Error``.
"""

from __future__ import annotations

import functools
import html
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.context import LocalContext

from . import outputs, render
from .errors import ClientGone, ImportFailed, MusicgenError, RenderError, RequestError
from .inputs import InputOrigin, read_input
from .melody import Melody
from .models.style import MAX_CLIPS, MIN_CLIPS, StyleModel
from .service import (
    ContinueRequest,
    ContinueResult,
    InterpolateRequest,
    InterpolateResult,
    MelodyService,
    SampleRequest,
    SampleResult,
)
from .settings import build_request, parse_time_signature
from .tempfiles import TempStore

log = logging.getLogger(__name__)

KEEP_PROGRAM = -1  # the instrument menu's "keep the input's"
VARIATION_BASE = "variation.mid"  # numbered per variation: variation-1.mid ...


@dataclass(frozen=True)
class Studio:
    """What every handler shares: the read-only service, the temp store and the SoundFonts."""

    service: MelodyService
    store: TempStore
    soundfonts: tuple[str, ...]
    default_soundfont: str | None

    @classmethod
    def create(cls, service: MelodyService, store: TempStore | None = None) -> Studio:
        fonts = tuple(render.list_soundfonts())
        return cls(service, store or TempStore(), fonts, render.default_soundfont() if fonts else None)

    def font(self, name: str | None) -> str | None:
        return name or self.default_soundfont


def _error_title(exc: MusicgenError) -> str:
    if isinstance(exc, ImportFailed):
        return "Could not use this melody"
    if isinstance(exc, RequestError):
        return "Check the settings"
    if isinstance(exc, RenderError):
        return "Could not make the audio"
    return "Error"


def user_errors(fn):
    """Our exceptions -> gr.Error with their message (shown in the page; inputs stay as they are)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MusicgenError as exc:
            log.info("%s refused: %s: %s", fn.__name__, type(exc).__name__, exc)  # one line, no traceback
            raise gr.Error(html.escape(str(exc), quote=False), title=_error_title(exc),
                           print_exception=False) from exc

    return wrapper


def quieter_queue(demo, poll_s: float) -> None:
    """Gradio's queue looks for a job to start every 1 ms whenever it cannot start one (nothing
    queued, or every worker busy), and for progress to send every 10 ms: 6 % of a core while the
    page sits idle, and event-loop wake-ups that contend with the workers under load. Polled at
    ``poll_s`` instead (progress at no less than 50 ms); a click then waits on average poll_s / 2
    more to start. Not public API: tests/test_ui.py checks that Gradio's queue still reads them."""
    queue = demo._queue
    if not hasattr(queue, "sleep_when_free") or not hasattr(queue, "progress_update_sleep_when_free"):
        raise RuntimeError("Gradio's queue no longer has sleep_when_free; remove quieter_queue from app.py.")
    queue.sleep_when_free = poll_s
    queue.progress_update_sleep_when_free = max(poll_s, 0.05)


def client_gone() -> bool:
    """Whether the page or client of the running event has gone (closed, reloaded, disconnected).

    Gradio drops a gone client's queued events itself, and marks a running one dead, but cannot stop
    the thread that runs it; long handlers ask between their steps and stop. This reads Gradio's
    queue, which is not public API: tests/test_ui.py checks it against a real queue's event.
    """
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    queue = getattr(blocks, "_queue", None)
    event = queue.event_ids_to_events.get(event_id) if queue is not None and event_id else None
    return event is not None and not event.alive


def stop_if_client_gone() -> None:
    """Between the model and the files: a client that left gets no audio rendered for it."""
    if client_gone():
        raise ClientGone("The page was closed before the result was ready; nothing was written.")


def skip_outputs(n: int) -> tuple:
    """Leave ``n`` outputs as they are."""
    return (gr.skip(),) * n


def program_choice(value) -> int | None:
    """The instrument menu's value -> a GM program, or None (KEEP_PROGRAM, nothing) to keep the input's."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if number == KEEP_PROGRAM:
        return None
    if not number.is_integer() or not 0 <= number <= 127:
        raise RequestError(f"Instrument {str(value)[:20]!r} is not a General MIDI program; choose 0-127, or "
                           f"{KEEP_PROGRAM} to keep the input's.")
    return int(number)


def continue_files(studio: Studio, melody: Melody, bars, temperature, variations, seed, key_lock, program,
                   soundfont, *, rolls: bool, ending=None, stay_close=None, like: Melody | None = None,
                   media_for=None) -> tuple[ContinueResult, outputs.ContinueFiles, Path]:
    """``like``: an earlier continuation to write more like; ``media_for``: the variations whose audio
    and roll are written now (see outputs.write_continue)."""
    req = build_request(ContinueRequest, melody=melody, bars=bars, temperature=temperature, variations=variations,
                        seed=seed, key_lock=key_lock or "off", ending=ending or "tonic chord", stay_close=stay_close,
                        like=like)
    result = studio.service.continue_(req)
    stop_if_client_gone()
    folder = studio.store.request_dir("continue")
    files = outputs.write_continue(result, folder / VARIATION_BASE, rolls=rolls, program=program_choice(program),
                                   soundfont=studio.font(soundfont), media_for=media_for)
    return result, files, folder


def interpolate_files(studio: Studio, a: Melody, b: Melody, steps, temperature, seed, soundfont, *,
                      rolls: bool, pacing=None) -> tuple[InterpolateResult, outputs.MorphFiles]:
    req = build_request(InterpolateRequest, a=a, b=b, steps=steps, temperature=temperature, seed=seed,
                        pacing=pacing or "even")
    result = studio.service.interpolate(req)
    stop_if_client_gone()
    folder = studio.store.request_dir("interpolate")
    files = outputs.write_morph(result, folder / "morph.mid", steps_zip=folder / "morph-steps.zip",
                                audio=folder / "morph.wav", rolls_dir=folder if rolls else None,
                                soundfont=studio.font(soundfont))
    return result, files


def read_clips(files) -> list[Melody]:
    """Uploaded clips for "More like these" -> melodies; a clip that cannot be read is named."""
    files = [files] if isinstance(files, str | Path) else files or []
    paths = [f if isinstance(f, str | Path) else getattr(f, "name", "") for f in files]
    if not MIN_CLIPS <= len(paths) <= MAX_CLIPS:
        raise RequestError(f"Give {MIN_CLIPS} to {MAX_CLIPS} clips to learn a style from, not {len(paths)}.")
    melodies = []
    for i, path in enumerate(paths):
        try:
            melodies.append(read_input(InputOrigin("file", str(path))).melody)
        except ImportFailed as exc:
            raise type(exc)(f"Clip {i + 1} ({Path(path).name[:60]}): {exc}") from None
    return melodies


def learn_style(studio: Studio, files, progress=None) -> StyleModel:
    """Fit "More like these" to uploaded clips; ``progress(fraction, message)`` as it goes."""
    return studio.service.learn_style(read_clips(files), progress)


def generate_files(studio: Studio, count, temperature, seed, time_signature, qpm, soundfont, *, page: bool,
                   sampler=None, notes_per_bar=None, range_semitones=None, key=None, ends_on_tonic=False,
                   style: StyleModel | bytes | None = None) -> tuple[SampleResult, outputs.GeneratedFiles]:
    """``page``: also the medley of all melodies and a piano roll each. Empty attributes are free.
    ``style``: a learnt style (or its bytes) for the "style" sampler."""
    if isinstance(style, bytes):
        style = StyleModel.from_bytes(style)
    req = build_request(SampleRequest, count=count, temperature=temperature, seed=seed, qpm=qpm,
                        time_signature=parse_time_signature(time_signature or "4/4"), sampler=sampler or "bank",
                        notes_per_bar=notes_per_bar, range_semitones=range_semitones, key=key or "any",
                        ends_on_tonic=False if ends_on_tonic is None else ends_on_tonic, style=style)
    result = studio.service.sample(req)
    stop_if_client_gone()
    files = outputs.write_generated(result, studio.store.request_dir("generate"), medley=page, rolls=page,
                                    soundfont=studio.font(soundfont))
    return result, files
