"""Experiment (issue 11): do the chorales' alto, tenor and bass voices help the LSTM as extra training data?

    PYTHONPATH=. .venv/bin/python scripts/chorale_voices.py corpus    # -> /tmp/chorale_voices/corpus.npz (40 s)
    .venv/bin/python -m musicgen_app.training.train lstm --init-from checkpoints/lstm.safetensors --lr 5e-4 \\
        --minutes 7 --corpus data/corpus.npz --out /tmp/chorale_voices/folk.safetensors \\
        --runs /tmp/chorale_voices/runs_folk
    .venv/bin/python -m musicgen_app.training.train lstm --init-from checkpoints/lstm.safetensors --lr 5e-4 \\
        --minutes 7 --corpus /tmp/chorale_voices/corpus.npz --out /tmp/chorale_voices/voices.safetensors \\
        --runs /tmp/chorale_voices/runs_voices
    PYTHONPATH=. .venv/bin/python scripts/chorale_voices.py evaluate  # bits per step / event, folk test and classical

The extra voices come only from chorales whose soprano is in the train split (none of the test
split's pieces leak in; the classical set has no chorales) and are all put in the train split. The
control fine-tunes the shipped LSTM for the same wall-clock time on the folk corpus alone, so the
comparison is extra data against none, not fine-tuning against none.
"""

from __future__ import annotations

import sys
import time
from multiprocessing import Pool
from pathlib import Path

import music21 as m21
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app import tokens as tk  # noqa: E402
from musicgen_app.io.score import stream_to_melody  # noqa: E402
from musicgen_app.models.checkpoints import load_checkpoint  # noqa: E402
from musicgen_app.training import (
    corpus,  # noqa: E402
    evaluate,  # noqa: E402
    stats,  # noqa: E402
)
from musicgen_app.training.batches import lstm_scores  # noqa: E402

WORK = Path("/tmp/chorale_voices")


def lower_voices(path: str) -> list[dict]:
    """Every part but the soprano of one chorale, as corpus records."""
    try:
        score = m21.converter.parse(path)
    except Exception:  # a file music21 cannot read adds nothing
        return []
    soprano, out = corpus._soprano_index(score), []
    for i in range(len(score.parts)):
        if i == soprano:
            continue
        try:
            melody, facts = stream_to_melody(score, i)
        except Exception:  # one unreadable part does not lose the others
            continue
        rec = corpus._melody_record(melody, "bach-voices", f"bach/{Path(path).name}#part{i}", facts.time_signatures)
        if isinstance(rec, dict):
            out.append(rec)
    return out


def make_corpus() -> None:
    z = dict(np.load(corpus.DEFAULT_CACHE))
    train = sorted({i.split("#")[0] for i, s in zip(z["id"], z["split"]) if i.startswith("bach/") and s == 0})
    root = Path(m21.__file__).parent / "corpus"
    t = time.time()
    with Pool(2) as pool:
        recs = [r for rs in pool.map(lower_voices, [str(root / i) for i in train], chunksize=8) for r in rs]
    notes = [np.array(r["notes"], dtype=np.int16).reshape(-1, 3) for r in recs]
    counts = np.array([len(n) for n in notes])
    z["notes"] = np.concatenate([z["notes"], *notes])
    z["offsets"] = np.concatenate([z["offsets"], z["offsets"][-1] + np.cumsum(counts)]).astype(np.int64)
    for k in ("total", "pickup", "qpm"):
        z[k] = np.concatenate([z[k], np.array([r[k] for r in recs], dtype=z[k].dtype)])
    z["ts"] = np.concatenate([z["ts"], np.array([r["ts"] for r in recs], dtype=np.int8).reshape(-1, 2)])
    keys = [(r["key"][0], r["key"][1] == "minor") for r in recs]
    z["key"] = np.concatenate([z["key"], np.array(keys, dtype=np.int8).reshape(-1, 2)])
    z["split"] = np.concatenate([z["split"], np.zeros(len(recs), np.int8)])  # train only
    z["coll"] = np.concatenate([z["coll"], np.array(["bach-voices"] * len(recs))])
    z["id"] = np.concatenate([z["id"], np.array([r["id"] for r in recs])])
    WORK.mkdir(exist_ok=True)
    np.savez(WORK / "corpus.npz", **z)
    print(f"{len(train)} train chorales -> {len(recs)} voices, {int(counts.sum())} notes, in {time.time() - t:.0f} s; "
          f"wrote {WORK / 'corpus.npz'}")


def evaluate_models() -> None:
    torch.set_num_threads(1)
    sets = {"folk test": corpus.load_corpus().split("test"),
            "classical": corpus.load_corpus(evaluate.CLASSICAL).melodies}
    print("| LSTM | folk bits/step | folk bits/event | classical bits/step | classical bits/event |")
    print("|---|---|---|---|---|")
    for name, path in (("shipped", Path("checkpoints/lstm.safetensors")), ("folk only", WORK / "folk.safetensors"),
                       ("folk + chorale voices", WORK / "voices.safetensors")):
        model, _ = load_checkpoint(path, kind="lstm")
        model.eval()
        cells = []
        for melodies in sets.values():
            nll, _, target = lstm_scores(model, stats.whole_melody_batches(melodies, model.config.lookback_bars))
            cells += [f"{nll / len(target) / stats.LN2:.3f}",
                      f"{nll / int((target != tk.HOLD).sum()) / stats.LN2:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    {"corpus": make_corpus, "evaluate": evaluate_models}[sys.argv[1] if len(sys.argv) > 1 else "corpus"]()
