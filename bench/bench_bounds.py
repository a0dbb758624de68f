"""How long crafted inputs hold the studio, and what they cost: each should be bounded.

    PYTHONPATH=. .venv/bin/python bench/bench_bounds.py

Prints wall time (and, for audio, seconds and bytes) for the files outside review used against the
server: an 8,000-note MIDI (64 KB), a 100,000-note MIDI (800 KB), a 40 KB .mxl holding megabytes of
MusicXML, a 1 MB ABC file, a 72-byte MIDI that asks for 102 minutes of audio, and one request of 20
style clips, each that 800 KB MIDI (its parses share the request's one budget).
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_bounds import many_notes_midi  # noqa: E402

from musicgen_app import render  # noqa: E402
from musicgen_app.actions.studio import read_clips  # noqa: E402
from musicgen_app.errors import MusicgenError  # noqa: E402
from musicgen_app.io import sandbox  # noqa: E402
from musicgen_app.io.importer import load_melody, parse_text  # noqa: E402
from musicgen_app.io.score import melody_to_musicxml  # noqa: E402
from musicgen_app.melody import Melody, Note  # noqa: E402


def timed(label: str, fn) -> None:
    t = time.perf_counter()
    try:
        out = fn()
    except MusicgenError as exc:
        out = f"refused: {exc}"
    print(f"{label:<44} {time.perf_counter() - t:6.2f} s   {str(out)[:110]}")


def big_mxl() -> bytes:
    one = melody_to_musicxml(Melody(notes=tuple(Note(2 * i, 60 + i % 7, 2) for i in range(8)), total_steps=16))
    head, rest = one.split(b"<measure", 1)
    measure, tail = (b"<measure" + rest).split(b"</part>", 1)
    xml = head + measure * 6000 + b"</part>" + tail
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("score.xml", xml)
    print(f"(.mxl: {len(buf.getvalue()) / 1e3:.0f} KB holding {len(xml) / 1e6:.1f} MB of MusicXML)")
    return buf.getvalue()


def long_note() -> Melody:
    return Melody(notes=(Note(0, 60, 64 * 64),), time_signature=(8, 2), qpm=10)


def main() -> None:
    sandbox.warm_up()
    print(f"time budget {sandbox.TIME_BUDGET_SECONDS:g} s a file, {sandbox.REQUEST_BUDGET_SECONDS:g} s a request; "
          f"memory budget {sandbox.MEMORY_BUDGET_BYTES // 2**20} MB")
    for n in (8000, 100_000):
        data = many_notes_midi(n)
        timed(f"MIDI, {n:,} notes ({len(data) / 1e3:.0f} KB)",
              lambda d=data: f"{load_melody(d, filename='x.mid').melody.num_bars:g} bars")
    mxl = big_mxl()
    timed("compressed MusicXML", lambda: f"{load_melody(mxl, filename='x.mxl').melody.num_bars:g} bars")
    abc = "".join(f"X:{i}\nT:t\nM:4/4\nL:1/8\nK:G\n" + "GABc dedB|" * 40 + "\n" for i in range(1, 2400))
    timed(f"ABC, {len(abc) / 1e6:.1f} MB", lambda: f"{parse_text(abc).melody.num_bars:g} bars")
    m = long_note()
    timed(f"render of a {m.duration_seconds / 60:.0f}-minute note",
          lambda: f"{len(render.render(m)) / render.SAMPLE_RATE:.0f} s of audio, "
                  f"{len(render.to_wav_bytes(render.render(m), render.SAMPLE_RATE)) / 1e6:.0f} MB of WAV")

    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mid"
        clip.write_bytes(many_notes_midi(100_000))

        def style_request():
            with sandbox.request_budget():
                return f"{len(read_clips([clip] * 20))} clips read"

        timed("one request: 20 clips of 100,000 notes", style_request)


if __name__ == "__main__":
    main()
