"""Headless use of the studio, on the same service as the browser app.

    python -m musicgen_app continue in.mid --bars 8 --temperature 0.9 -o out.mid
    python -m musicgen_app interpolate a.mid b.mid --steps 7 -o morph.mid [--zip steps.zip]
    python -m musicgen_app generate -n 4 -o melodies/
    python -m musicgen_app render in.mid -o out.wav

Inputs may be MIDI, MusicXML, ABC or a text file of typed notes (``--track`` picks a MIDI track or a
score part). ``--debug-model`` uses the tiny random model (for tests). Errors are printed as one line
to stderr with exit status 2; the seed used is printed so a result can be reproduced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import MusicgenError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m musicgen_app", description="Continue, interpolate, generate "
                                "and render melodies from the command line.")
    p.add_argument("--debug-model", action="store_true", help="tiny random model instead of the checkpoints")
    p.add_argument("--checkpoints", default=None, help="folder with lstm.safetensors and vae.safetensors")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("continue", help="continue a melody with the LSTM")
    c.add_argument("input", help="MIDI, MusicXML, ABC or typed-notes text file")
    c.add_argument("-o", "--output", required=True, help="output .mid; with --variations N > 1, "
                   "out-1.mid ... out-N.mid")
    c.add_argument("--bars", type=int, default=4)
    c.add_argument("--temperature", type=float, default=1.0)
    c.add_argument("--variations", type=int, default=1)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--key-lock", default="off", help="off, detected, or a key such as 'D minor'")
    c.add_argument("--track", type=int, default=None, help="which track or part of the input (default: guess)")
    c.add_argument("--continuation-only", action="store_true", help="write only the new bars")
    c.add_argument("--wav", action="store_true", help="also write a .wav next to each .mid")

    i = sub.add_parser("interpolate", help="morph clip A into clip B with the VAE")
    i.add_argument("a")
    i.add_argument("b")
    i.add_argument("-o", "--output", required=True, help="output .mid of the whole morph")
    i.add_argument("--steps", type=int, default=5)
    i.add_argument("--temperature", type=float, default=0.0)
    i.add_argument("--seed", type=int, default=None)
    i.add_argument("--zip", default=None, help="also write a zip with each step as its own MIDI file")

    g = sub.add_parser("generate", help="sample new melodies with the VAE")
    g.add_argument("-n", "--count", type=int, default=4)
    g.add_argument("-o", "--output", required=True, help="output folder (created if missing)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--time-signature", default="4/4")
    g.add_argument("--qpm", type=float, default=120.0)

    r = sub.add_parser("render", help="play a melody through FluidSynth into an audio file")
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True, help=".wav, .ogg or .flac")
    r.add_argument("--soundfont", default=None, help="a name from the soundfonts list (default: the first)")
    r.add_argument("--program", type=int, default=None, help="General MIDI program 0-127")
    r.add_argument("--track", type=int, default=None)
    return p


def _service(args):
    from .service import MelodyService

    if args.debug_model:
        return MelodyService.debug()
    if args.checkpoints:
        return MelodyService.from_checkpoints(args.checkpoints)
    return MelodyService.from_checkpoints()


def _load(path: str, track=None):
    from .importer import load_melody

    result = load_melody(path, track=track)
    for n in result.notices:
        print(f"note: {Path(path).name}: {n}", file=sys.stderr)
    return result.melody


def _numbered(path: Path, i: int, n: int) -> Path:
    return path if n == 1 else path.with_name(f"{path.stem}-{i + 1}{path.suffix}")


def cmd_continue(args) -> None:
    from . import midi_io, render
    from .service import ContinueRequest

    melody = _load(args.input, args.track)
    req = ContinueRequest(melody, bars=args.bars, temperature=args.temperature, variations=args.variations,
                          seed=args.seed, key_lock=args.key_lock)
    result = _service(args).continue_(req)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    chosen = result.continuations if args.continuation_only else result.melodies
    for i, m in enumerate(chosen):
        path = _numbered(out, i, len(chosen))
        midi_io.melody_to_midi(m, path)
        print(f"wrote {path} ({m.num_bars:g} bars)")
        if args.wav:
            wav = path.with_suffix(".wav")
            render.write_audio(render.render(m), 44100, wav)
            print(f"wrote {wav}")
    for n in result.notices:
        print(f"note: {n}", file=sys.stderr)
    print(f"seed {result.seed}")


def cmd_interpolate(args) -> None:
    import zipfile

    from . import midi_io
    from .service import InterpolateRequest

    a, b = _load(args.a), _load(args.b)
    result = _service(args).interpolate(InterpolateRequest(a, b, steps=args.steps, temperature=args.temperature,
                                                           seed=args.seed))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    midi_io.melody_to_midi(result.morph, out)
    print(f"wrote {out} ({len(result.clips)} steps, {result.morph.num_bars:g} bars)")
    if args.zip:
        with zipfile.ZipFile(args.zip, "w", zipfile.ZIP_DEFLATED) as zf:
            for i, clip in enumerate(result.clips):
                zf.writestr(f"step-{i + 1:02d}-of-{len(result.clips):02d}.mid", midi_io.melody_to_midi(clip))
        print(f"wrote {args.zip}")
    for n in result.notices:
        print(f"note: {n}", file=sys.stderr)
    print(f"seed {result.seed}")


def cmd_generate(args) -> None:
    from . import midi_io
    from .errors import RequestError
    from .service import SampleRequest

    try:
        num, den = (int(x) for x in args.time_signature.split("/"))
    except ValueError:
        raise RequestError(f"Time signature {args.time_signature!r} is not like 3/4 or 6/8.") from None
    result = _service(args).sample(SampleRequest(count=args.count, temperature=args.temperature, seed=args.seed,
                                                 qpm=args.qpm, time_signature=(num, den)))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(result.melodies):
        path = out / f"melody-{i + 1:02d}.mid"
        midi_io.melody_to_midi(m, path)
        print(f"wrote {path}")
    print(f"seed {result.seed}")


def cmd_render(args) -> None:
    from . import render

    melody = _load(args.input, args.track)
    audio = render.render(melody, soundfont=args.soundfont, program=args.program)
    path = render.write_audio(audio, 44100, args.output)
    print(f"wrote {path} ({len(audio) / 44100:.1f} s)")


COMMANDS = {"continue": cmd_continue, "interpolate": cmd_interpolate, "generate": cmd_generate,
            "render": cmd_render}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except MusicgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
