"""Headless use of the studio, on the same service and file writers as the browser app.

    musicgen continue in.mid --bars 8 --temperature 0.9 -o out.mid
    musicgen interpolate a.mid b.mid --steps 7 -o morph.mid [--zip steps.zip]
    musicgen generate -n 4 -o melodies/
    musicgen render in.mid -o out.wav

(``musicgen`` is installed into the venv by the set-up; ``python -m musicgen_app`` is the same.)

Inputs may be MIDI, MusicXML, ABC, a text file of typed notes (``--track`` picks a MIDI track or a
score part) or a recording: WAV, FLAC, OGG or MP3, transcribed (``--input-qpm`` gives its tempo,
else it is estimated; ``--input-meter`` its meter, else 4/4; ``--input-downbeat`` the seconds into it at
which bar 1 starts, else found from the notes). Settings, their ranges, choices and
defaults are the request types' declarations (see ``--help`` of each command), as on the page and
in the API.
``--debug-model`` uses the tiny random model (for tests). Errors are printed as one line to stderr
with exit status 2; the seed used is printed so a result can be reproduced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import render
from .actions import outputs
from .actions.inputs import api_downbeat
from .errors import MusicgenError, RequestError
from .io.importer import load_melody
from .melody import Melody
from .service import ContinueRequest, InterpolateRequest, MelodyService, SampleRequest
from .settings import Choice, Flag, build_request, parse_time_signature, settings_of


def add_settings(parser: argparse.ArgumentParser, request_type, skip=(), flags: dict | None = None) -> list[str]:
    """An option per declared setting of ``request_type`` (help, choices and default from the
    declaration; values parsed by it); returns the settings' names."""
    names = [n for n in settings_of(request_type) if n not in skip]
    for name in names:
        s = settings_of(request_type)[name]
        flag = (flags or {}).get(name, f"--{name.replace('_', '-')}")
        kw = {"dest": name, "default": None, "help": s.describe()}
        if isinstance(s, Flag):
            kw.update(action="store_const", const=True, help=f"{s.help}")
        elif isinstance(s, Choice) and len(s.options) <= 8:
            kw.update(choices=s.values, metavar="{" + ",".join(map(str, s.values)) + "}")
            if all(isinstance(v, int) for v in s.values):  # argparse compares the typed text with the choices
                kw.update(type=int)
        parser.add_argument(*([flag] if isinstance(flag, str) else flag), **kw)
    return names


def _settings(args, names: list[str]) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _parser() -> tuple[argparse.ArgumentParser, dict]:
    p = argparse.ArgumentParser(prog="musicgen", description="Continue, interpolate, generate and render melodies "
                                "from the command line.")
    p.add_argument("--debug-model", action="store_true", help="tiny random model instead of the checkpoints")
    p.add_argument("--checkpoints", default=None, help="folder with lstm.safetensors and vae.safetensors")
    p.add_argument("--input-qpm", type=float, default=None, metavar="QPM",
                   help="tempo of recorded inputs (WAV, FLAC, OGG, MP3), quarter notes a minute (default: estimated)")
    p.add_argument("--input-meter", type=_meter, default=(4, 4), metavar="N/D",
                   help="meter of recorded inputs, such as 3/4 or 6/8 (default: 4/4)")
    p.add_argument("--input-downbeat", default=None, metavar="SECONDS",
                   help="seconds into recorded inputs at which bar 1 starts, after a count-in or lead-in; needs "
                        "--input-qpm (default: found from the notes)")
    sub = p.add_subparsers(dest="command", required=True)
    names = {}

    c = sub.add_parser("continue", help="continue a melody with the LSTM")
    c.add_argument("input", help="MIDI, MusicXML, ABC, typed-notes text file or a recording (WAV, FLAC, OGG, MP3)")
    c.add_argument("-o", "--output", required=True, help="output .mid; with several variations out-1.mid ... "
                   "out-N.mid, each beside its new bars alone (out-1-continuation.mid)")
    names["continue"] = add_settings(c, ContinueRequest, flags={"ending": "--end-on"})
    c.add_argument("--track", type=int, default=None, help="which track or part of the input (default: guess)")
    c.add_argument("--continuation-only", action="store_true", help="write only the new bars")
    c.add_argument("--wav", action="store_true", help="also write a .wav next to each .mid")

    i = sub.add_parser("interpolate", help="morph clip A into clip B with the VAE")
    i.add_argument("a")
    i.add_argument("b")
    i.add_argument("-o", "--output", required=True, help="output .mid of the whole morph")
    names["interpolate"] = add_settings(i, InterpolateRequest)
    i.add_argument("--zip", default=None, help="also write a zip with each step as its own MIDI file")
    i.add_argument("--wav", default=None, help="also write the morph's audio here")

    g = sub.add_parser("generate", help="sample new melodies with the VAE")
    g.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    names["generate"] = add_settings(g, SampleRequest, flags={"count": ("-n", "--count")})
    g.add_argument("--wav", action="store_true", help="also write a .wav next to each .mid")
    g.add_argument("--like", nargs="+", metavar="CLIP", default=None,
                   help="2-20 clips (MIDI, MusicXML, ABC): learn their style and sample near it (sampler: style)")

    r = sub.add_parser("render", help="play a melody through FluidSynth into an audio file")
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True, help=".wav, .ogg or .flac")
    r.add_argument("--soundfont", default=None,
                   help="a name from the soundfonts list (default: FluidR3_GM, else the font inside pretty_midi)")
    r.add_argument("--program", type=int, default=None, help="General MIDI program 0-127")
    r.add_argument("--track", type=int, default=None)
    return p, names


