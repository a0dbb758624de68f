"""Out-of-domain evaluation set: top lines of classical works in music21's corpus -> data/classical.npz.

    PYTHONPATH=. .venv/bin/python scripts/make_classical.py    # about 1.5 minutes on 2 cores

The models were trained on folk tunes and Bach chorale soprano lines (musicgen_app/training/corpus.py); none of
the works below is in that corpus. Each work's first part is read as corpus.py reads a corpus file
(corpus.extract_file: the part's notes quantised to 16ths, chords reduced to their top note, tunes in
a meter outside corpus.ACCEPTED_METERS or with meter changes skipped): the first violin of string
quartets by Haydn, Mozart, Beethoven and Robert Schumann, the canto of Monteverdi's madrigals (book 4),
the right hand of Clara Schumann's polonaises op. 1 and of Mozart's K. 545 (exposition), and a few
single movements (C. P. E. Bach's H. 186, Schubert's and Verdi's voice). The list is
fixed so the set does not change with music21's corpus; the file has the corpus cache's layout, so
``corpus.load_corpus("data/classical.npz")`` reads it (its train/valid/test field is corpus.py's hash split and
is not used: every melody is held out).
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import sys
import time
from pathlib import Path

import music21 as m21
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.training import corpus  # noqa: E402

OUT = corpus.DATA / "classical.npz"
WORKS = (
    [f"haydn/opus1no1/movement{i}.mxl" for i in range(1, 6)]
    + [f"haydn/opus74no1/movement{i}.mxl" for i in range(1, 5)]
    + [f"mozart/k80/movement{i}.mxl" for i in range(1, 5)]
    + [f"mozart/k155/movement{i}.mxl" for i in range(1, 4)]
    + [f"mozart/k156/movement{i}.mxl" for i in range(1, 5)]
    + [f"mozart/k458/movement{i}.mxl" for i in range(1, 5)]
    + [f"beethoven/opus18no1/movement{i}.mxl" for i in range(1, 5)]
    + ["schumann_robert/opus41no1/movement2.mxl", "schumann_robert/opus41no1/movement4.mxl"]  # 1, 3, 5 change meter
    + [f"schumann_clara/polonaise_op1n{i}.mxl" for i in range(1, 5)]
    + [f"monteverdi/madrigal.4.{i}.mxl" for i in range(1, 21)]
    + ["mozart/k545/movement1_exposition.mxl", "cpebach/h186.mxl", "schubert/Lindenbaum.xml",
       "verdi/laDonnaEMobile.mxl"]
)


def jobs() -> list[tuple[str, str]]:
    """(collection, path) per work; the collection is the work's folder, so each id names its work."""
    root = Path(m21.__file__).parent / "corpus"
    return [(str(Path(w).parent), str(root / w)) for w in WORKS]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args(argv)
    t0 = time.time()
    records, skipped = [], collections.Counter()
    with multiprocessing.get_context("fork").Pool(args.processes) as pool:
        for recs, skip in pool.imap_unordered(corpus.extract_file, jobs()):
            records += recs
            skipped += skip
    arrays, dupes = corpus.build(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"{len(WORKS)} works -> {len(records)} melodies in {time.time() - t0:.0f} s; removed {dupes} duplicates; "
          f"skipped: {dict(skipped)}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")
    print(corpus.summary(corpus.load_corpus(args.out)))


if __name__ == "__main__":
    main()
