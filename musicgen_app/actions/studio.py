"""What the page, the HTTP API, the MCP tools and the CLI share: one function per action that takes
the action's request object whole, runs it on the service and writes its files into a request
folder of the temp store. Nothing here knows about Gradio.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from .. import render
from ..errors import ClientGone, ImportFailed, RequestError
from ..melody import Melody
from ..models.style import MAX_CLIPS, MIN_CLIPS, StyleModel
from ..service import (
    ContinueRequest,
    ContinueResult,
    InterpolateRequest,
    InterpolateResult,
    MelodyService,
    SampleRequest,
    SampleResult,
)
from . import outputs
from .inputs import InputOrigin, read_input
from .tempfiles import FILES_BYTES, TempStore, audio_bytes

VARIATION_BASE = "variation.mid"  # numbered per variation: variation-1.mid ...


def never() -> bool:
    return False


@dataclass(frozen=True)
class Studio:
    """What every action shares: the read-only service, the temp store and the SoundFonts."""

    service: MelodyService
    store: TempStore
    soundfonts: tuple[str, ...]
    default_soundfont: str | None

    @classmethod
    def create(cls, service: MelodyService, store: TempStore | None = None) -> Studio:
        fonts = tuple(render.list_soundfonts())
        return cls(service, store or TempStore(), fonts, render.default_soundfont() if fonts else None)

    def font(self, name: str | None) -> str | None:
        """A request's SoundFont name (empty: the default), checked against those installed."""
        if name and name not in self.soundfonts:
            raise RequestError(f"SoundFont {name[:60]!r} is not installed; choose one of: "
                               f"{', '.join(self.soundfonts) or 'none'} (or leave it empty for the default).")
        return name or self.default_soundfont


def run_continue(studio: Studio, req: ContinueRequest, *, rolls: bool, media_for: Collection[int] | None = None,
                 gone: Callable[[], bool] = never) -> tuple[ContinueResult, outputs.ContinueFiles, Path]:
    """Continue and write every variation's MIDI; ``media_for``: the variations whose audio and roll
    are written now (see outputs.write_continue); ``gone``: whether the asker has left, checked
    between the model and the files."""
    font = studio.font(req.soundfont)
    result = studio.service.continue_(req)
    _stop_if(gone)
    # room for every variation's audio: the page writes the first now and the others just after
    folder = studio.store.request_dir("continue", audio_bytes(*result.melodies))
    files = outputs.write_continue(result, folder / VARIATION_BASE, rolls=rolls, program=req.program_number,
                                   soundfont=font, media_for=media_for)
    return result, files, folder


def run_interpolate(studio: Studio, req: InterpolateRequest, *, rolls: bool, audio: bool = True,
                    gone: Callable[[], bool] = never) -> tuple[InterpolateResult, outputs.MorphFiles]:
    """``audio``: also the morph's WAV (an API caller may want the MIDI only)."""
    font = studio.font(req.soundfont)
    result = studio.service.interpolate(req)
    _stop_if(gone)
    folder = studio.store.request_dir("interpolate", audio_bytes(result.morph) if audio else FILES_BYTES)
    files = outputs.write_morph(result, folder / "morph.mid", steps_zip=folder / "morph-steps.zip",
                                audio=folder / "morph.wav" if audio else None, rolls_dir=folder if rolls else None,
                                soundfont=font)
    return result, files


def run_generate(studio: Studio, req: SampleRequest, *, page: bool, audio: bool = True,
                 gone: Callable[[], bool] = never) -> tuple[SampleResult, outputs.GeneratedFiles]:
    """``page``: also the medley of all melodies and a piano roll each; ``audio``: a WAV per melody."""
    font = studio.font(req.soundfont)
    result = studio.service.sample(req)
    _stop_if(gone)
    # each melody's audio, and the page's medley of them all
    room = audio_bytes(*result.melodies, *result.melodies) if audio or page else FILES_BYTES
    files = outputs.write_generated(result, studio.store.request_dir("generate", room), audio=audio or page,
                                    medley=page, rolls=page, soundfont=font)
    return result, files


def run_heard(studio: Studio, melody: Melody, transcription) -> outputs.HeardFiles:
    """The picture and the audio of a transcribed recording, for the input panel to show."""
    return outputs.write_heard(melody, transcription, studio.store.request_dir("heard", audio_bytes(melody)),
                               soundfont=studio.default_soundfont)


def _stop_if(gone: Callable[[], bool]) -> None:
    """A client that left gets no audio rendered for it."""
    if gone():
        raise ClientGone("The page was closed before the result was ready; nothing was written.")


def read_clips(files) -> list[Melody]:
    """Clips for "More like these" (paths, or objects with a ``name`` path) -> melodies; a clip that
    cannot be read is named."""
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
    """Fit "More like these" to clips; ``progress(fraction, message)`` as it goes."""
    return studio.service.learn_style(read_clips(files), progress)