def _service(args) -> MelodyService:
    if args.debug_model:
        return MelodyService.debug()
    return MelodyService.from_checkpoints(args.checkpoints) if args.checkpoints else MelodyService.from_checkpoints()


def _meter(text: str) -> tuple[int, int]:
    try:
        return parse_time_signature(text)
    except RequestError as exc:  # argparse reports its own error type as a usage error (exit 2)
        raise argparse.ArgumentTypeError(str(exc)) from None


def _load(path: str, track=None, qpm: float | None = None, meter: tuple[int, int] = (4, 4),
          downbeat: float | None = None) -> Melody:
    result = load_melody(path, track=track, qpm=qpm, time_signature=meter, downbeat=downbeat)
    for n in result.notices:
        print(f"note: {Path(path).name}: {n}", file=sys.stderr)
    return result.melody


def _downbeat(args) -> float | None:
    return api_downbeat(args.input_downbeat, args.input_qpm)


def _wrote(*paths) -> None:
    for path in paths:
        if path is not None:
            print(f"wrote {path}")


def _finish(result, files) -> None:
    for n in [*result.notices, *files.notices]:
        print(f"note: {n}", file=sys.stderr)
    print(f"seed {result.seed}")


def cmd_continue(args, names) -> None:
    melody = _load(args.input, args.track, args.input_qpm, args.input_meter, _downbeat(args))
    req = build_request(ContinueRequest, _settings(args, names), melody=melody)
    result = _service(args).continue_(req)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = outputs.write_continue(result, out, whole=not args.continuation_only, audio=args.wav,
                                   program=req.program_number, soundfont=req.soundfont or None)
    for v in files.variations:
        _wrote(v.midi, v.new_bars_midi, v.audio)
    _finish(result, files)


def cmd_interpolate(args, names) -> None:
    a, b = (_load(path, qpm=args.input_qpm, meter=args.input_meter, downbeat=_downbeat(args))
            for path in (args.a, args.b))
    req = build_request(InterpolateRequest, _settings(args, names), a=a, b=b)
    result = _service(args).interpolate(req)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = outputs.write_morph(result, out, steps_zip=Path(args.zip) if args.zip else None,
                                audio=Path(args.wav) if args.wav else None, soundfont=req.soundfont or None)
    print(f"wrote {files.midi} ({len(result.clips)} steps, {sum(c.num_bars for c in result.clips):g} bars)")
    _wrote(files.steps_zip, files.audio)
    _finish(result, files)


def cmd_generate(args, names) -> None:
    service = _service(args)
    settings, style = _settings(args, names), None
    if args.like:
        style = service.learn_style([_load(path, None, args.input_qpm, args.input_meter) for path in args.like])
        settings["sampler"] = "style"
    req = build_request(SampleRequest, settings, style=style)
    result = service.sample(req)
    files = outputs.write_generated(result, Path(args.output), audio=args.wav, zipped=False,
                                    soundfont=req.soundfont or None)
    _wrote(*files.midis, *files.audios)
    _finish(result, files)


def cmd_render(args, names) -> None:
    melody = _load(args.input, args.track, args.input_qpm, args.input_meter, _downbeat(args))
    audio = render.render(melody, soundfont=args.soundfont, program=args.program)
    path = render.write_audio(audio, render.SAMPLE_RATE, args.output)
    print(f"wrote {path} ({len(audio) / render.SAMPLE_RATE:.1f} s)")


COMMANDS = {"continue": cmd_continue, "interpolate": cmd_interpolate, "generate": cmd_generate,
            "render": cmd_render}


def main(argv: list[str] | None = None) -> int:
    parser, names = _parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # see app.py: one thread is the faster choice for sampling
    try:
        COMMANDS[args.command](args, names.get(args.command, []))
    except MusicgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
