"""A service result -> the files a musician takes away: MIDI, WAV, MusicXML, piano rolls, zips.

One writer per action, used by both faces (the page writes into a request folder of the temp store,
the CLI where the user says). Each returns a typed record of what it wrote, so callers name files
by field, not by tuple position.
"""

from __future__ import annotations

import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from .. import render, views
from ..io.midi import melody_to_midi, sections_to_midi
from ..io.score import melody_to_musicxml
from ..melody import Melody
from ..service.melody_service import ContinueResult, InterpolateResult, SampleResult

ROLL_SIZE = (900, 220)
GALLERY_ROLL_SIZE = (600, 200)  # piano rolls in galleries; the page's CSS gives their cells the same 3:1 shape


@dataclass(frozen=True)
class VariationFiles:
    melody: Melody  # input then continuation, as written (instrument applied)
    midi: Path | None  # the whole melody
    new_bars_midi: Path  # the continuation alone
    audio: Path | None
    roll: Path | None


@dataclass(frozen=True)
class ContinueFiles:
    variations: tuple[VariationFiles, ...]
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class MorphFiles:
    midi: Path  # all steps one after another, each in its own meter and key
    steps_zip: Path | None  # one MIDI per step
    audio: Path | None
    rolls: tuple[tuple[Path, str], ...]  # (piano roll, caption) per step
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class GeneratedFiles:
    midis: tuple[Path, ...]
    zip: Path | None
    audios: tuple[Path, ...]
    medley: Path | None  # every melody in turn, a bar apart
    rolls: tuple[tuple[Path, str], ...]  # (piano roll, caption) per melody
    notices: tuple[str, ...] = ()


def numbered(path: Path, i: int, n: int) -> Path:
    """``path`` for a single result; ``stem-1.ext`` ... ``stem-n.ext`` for several."""
    return path if n == 1 else path.with_name(f"{path.stem}-{i + 1}{path.suffix}")


def write_wav(audio, path: Path) -> Path:
    render.write_wav(audio, render.SAMPLE_RATE, path)
    return path


def write_roll(melody: Melody, path: Path, *, split_step: int | None = None, title: str = "",
               size: tuple[int, int] = ROLL_SIZE) -> Path:
    views.piano_roll_png(melody, split_step=split_step, path=path, title=title, width=size[0], height=size[1])
    return path


@dataclass(frozen=True)
class HeardFiles:
    """What the input panel shows of a recording: the transcription's picture and its melody played."""

    roll: Path
    audio: Path


def write_heard(melody: Melody, transcription, folder: Path, *, soundfont: str | None = None) -> HeardFiles:
    """``melody`` as transcribed from a recording (``transcription``: its io.audio.Transcription)
    drawn over the pitch curve heard, and played, into ``folder``."""
    roll = views.transcription_png(melody, transcription, path=folder / "heard.png")
    audio = write_wav(render.render(melody, soundfont=soundfont), folder / "heard.wav")
    return HeardFiles(roll, audio)


def write_musicxml(melody: Melody, path: Path) -> bytes:
    """The score as MusicXML at ``path``; returns its bytes (for engraving)."""
    xml = melody_to_musicxml(melody)
    path.write_bytes(xml)
    return xml


def write_continue(result: ContinueResult, base: Path, *, whole: bool = True, audio: bool = True,
                   rolls: bool = False, program: int | None = None, soundfont: str | None = None,
                   media_for: Collection[int] | None = None) -> ContinueFiles:
    """Per variation ``base`` numbered (see :func:`numbered`): the whole melody's MIDI, the new bars'
    MIDI (``-continuation``, in whole bars: see ContinueResult.new_bars; it takes the plain name when
    ``whole`` is off), WAV, piano roll.

    ``program`` (General MIDI) replaces the input's instrument in the files and the audio.
    ``media_for``: the variations whose WAV and roll are written now (default: all); the page writes
    the first, plays it, and has :func:`write_variation_media` write the others meanwhile.
    """
    n = len(result.melodies)
    media = write_variations_media(result, [i for i in range(n) if media_for is None or i in media_for], base,
                                   audio=audio, roll=rolls, program=program, soundfont=soundfont)
    out = []
    for i in range(n):
        melody, bars = result.melodies[i], result.new_bars(i)
        if program is not None:
            melody, bars = melody.replace(program=program), bars.replace(program=program)
        path = numbered(base, i, n)
        midi = path.with_suffix(".mid") if whole else None
        if midi:
            melody_to_midi(melody, midi)
        new_bars = path.with_name(f"{path.stem}-continuation.mid") if whole else path.with_suffix(".mid")
        melody_to_midi(bars, new_bars)
        out.append(VariationFiles(melody, midi, new_bars, *media.get(i, (None, None))))
    cut = render.audio_cut(result.melodies[0]) if audio else None
    return ContinueFiles(tuple(out), (cut,) if cut else ())


