"""The cases behind tests/data/golden.json: every example through continue, interpolate and generate."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from musicgen_app.actions.outputs import morph_midi
from musicgen_app.io.examples import EXAMPLES, example_path
from musicgen_app.io.importer import load_melody
from musicgen_app.io.midi import melody_to_midi
from musicgen_app.service import ContinueRequest, InterpolateRequest, MelodyService, SampleRequest

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def golden_hashes() -> dict[str, str]:
    torch.set_num_threads(1)  # one thread: the order of float sums, and so every sample, is fixed
    svc = MelodyService.from_checkpoints()
    names = list(EXAMPLES)
    melodies = {n: load_melody(example_path(n)).melody for n in names}
    out: dict[str, str] = {}
    for i, name in enumerate(names):
        for key_lock, temp, ending, tag in (("off", 1.0, "free", ""), ("detected", 0.7, "free", ""),
                                            ("off", 1.0, "tonic chord", "tonic-chord/")):
            r = svc.continue_(ContinueRequest(melodies[name], bars=2, temperature=temp, variations=2, seed=7 + i,
                                              key_lock=key_lock, ending=ending))
            for v, (whole, cont) in enumerate(zip(r.melodies, r.continuations)):
                out[f"continue/{tag}{name}/{key_lock}/{v}/whole"] = _sha(melody_to_midi(whole))
                out[f"continue/{tag}{name}/{key_lock}/{v}/new"] = _sha(melody_to_midi(cont))
        other = names[(i + 1) % len(names)]
        for temp, pacing, tag in ((0.0, "linear", ""), (0.8, "linear", ""), (0.0, "even", "even/")):
            r = svc.interpolate(InterpolateRequest(melodies[name], melodies[other], steps=5, temperature=temp,
                                                   seed=3 + i, pacing=pacing))
            out[f"interpolate/{tag}{name}/{other}/{temp}/morph"] = _sha(morph_midi(r))
            for c, clip in enumerate(r.clips):
                out[f"interpolate/{tag}{name}/{other}/{temp}/{c}"] = _sha(melody_to_midi(clip))
    for ts in ((4, 4), (3, 4), (6, 8)):
        for sampler, tag, shape in (("gaussian", "", {}), ("gan", "gan/", {}), ("bank", "bank/", {}),
                                    ("bank", "bank-shaped/", {"notes_per_bar": 4.0, "key": "minor"})):
            r = svc.sample(SampleRequest(count=3, temperature=1.0, seed=5, qpm=100, time_signature=ts,
                                         sampler=sampler, **shape))
            for k, m in enumerate(r.melodies):
                out[f"generate/{tag}{ts[0]}-{ts[1]}/{k}"] = _sha(melody_to_midi(m))
    for sampler in ("bank", "gan", "gaussian"):  # whole tunes with form
        for ts in ((4, 4), (6, 8)):
            r = svc.sample(SampleRequest(count=2, seed=6, time_signature=ts, sampler=sampler, bars=16))
            for k, m in enumerate(r.melodies):
                out[f"generate/16-bars/{sampler}/{ts[0]}-{ts[1]}/{k}"] = _sha(melody_to_midi(m))
    return out
