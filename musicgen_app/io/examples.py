"""The example melodies shipped with the studio, by the name the example picker shows.

The files in ``musicgen_app/examples/`` are made by ``scripts/make_examples.py`` from public-domain
tunes in music21's corpus; each is in a different format so the picker exercises every importer.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ImportFailed

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"

EXAMPLES: dict[str, str] = {
    "Folk tune (2/4, ABC)": "folk_tune.abc",
    "Chorale line (Bach, MusicXML)": "chorale_line.musicxml",
    "Waltz (3/4, MIDI)": "waltz_3-4.mid",
    "Jig (6/8, MIDI)": "jig_6-8.mid",
    "Multitrack (bass, fiddle, drums)": "multitrack.mid",
}
DEFAULT_EXAMPLE = "Folk tune (2/4, ABC)"


def example_names() -> list[str]:
    return list(EXAMPLES)


def example_path(name: str) -> Path:
    """The file behind an example name (or its file name, which API clients may find easier)."""
    by_file = {v: v for v in EXAMPLES.values()}
    file = EXAMPLES.get(name) or by_file.get(name)
    if file is None:
        raise ImportFailed(f"Unknown example {name!r}; choose one of: {', '.join(EXAMPLES)}.")
    path = EXAMPLES_DIR / file
    if not path.is_file():
        raise ImportFailed(f"The example file {path} is missing; rebuild it with scripts/make_examples.py.")
    return path