def write_variation_media(result: ContinueResult, i: int, base: Path, *, audio: bool = True, roll: bool = True,
                          program: int | None = None, soundfont: str | None = None) -> tuple[Path | None, Path | None]:
    """Variation ``i``'s WAV (the input's audio is rendered once and reused) and piano roll, named as
    :func:`write_continue` names them."""
    path = numbered(base, i, len(result.melodies))
    melody, cont = result.melodies[i], result.continuations[i]
    if program is not None:
        melody, cont = melody.replace(program=program), cont.replace(program=program)
    wav = None
    if audio:
        head = result.primer.replace(program=melody.program)
        wav = write_wav(render.render_continued(head, cont, soundfont), path.with_suffix(".wav"))
    picture = write_roll(melody, path.with_suffix(".png"), split_step=result.start_step) if roll else None
    return wav, picture


def write_variations_media(result: ContinueResult, indices: Collection[int], base: Path, **options
                           ) -> dict[int, tuple[Path | None, Path | None]]:
    """:func:`write_variation_media` for each variation in ``indices``, rendered side by side
    (render.each) -> {variation: (wav, roll)}."""
    indices = list(indices)
    return dict(zip(indices, render.each(lambda i: write_variation_media(result, i, base, **options), indices)))


def step_names(n: int) -> list[str]:
    return ["A" if i == 0 else "B" if i == n - 1 else f"step {i}" for i in range(n)]


def morph_midi(result: InterpolateResult, path: Path | None = None) -> bytes:
    """The steps one after another as one MIDI file named after the morph, each step in its own
    clip's meter, key and tempo (a DAW reads the changes at the steps' first ticks)."""
    return sections_to_midi(result.clips, path, name=result.morph.name)


def write_morph(result: InterpolateResult, midi: Path, *, steps_zip: Path | None = None, audio: Path | None = None,
                rolls_dir: Path | None = None, soundfont: str | None = None) -> MorphFiles:
    """The morph as one MIDI (:func:`morph_midi`); optionally a zip of one MIDI per step, its audio, a
    piano roll per step."""
    morph_midi(result, midi)
    n = len(result.clips)
    names = step_names(n)
    if steps_zip is not None:
        with zipfile.ZipFile(steps_zip, "w", zipfile.ZIP_DEFLATED) as zf:
            for i, clip in enumerate(result.clips):
                zf.writestr(f"step-{i + 1:02d}-of-{n:02d}.mid", melody_to_midi(clip.replace(name=names[i])))
    if audio is not None:
        write_wav(render.render(result.morph, soundfont=soundfont), audio)
    pictures = []
    if rolls_dir is not None:
        for i, clip in enumerate(result.clips):
            caption = f"{i + 1}/{n}: {names[i]}"
            path = write_roll(clip, rolls_dir / f"step-{i + 1:02d}-of-{n:02d}.png", title=caption,
                              size=GALLERY_ROLL_SIZE)
            pictures.append((path, caption))
    cut = render.audio_cut(result.morph) if audio is not None else None
    return MorphFiles(midi, steps_zip, audio, tuple(pictures), (cut,) if cut else ())


def write_generated(result: SampleResult, folder: Path, *, audio: bool = True, medley: bool = False,
                    rolls: bool = False, zipped: bool = True, soundfont: str | None = None) -> GeneratedFiles:
    """``melody-01.mid`` ... in ``folder``, with a WAV each, a zip of the MIDIs, the medley, rolls."""
    folder.mkdir(parents=True, exist_ok=True)
    midis, wavs, sounds, pictures = [], [], [], []
    if audio or medley:
        sounds = render.each(lambda m: render.render(m, soundfont=soundfont), result.melodies)
    for i, m in enumerate(result.melodies):
        stem = folder / f"melody-{i + 1:02d}"
        midis.append(stem.with_suffix(".mid"))
        melody_to_midi(m, midis[-1])
        if audio:
            wavs.append(write_wav(sounds[i], stem.with_suffix(".wav")))
        if rolls:
            pictures.append((write_roll(m, stem.with_suffix(".png"), title=f"Melody {i + 1}", size=GALLERY_ROLL_SIZE),
                             f"Melody {i + 1} · {m.key.name}"))
    archive = None
    if zipped:
        archive = folder / "melodies.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in midis:
                zf.write(p, p.name)
    all_wav = None
    if medley and sounds:
        first = result.melodies[0]
        gap = first.bar_steps * first.seconds_per_step - render.TAIL_SECONDS
        all_wav = write_wav(render.one_after_another(sounds, gap), folder / "all-melodies.wav")
    cut = next(filter(None, map(render.audio_cut, result.melodies)), None) if sounds else None
    return GeneratedFiles(tuple(midis), archive, tuple(wavs), all_wav, tuple(pictures), (cut,) if cut else ())
