"""The project's folders the package reads: checkpoints, SoundFonts and the corpus cache.

The package runs from its checkout (``pip install -e .``), so they sit beside it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
SOUNDFONTS = ROOT / "soundfonts"
DATA = ROOT / "data"
