"""Headless use of the studio, on the same service and file writers as the browser app.

    python -m musicgen_app continue in.mid --bars 8 --temperature 0.9 -o out.mid
    python -m musicgen_app interpolate a.mid b.mid --steps 7 -o morph.mid [--zip steps.zip]
    python -m musicgen_app generate -n 4 -o melodies/
    python -m musicgen_app render in.mid -o out.wav

Inputs may be MIDI, MusicXML, ABC or a text file of typed notes (``--track`` picks a MIDI track or a
score part). Settings, their ranges and defaults are the service's (see ``--help`` of each command).
``--debug-model`` uses the tiny random model (for tests). Errors are printed as one line to stderr
with exit status 2; the seed used is printed so a result can be reproduced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import outputs, render
from .errors import MusicgenError
from .io.importer import load_melody
from .melody import Melody
from .phrasing import ENDINGS
from .service import (
    PACINGS,
    SAMPLERS,
    TIME_SIGNATURES,
    ContinueRequest,
    InterpolateRequest,
    MelodyService,
    SampleRequest,
)
from .settings import build_request, parse_time_signature, spec


def _option(parser: argparse.ArgumentParser, request_type, name: str, flag: str | None = None, **kw) -> None:
    s = spec(request_type, name)
    parser.add_argument(flag or f"--{name.replace('_', '-')}", dest=name, type=int if s.whole else float,
                        default=s.default, help=s.describe(), **kw)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m musicgen_app", description="Continue, interpolate, generate "
                                "and render melodies from the command line.")
    p.add_argument("--debug-model", action="store_true", help="tiny random model instead of the checkpoints")
    p.add_argument("--checkpoints", default=None, help="folder with lstm.safetensors and vae.safetensors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("continue", help="continue a melody with the LSTM")
    c.add_argument("input", help="MIDI, MusicXML, ABC or typed-notes text file")
    c.add_argument("-o", "--output", required=True, help="output .mid; with several variations out-1.mid ... "
                   "out-N.mid, each beside its new bars alone (out-1-continuation.mid)")
    for name in ("bars", "temperature", "variations", "stay_close"):
        _option(c, ContinueRequest, name)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--key-lock", default="off", help="off, detected, or a key such as 'D minor'")
    c.add_argument("--end-on", dest="ending", choices=ENDINGS, default="tonic chord",
                   help="where the last bar lands, in the melody's key (default: the tonic chord)")
    c.add_argument("--track", type=int, default=None, help="which track or part of the input (default: guess)")
    c.add_argument("--continuation-only", action="store_true", help="write only the new bars")
    c.add_argument("--wav", action="store_true", help="also write a .wav next to each .mid")

    i = sub.add_parser("interpolate", help="morph clip A into clip B with the VAE")
    i.add_argument("a")
    i.add_argument("b")
    i.add_argument("-o", "--output", required=True, help="output .mid of the whole morph")
    for name in ("steps", "temperature"):
        _option(i, InterpolateRequest, name)
    i.add_argument("--seed", type=int, default=None)
    i.add_argument("--zip", default=None, help="also write a zip with each step as its own MIDI file")
    i.add_argument("--wav", default=None, help="also write the morph's audio here")
    i.add_argument("--pacing", choices=list(PACINGS), default="even",
                   help="even: each step changes the melody about as much as the next (default); linear: equal "
                        "distances along the latent path")

    g = sub.add_parser("generate", help="sample new melodies with the VAE")
    _option(g, SampleRequest, "count", "-n")
    g.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    for name in ("temperature", "qpm"):
        _option(g, SampleRequest, name)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--time-signature", default="4/4", help=f"e.g. {', '.join(TIME_SIGNATURES)}")
    g.add_argument("--wav", action="store_true", help="also write a .wav next to each .mid")
    g.add_argument("--sampler", choices=list(SAMPLERS), default="bank",
                   help="where each melody's code comes from: near a corpus window (bank, the default), the "
                        "latent GAN, or the Gaussian prior")
    for name in ("notes_per_bar", "range_semitones"):  # the bank sampler's attribute controls
        _option(g, SampleRequest, name)
    g.add_argument("--key", default="any", help="any, major, minor, or a key such as 'D minor' (bank sampler)")
    g.add_argument("--ends-on-tonic", action="store_true", help="the last note is the key's tonic (bank sampler)")
    g.add_argument("--like", nargs="+", metavar="CLIP", default=None,
                   help="2-20 clips (MIDI, MusicXML, ABC): learn their style and sample near it (sampler: style)")

    r = sub.add_parser("render", help="play a melody through FluidSynth into an audio file")
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True, help=".wav, .ogg or .flac")
    r.add_argument("--soundfont", default=None, help="a name from the soundfonts list (default: the first)")
    r.add_argument("--program", type=int, default=None, help="General MIDI program 0-127")
    r.add_argument("--track", type=int, default=None)
    return p


def _service(args) -> MelodyService:
    if args.debug_model:
        return MelodyService.debug()
    return MelodyService.from_checkpoints(args.checkpoints) if args.checkpoints else MelodyService.from_checkpoints()


def _load(path: str, track=None) -> Melody:
    result = load_melody(path, track=track)
    for n in result.notices:
        print(f"note: {Path(path).name}: {n}", file=sys.stderr)
    return result.melody


def _wrote(*paths) -> None:
    for path in paths:
        if path is not None:
            print(f"wrote {path}")


def _finish(result, files) -> None:
    for n in [*result.notices, *files.notices]:
        print(f"note: {n}", file=sys.stderr)
    print(f"seed {result.seed}")


def cmd_continue(args) -> None:
    req = build_request(ContinueRequest, melody=_load(args.input, args.track), bars=args.bars,
                        temperature=args.temperature, variations=args.variations, seed=args.seed,
                        key_lock=args.key_lock, ending=args.ending, stay_close=args.stay_close)
    result = _service(args).continue_(req)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = outputs.write_continue(result, out, whole=not args.continuation_only, audio=args.wav)
    for v in files.variations:
        _wrote(v.midi, v.new_bars_midi, v.audio)
    _finish(result, files)


def cmd_interpolate(args) -> None:
    req = build_request(InterpolateRequest, a=_load(args.a), b=_load(args.b), steps=args.steps,
                        temperature=args.temperature, seed=args.seed, pacing=args.pacing)
    result = _service(args).interpolate(req)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = outputs.write_morph(result, out, steps_zip=Path(args.zip) if args.zip else None,
                                audio=Path(args.wav) if args.wav else None)
    print(f"wrote {files.midi} ({len(result.clips)} steps, {result.morph.num_bars:g} bars)")
    _wrote(files.steps_zip, files.audio)
    _finish(result, files)


def cmd_generate(args) -> None:
    service = _service(args)
    style = None
    if args.like:
        style = service.learn_style([_load(path, None) for path in args.like])
        args.sampler = "style"
    req = build_request(SampleRequest, count=args.count, temperature=args.temperature, seed=args.seed,
                        qpm=args.qpm, time_signature=parse_time_signature(args.time_signature), sampler=args.sampler,
                        notes_per_bar=args.notes_per_bar, range_semitones=args.range_semitones, key=args.key,
                        ends_on_tonic=args.ends_on_tonic, style=style)
    result = service.sample(req)
    files = outputs.write_generated(result, Path(args.output), audio=args.wav, zipped=False)
    _wrote(*files.midis, *files.audios)
    _finish(result, files)


def cmd_render(args) -> None:
    melody = _load(args.input, args.track)
    audio = render.render(melody, soundfont=args.soundfont, program=args.program)
    path = render.write_audio(audio, render.SAMPLE_RATE, args.output)
    print(f"wrote {path} ({len(audio) / render.SAMPLE_RATE:.1f} s)")


COMMANDS = {"continue": cmd_continue, "interpolate": cmd_interpolate, "generate": cmd_generate,
            "render": cmd_render}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)  # see app.py: one thread is the faster choice for sampling
    try:
        COMMANDS[args.command](args)
    except MusicgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
