"""The training corpus: monophonic melodies extracted from the corpus bundled inside music21.

    python -m musicgen_app.training.corpus            # extract (minutes) and print a summary
    python -m musicgen_app.training.corpus --summary  # summary of the cached corpus only
    python -m musicgen_app.training.corpus --midi-dir DIR --out data/mine.npz   # a folder of your own MIDI files

Collections: essenFolksong, oneills1850, airdsAirs, ryansMammoth, miscFolk and the soprano part of
the Bach chorales. Duplicates (the Essen ``test*.abc`` files repeat tunes; transposed copies too)
are removed before a deterministic split by piece into train / valid / test (90 / 5 / 5) on a hash
of the piece's content. The cache ``data/corpus.npz`` holds every melody's notes and metadata;
``fingerprint`` is the sha256 of those arrays, stored in each checkpoint trained on them.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

import music21 as m21
import numpy as np

from ..io.importer import load_melody
from ..io.score import stream_to_melody
from ..melody import Key, Melody, Note
from ..paths import DATA

DEFAULT_CACHE = DATA / "corpus.npz"
COLLECTIONS = ("essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth", "miscFolk", "bach")
ACCEPTED_METERS = {"2/4", "3/4", "4/4", "6/8", "12/8", "9/8", "3/8", "2/2", "3/2", "6/4", "5/4", "4/2"}
MIN_NOTES = 8
SPLITS = ("train", "valid", "test")


class Corpus:
    """Melodies with their collection, source id and split ('train' / 'valid' / 'test').

    Melodies are built from the cached arrays on first use, one split at a time: building them
    all takes seconds, and tests or evaluation usually need only the test split.
    """

    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.collections = [str(c) for c in arrays["coll"]]
        self.ids = [str(x) for x in arrays["id"]]
        self.splits = [SPLITS[s] for s in arrays["split"]]
        self.fingerprint = fingerprint(arrays)
        self._built: dict[int, Melody] = {}

    def melody(self, i: int) -> Melody:
        if i not in self._built:
            a = self.arrays
            lo, hi = int(a["offsets"][i]), int(a["offsets"][i + 1])
            self._built[i] = Melody(
                notes=tuple(Note(s, p, d) for s, p, d in a["notes"][lo:hi].tolist()),
                total_steps=int(a["total"][i]), qpm=float(a["qpm"][i]),
                time_signature=(int(a["ts"][i, 0]), int(a["ts"][i, 1])),
                key=Key(int(a["key"][i, 0]), "minor" if a["key"][i, 1] else "major"),
                pickup_steps=int(a["pickup"][i]), name=self.ids[i])
        return self._built[i]

    @property
    def melodies(self) -> list[Melody]:
        return [self.melody(i) for i in range(len(self))]

    def split(self, name: str) -> list[Melody]:
        return [self.melody(i) for i, s in enumerate(self.splits) if s == name]

    def __len__(self) -> int:
        return len(self.ids)


# -- extraction (runs in worker processes) -------------------------------------------------------
def _corpus_files() -> list[tuple[str, str]]:
    root = Path(m21.__file__).parent / "corpus"
    files = []
    for coll in COLLECTIONS:
        if coll == "bach":
            files += [(coll, str(p)) for p in sorted((root / "bach").glob("bwv*.mxl"))]
        else:
            files += [(coll, str(p)) for p in sorted((root / coll).glob("*.abc"))]
    # Big opus files first so two workers finish together.
    return sorted(files, key=lambda f: -os.path.getsize(f[1]))


def _soprano_index(score) -> int | None:
    for i, part in enumerate(score.parts):
        name = (part.partName or "").lower()
        if "sopran" in name or name in ("s", "s."):
            return i
    return None


def _melody_record(melody: Melody, coll: str, ident: str, meters: list[str]) -> dict | str:
    ts = f"{melody.time_signature[0]}/{melody.time_signature[1]}"
    if ts not in ACCEPTED_METERS:
        return f"meter {ts}"
    if len(set(meters)) > 1:
        return "meter changes"
    if len(melody.notes) < MIN_NOTES:
        return "too few notes"
    return {
        "coll": coll, "id": ident, "notes": [(n.start, n.pitch, n.duration) for n in melody.notes],
        "total": melody.total_steps, "ts": melody.time_signature, "key": (melody.key.tonic, melody.key.mode),
        "pickup": melody.pickup_steps, "qpm": melody.qpm,
    }


def extract_file(job: tuple[str, str]) -> tuple[list[dict], collections.Counter]:
    """All usable melodies of one corpus file, and a count of why others were skipped."""
    coll, path = job
    skipped: collections.Counter = collections.Counter()
    records = []
    try:
        parsed = m21.converter.parse(path)
    except Exception as exc:  # a corpus file music21 cannot read is skipped and counted
        skipped[f"unparseable file ({type(exc).__name__})"] += 1
        return records, skipped
    scores = list(parsed.scores) if isinstance(parsed, m21.stream.Opus) else [parsed]
    for i, score in enumerate(scores):
        ident = f"{coll}/{Path(path).name}#{i}"
        part = 0
        if coll == "bach":
            part = _soprano_index(score)
            if part is None:
                skipped["no soprano part"] += 1
                continue
        try:
            melody, facts = stream_to_melody(score, part)
        except Exception as exc:  # one broken tune must not lose its whole opus
            skipped[f"unreadable tune ({type(exc).__name__})"] += 1
            continue
        rec = _melody_record(melody, coll, ident, facts.time_signatures)
        if isinstance(rec, str):
            skipped[rec] += 1
        else:
            records.append(rec)
    return records, skipped


def extract_midi_file(path: str) -> tuple[list[dict], collections.Counter]:

    skipped: collections.Counter = collections.Counter()
    try:
        result = load_melody(path, bounded=False)  # already in a worker of our own pool
    except Exception as exc:  # the user's folder may hold anything; count and go on
        skipped[type(exc).__name__] += 1
        return [], skipped
    rec = _melody_record(result.melody, "user", Path(path).name, [])
    if isinstance(rec, str):
        skipped[rec] += 1
        return [], skipped
    return [rec], skipped


# -- dedupe, split, cache ------------------------------------------------------------------------
def content_key(notes: list[tuple[int, int, int]]) -> str:
    """Transposition-invariant identity of a tune: onsets, durations and intervals."""
    first = notes[0][1]
    blob = ",".join(f"{s}:{p - first}:{d}" for s, p, d in notes)
    return hashlib.sha1(blob.encode()).hexdigest()


def split_of(key: str) -> str:
    bucket = int(key[:8], 16) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def build(records: list[dict]) -> tuple[dict, int]:
    seen = set()
    kept = []
    for rec in sorted(records, key=lambda r: r["id"]):
        key = content_key(rec["notes"])
        if key in seen:
            continue
        seen.add(key)
        rec["split"] = split_of(key)
        kept.append(rec)
    dupes = len(records) - len(kept)
    counts = np.array([len(r["notes"]) for r in kept], dtype=np.int64)
    arrays = {
        "notes": np.array([n for r in kept for n in r["notes"]], dtype=np.int16).reshape(-1, 3),
        "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "total": np.array([r["total"] for r in kept], dtype=np.int32),
        "ts": np.array([r["ts"] for r in kept], dtype=np.int8).reshape(-1, 2),
        "key": np.array([(r["key"][0], r["key"][1] == "minor") for r in kept], dtype=np.int8).reshape(-1, 2),
        "pickup": np.array([r["pickup"] for r in kept], dtype=np.int8),
        "qpm": np.array([r["qpm"] for r in kept], dtype=np.float32),
        "split": np.array([SPLITS.index(r["split"]) for r in kept], dtype=np.int8),
        "coll": np.array([r["coll"] for r in kept]),
        "id": np.array([r["id"] for r in kept]),
    }
    return arrays, dupes


def fingerprint(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in ("notes", "offsets", "total", "ts", "key", "pickup", "split"):
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()[:16]


def load_corpus(path: Path | str = DEFAULT_CACHE) -> Corpus:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No corpus cache at {path}; run `make data` (python -m musicgen_app.training.corpus).")
    with np.load(path) as z:
        return Corpus({k: z[k] for k in z.files})


def summary(corpus: Corpus) -> str:
    lines = [f"melodies: {len(corpus)}   notes: {sum(len(m.notes) for m in corpus.melodies)}   "
             f"steps: {sum(m.total_steps for m in corpus.melodies)}   fingerprint: {corpus.fingerprint}"]
    for title, values in (
        ("split", corpus.splits),
        ("collection", corpus.collections),
        ("time signature", [f"{m.time_signature[0]}/{m.time_signature[1]}" for m in corpus.melodies]),
        ("mode", [m.key.mode for m in corpus.melodies]),
        ("key", [m.key.name for m in corpus.melodies]),
    ):
        counts = collections.Counter(values).most_common(12)
        lines.append(f"{title:>15}: " + ", ".join(f"{k} {v}" for k, v in counts))
    per = collections.defaultdict(int)
    for c, m in zip(corpus.collections, corpus.melodies):
        per[c] += len(m.notes)
    lines.append("notes per collection: " + ", ".join(f"{k} {v}" for k, v in sorted(per.items())))
    return "\n".join(lines)


def extract(jobs, worker, out: Path, processes: int) -> None:
    from tqdm import tqdm

    t0 = time.time()
    records: list[dict] = []
    skipped: collections.Counter = collections.Counter()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        for recs, skip in tqdm(pool.imap_unordered(worker, jobs), total=len(jobs), desc="files", file=sys.stderr):
            records += recs
            skipped += skip
    if not records:
        raise SystemExit("No usable melodies found.")
    arrays, dupes = build(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    test_ids = sorted(str(i) for i, s in zip(arrays["id"], arrays["split"]) if SPLITS[s] == "test")
    out.with_suffix(".test.txt").write_text("\n".join(test_ids) + "\n")
    print(f"extracted {len(records)} melodies in {time.time() - t0:.0f} s; removed {dupes} duplicates; "
          f"skipped: {dict(skipped)}")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and the test list {out.with_suffix('.test.txt')}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--midi-dir", type=Path, help="extract from your own folder of MIDI files instead")
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--summary", action="store_true", help="only print the summary of --out")
    args = ap.parse_args(argv)
    if not args.summary:
        if args.midi_dir:
            files = sorted(str(p) for p in args.midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
            extract(files, extract_midi_file, args.out, args.processes)
        else:
            extract(_corpus_files(), extract_file, args.out, args.processes)
    print(summary(load_corpus(args.out)))


if __name__ == "__main__":
    main()
