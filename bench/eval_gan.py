"""The latent GAN beside the other samplers of Generate, by the three classifiers of
training/two_sample.py (logistic regression and boosted trees on hand features, a token CNN;
5-fold, a tune's test windows in one fold; 0.5 = indistinguishable), on the same 4/4 samples
``python -m musicgen_app.training.train_gan --evaluate`` measures (train_gan.sampled_melodies: the
GAN, its unrefined sources, the bank as Generate uses it, the Gaussian prior, a Gaussian fitted to
the 4/4 training codes, decoded valid codes) against the test split's 4/4 windows.

    PYTHONPATH=. .venv/bin/python bench/eval_gan.py [--n 400] [--seed 0]

About a minute a sampler on one core. train_gan --evaluate keeps its one classifier (the test its
choices were made with); this adds the three.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen_app.models.checkpoints import load_checkpoint  # noqa: E402
from musicgen_app.training import train_gan as tg  # noqa: E402
from musicgen_app.training.corpus import load_corpus  # noqa: E402
from musicgen_app.training.two_sample import two_sample_accuracies  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="samples per sampler")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    vae, _ = load_checkpoint(tg.VAE_PATH, kind="vae")
    gan = load_checkpoint(tg.GAN_PATH, kind="latent_gan")[0] if tg.GAN_PATH.exists() else None
    bank = load_checkpoint(tg.BANK_PATH, kind="code_bank")[0] if tg.BANK_PATH.exists() else None
    corpus = load_corpus()
    four = [m for m in corpus.split("test") if m.time_signature == (4, 4)]
    reference = tg.window_melodies(four, vae.config.window)
    tunes = [i for i, m in enumerate(four) for _ in range(len(tg.vae_windows([m], vae.config.window, stride_bars=4)))]
    codes = dict(np.load(tg.WORK / "codes.npz")) if (tg.WORK / "codes.npz").exists() else None
    valid = [m for m in corpus.split("valid") if m.time_signature == (4, 4)]
    made = tg.sampled_melodies(vae, gan, bank, codes, valid, args.n, args.seed)
    print(f"Test split: {len(reference)} held-out 4/4 windows from {len(four)} tunes; {args.n} samples per sampler, "
          f"seed {args.seed}.\n\n| sampler | logistic | boosted trees | token CNN |\n|---|---|---|---|", flush=True)
    for name, melodies in made.items():
        acc = two_sample_accuracies(melodies, reference, seed=args.seed, groups_real=tunes)
        print(f"| {name} | {acc['logistic']:.3f} | {acc['trees']:.3f} | {acc['cnn']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
