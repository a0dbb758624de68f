"""How evenly a morph changes from step to step: linear slerp steps against even pacing.

    PYTHONPATH=. .venv/bin/python bench/eval_pacing.py [--pairs 100] [--steps 7]

Held-out 4-bar 4/4 windows of the test split, paired at random; each pair morphed with the shipped
VAE at temperature 0 with both pacings. For the sequence of clips A, ..., B it prints: the share of
tokens that change between neighbouring clips (mean of each step, A->1 first), the coefficient of
variation of those changes (0 = perfectly even), how often the first interior clip is a near-copy
of A (under 5 % of tokens differ), and how often the distance from A rises at every step.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app import tokens as tk  # noqa: E402
from musicgen_app.service import PACINGS, InterpolateRequest, MelodyService  # noqa: E402
from musicgen_app.training import corpus  # noqa: E402
from musicgen_app.training.batches import vae_windows  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--steps", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    svc = MelodyService.from_checkpoints()
    test = [m for m in corpus.load_corpus().split("test") if m.time_signature == (4, 4)]
    windows = vae_windows(test, svc.window, stride_bars=4)
    rng = np.random.default_rng(1)
    idx = rng.permutation(len(windows))[:2 * args.pairs].reshape(-1, 2)
    template = test[0].replace(notes=(), total_steps=svc.window, pickup_steps=0)
    clips = [tk.decode(windows.tokens[i], template) for i in idx.reshape(-1)]
    print(f"{len(idx)} held-out pairs of 4-bar 4/4 windows, {args.steps} steps, temperature 0")
    for pacing in PACINGS:
        changes, cv, copies, monotone = [], [], 0, 0
        for k in range(len(idx)):
            res = svc.interpolate(InterpolateRequest(clips[2 * k], clips[2 * k + 1], steps=args.steps, seed=0,
                                                     pacing=pacing))
            rows = [tk.encode(c).tokens for c in res.clips]
            step = np.array([np.mean(x != y) for x, y in zip(rows, rows[1:])])
            from_a = np.array([np.mean(rows[0] != r) for r in rows[1:]])
            changes.append(step)
            cv.append(step.std() / step.mean() if step.mean() else 0.0)
            copies += from_a[0] < 0.05
            monotone += bool(np.all(np.diff(from_a) > 0))
        mean = np.mean(changes, axis=0)
        print(f"{pacing:>7}: change per step {' '.join(f'{c:.2f}' for c in mean)}; variation {np.mean(cv):.2f}; "
              f"first step a near-copy of A {copies / len(idx):.0%}; distance from A always rising "
              f"{monotone / len(idx):.0%}")


if __name__ == "__main__":
    main()
