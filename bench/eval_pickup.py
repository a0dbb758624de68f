"""How often the MIDI importer finds a pickup that the file does not mark.

    PYTHONPATH=. .venv/bin/python bench/eval_pickup.py [--split test]

Corpus tunes of a split as a MIDI file that simply starts on the upbeat looks: pickup not marked,
the file ending with its last note. Printed: the share of pickups found exactly, of tunes without
one left alone, and how many tunes with a pickup could be found at all (those whose last bar does
not make up for the pickup: a file of whole bars is never given one). PICKUP_MARGIN was chosen on
the valid split; the test split is the honest figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.io.quantize import PICKUP_MARGIN, detect_pickup  # noqa: E402
from musicgen_app.training import corpus  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="test")
    args = p.parse_args()
    tunes = corpus.load_corpus().split(args.split)
    found = kept = with_pickup = findable = 0
    for m in tunes:
        unmarked = m.replace(pickup_steps=0, total_steps=m.notes[-1].end)
        guess = detect_pickup(unmarked)
        if m.pickup_steps:
            with_pickup += 1
            findable += unmarked.total_steps % m.bar_steps == m.pickup_steps
            found += guess == m.pickup_steps
        else:
            kept += guess == 0
    without = len(tunes) - with_pickup
    print(f"{args.split} split, margin {PICKUP_MARGIN}: {len(tunes)} tunes, {with_pickup} with a pickup")
    print(f"  pickups found exactly      {found}/{with_pickup} = {found / with_pickup:.1%} "
          f"({found}/{findable} of those whose last bar does not make up for the pickup)")
    print(f"  no pickup, left alone      {kept}/{without} = {kept / without:.1%}")


if __name__ == "__main__":
    main()
