"""Train the realism critic (models/realism.py) that Generate's corpus bank chooses its melodies by.

    python -m musicgen_app.training.train_critic [--out checkpoints/realism_critic.safetensors] [--seed 0]
                                                 [--hidden 32] [--gamma 3] [--oversample 1.5]

Real: at most ``--real`` 4-bar windows of the training split's 4/4 tunes and a quarter as many 16-bar
ones (cut on bar lines ``--stride`` bars apart, as train_gan.window_melodies cuts them, drawn at
random). Generated: ``--generated`` 4-bar and a quarter as many 16-bar melodies of the shipped corpus
bank as Generate decodes them before any choice (service.decoding.bank_melodies, free attributes),
seeds 10_000 on, away from the seeds bench/eval_tunes.py uses. Only the training split: the bank's
windows are training windows.

The critic (realism_features, standardised, then ``--hidden`` tanh units) is fitted by full-batch
Adam on the cross-entropy with real and generated melodies weighted equally, first on 90 % of the
tunes to measure its balanced accuracy on the other 10 % (a tune's windows in one part; stored in the
checkpoint's metrics), then on all of them. ``--gamma`` and ``--oversample`` are stored as the
critic's config; they were chosen on the valid split (bench/eval_tunes.py --split valid).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..melody import Melody
from ..models.checkpoints import save_checkpoint
from ..models.code_bank import Attributes
from ..models.realism import FEATURE_NAMES, RealismCritic, RealismCriticConfig, realism_features_many
from ..paths import CHECKPOINTS
from ..service.decoding import GENERATE_BARS, bank_melodies
from ..service.melody_service import MelodyService
from .corpus import load_corpus
from .train_gan import tune_windows

CRITIC_PATH = CHECKPOINTS / "realism_critic.safetensors"
COMMAND = "python -m musicgen_app.training.train_critic"
FOUR_FOUR = (4, 4)
SEED_BASE = 10_000


def bank_samples(svc: MelodyService, n: int, bars: int, seed: int, per_call: int = 16) -> list[Melody]:
    """``n`` melodies of ``bars`` bars as the bank decodes them before any choice (free attributes)."""
    probe = Melody(notes=(), time_signature=FOUR_FOUR)
    out = []
    for call in range((n + per_call - 1) // per_call):
        gen = torch.Generator().manual_seed(seed + call)
        melodies, _, _ = bank_melodies(svc.vae, svc.bank, min(per_call, n - len(out)), probe, Attributes(), 1.0, gen,
                                       bars // GENERATE_BARS)
        out += melodies
    return out


def fit(x: torch.Tensor, y: torch.Tensor, config: RealismCriticConfig, l2: float, seed: int,
        epochs: int = 400) -> RealismCritic:
    torch.manual_seed(seed)
    critic = RealismCritic(config)
    with torch.no_grad():
        critic.mean.copy_(x.mean(0))
        critic.std.copy_(x.std(0).clamp_min(1e-3))
    balance = (1 - y).sum() / y.sum()  # real and generated weigh the same
    opt = torch.optim.Adam(critic.parameters(), lr=0.01)
    for _ in range(epochs):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(critic(x), y, pos_weight=balance)
        loss = loss + l2 * sum((p ** 2).sum() for n, p in critic.named_parameters() if n.endswith("weight"))
        loss.backward()
        opt.step()
    return critic.eval()


def accuracy(critic: RealismCritic, x: torch.Tensor, y: torch.Tensor) -> float:
    """Balanced accuracy: the mean of the shares of real and of generated melodies told right."""
    with torch.no_grad():
        right = (critic(x) > 0).float() == y
    return float((right[y == 1].float().mean() + right[y == 0].float().mean()) / 2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=CRITIC_PATH)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", type=int, default=24000, help="real 4-bar training windows, at most")
    ap.add_argument("--generated", type=int, default=24000, help="bank samples of 4 bars (and a quarter of it at 16)")
    ap.add_argument("--stride", type=int, default=2, help="bars between the real windows cut from a tune")
    ap.add_argument("--hidden", type=int, default=32, help="hidden units; 0: logistic regression")
    ap.add_argument("--l2", type=float, default=3e-3, help="weight decay on the layers' weights")
    ap.add_argument("--epochs", type=int, default=400, help="full-batch Adam steps")
    ap.add_argument("--gamma", type=float, default=RealismCriticConfig.gamma,
                    help="sharpness of Generate's choice (realism.py)")
    ap.add_argument("--oversample", type=float, default=RealismCriticConfig.oversample,
                    help="melodies Generate decodes per melody asked")
    ap.add_argument("--cache", type=Path, default=None, help="an .npz to keep (or read) the features in")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    log = lambda msg: print(f"[{time.time() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    svc = MelodyService.from_checkpoints()
    corpus = load_corpus()
    if args.cache is not None and args.cache.is_file():
        data = np.load(args.cache)
        x, y, group = data["x"], data["y"], data["group"]
        log(f"features read from {args.cache}")
    else:
        train = [m for m in corpus.split("train") if m.time_signature == FOUR_FOUR]
        rng = np.random.default_rng(args.seed)
        xs, ys, groups = [], [], []
        for bars, n_real, n_gen in ((4, args.real, args.generated), (16, args.real // 4, args.generated // 4)):
            real, owner = tune_windows(train, bars, args.stride)
            pick = rng.choice(len(real), min(n_real, len(real)), replace=False)
            gen = bank_samples(svc, n_gen, bars, SEED_BASE + 1000 * bars)
            log(f"{bars} bars: {len(pick)} real windows of {len(set(owner[pick]))} tunes, {len(gen)} bank samples")
            xs += [realism_features_many([real[i] for i in pick]), realism_features_many(gen)]
            ys += [1] * len(pick) + [0] * len(gen)
            # the generated melodies' groups: random, for the held-out part
            groups += list(owner[pick]) + list(rng.integers(0, 1 << 30, len(gen)))
        x, y, group = np.concatenate(xs), np.array(ys, np.float32), np.array(groups)
        if args.cache is not None:
            np.savez(args.cache, x=x, y=y, group=group)
    held = (group * 2654435761 % 1000) < 100  # a tenth of the tunes (and of the samples), by tune
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    config = RealismCriticConfig(hidden=args.hidden, gamma=args.gamma, oversample=args.oversample)
    critic = fit(xt[~held], yt[~held], config, args.l2, args.seed, args.epochs)
    metrics = {"heldout_accuracy": accuracy(critic, xt[held], yt[held]),
               "train_accuracy": accuracy(critic, xt[~held], yt[~held]), "heldout_n": int(held.sum())}
    log(f"held-out accuracy {metrics['heldout_accuracy']:.3f} (train {metrics['train_accuracy']:.3f}, "
        f"{metrics['heldout_n']} melodies)")
    critic = fit(xt, yt, config, args.l2, args.seed, args.epochs)  # all of it, for the checkpoint
    if not args.hidden:
        w = critic.out.weight[0].detach().numpy()
        top = np.argsort(-np.abs(w))[:8]
        metrics["top_features"] = {FEATURE_NAMES[i]: round(float(w[i]), 3) for i in top}
        log(f"heaviest weights (standardised features): {metrics['top_features']}")
    meta = svc.info["code_bank"]
    save_checkpoint(args.out, critic, data_fingerprint=corpus.fingerprint, train_steps=args.epochs, metrics=metrics,
                    extra={"train_command": " ".join([COMMAND, *(sys.argv[1:] if argv is None else argv)]),
                           "train_seconds": f"{time.time() - t0:.0f}",
                           "code_bank_weights_sha256": meta["weights_sha256"],
                           "vae_weights_sha256": meta["vae_weights_sha256"]})
    log(f"saved {args.out}")


if __name__ == "__main__":
    main()
