"""Train and measure the latent GAN, a learned sampler for Generate (see models/latent_gan.py).

    python -m musicgen_app.training.train_gan --minutes 20 --out checkpoints/gan.safetensors [--resume]
    python -m musicgen_app.training.train_gan --evaluate [--gan checkpoints/gan.safetensors] [--n 400]
    python -m musicgen_app.training.train_gan --rolls       # piano rolls of 16 samples per sampler, into /tmp/gan

Training data: the posterior means (mu) of the shipped VAE (``checkpoints/vae.safetensors``) for
every training window, cut by batches.vae_windows exactly as VAE training cut them but with a
stride of one bar (all meters, no transposition: the sampler should land where untransposed
corpus windows lie). Overlapping windows are near copies of each other, which a critic does not
mind but a nearest-neighbour test does, so the validation codes use a stride of four bars (no
overlap). Codes are cached in /tmp/gan/codes.npz under the VAE's weight digest, the corpus
fingerprint and the strides, so reruns skip encoding.

Training: WGAN-GP (Gulrajani et al. 2017) on standardised codes, both networks conditioned on the
window's meter, with an exponential moving average of the generator's weights (the one that is
saved). Every ``--eval-every`` generator steps the EMA generator is validated, critic-free, on the
valid split's codes: a leave-one-out 1-nearest-neighbour two-sample test (Lopez-Paz & Oquab 2017;
0.5 = generated and held-out codes cannot be told apart, 1.0 = always can), taken within each
meter. The best such generator so far is written to ``--out``; the full training state goes to
/tmp/gan/state-<tag>.safetensors so ``--resume`` continues a stopped run.

Each run first logs two baselines on the same validation: codes of other training windows (what
a perfect sampler would score) and the VAE's fitted Gaussian prior. Why a sampler is hard to learn
here: the decoder turns a code into a corpus-like melody only close to where real codes lie, and
the space between real codes decodes like the Gaussian's samples; adding noise to training codes,
or taking midpoints of two of them, shows it (models/code_bank.py is the sampler built on that).
Figures of the shipped GAN are in checkpoints/MODEL_CARD.md; ``--evaluate`` measures them again.

Measuring (``--evaluate``, test split only, 4-bar windows of 4/4 as evaluate.eval_samples): z
from (a) the GAN, (b) the VAE's fitted Gaussian prior (MelodyVAE.sample_prior), (c) a Gaussian
fitted to the 4/4 training codes only (so the GAN's meter conditioning is not mistaken for its
shape), and (d) the posterior means of held-out valid windows (the best any sampler of z can do
with this decoder), each decoded as MelodyService.sample decodes. Printed: the statistic overlaps
of stats.compare_stats and stats.compare_bar_stats, and a classifier two-sample test.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from .. import tokens as tk
from ..errors import CheckpointError
from ..melody import Melody, estimate_key
from ..models.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from ..models.latent_gan import LatentCritic, LatentGAN, LatentGANConfig, meter_name
from ..models.vae import MelodyVAE
from ..paths import CHECKPOINTS
from ..service.melody_service import melodies_from_codes
from ..views import piano_roll_png, tile_sheet
from .batches import vae_windows
from .corpus import DEFAULT_CACHE, load_corpus
from .stats import TARGETS, bar_stats, compare_bar_stats, compare_stats, melody_stats

WORK = Path("/tmp/gan")
VAE_PATH = CHECKPOINTS / "vae.safetensors"
GAN_PATH = CHECKPOINTS / "gan.safetensors"


class Log:
    def __init__(self, path: Path | None):
        self.f = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.f = path.open("a")

    def __call__(self, msg: str):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


# -- codes ----------------------------------------------------------------------------------------
def meter_windows(melodies: list[Melody], window: int, stride_bars: int):
    """Every window of ``melodies`` in the order the cached codes have (meters by name, melodies in
    order): for each meter, its name, the windows (batches.SeqSet) and the index in ``melodies`` of
    each window's melody."""
    by_meter: dict[str, list[int]] = {}
    for i, m in enumerate(melodies):
        by_meter.setdefault(meter_name(m.time_signature), []).append(i)
    for name, group in sorted(by_meter.items()):
        owners = []
        for i in group:  # one melody at a time only to know each window's melody
            owners += [i] * len(vae_windows([melodies[i]], window, stride_bars=stride_bars))
        yield name, vae_windows([melodies[i] for i in group], window, stride_bars=stride_bars), np.array(owners)


@torch.inference_mode()
def encode_codes(vae: MelodyVAE, melodies: list[Melody], stride_bars: int, batch: int = 512):
    """Posterior means of every window of ``melodies`` -> codes (N, Z) float32, meter names (N,), and the
    index in ``melodies`` of each window's melody (N,)."""
    codes, meters, owners = [], [], []
    for name, w, own in meter_windows(melodies, vae.config.window, stride_bars):
        for s in range(0, len(w), batch):
            mu, _ = vae.encode(torch.from_numpy(w.tokens[s : s + batch]), torch.from_numpy(w.feats[s : s + batch]))
            codes.append(mu.numpy().astype(np.float32))
        meters += [name] * len(w)
        owners.append(own)
    return np.concatenate(codes), np.array(meters), np.concatenate(owners)


def load_codes(vae_path: Path, corpus, train_stride: int, valid_stride: int, cache: Path, log) -> dict:
    """Train and valid codes of the VAE at ``vae_path``, from ``cache`` when it matches."""
    key = f"v2-{read_metadata(vae_path)['weights_sha256'][:16]}-{corpus.fingerprint}-{train_stride}-{valid_stride}"
    if cache.exists():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                log(f"codes from {cache}")
                return {k: z[k] for k in z.files}
    vae, _ = load_checkpoint(vae_path, kind="vae")
    t0 = time.time()
    out = {"key": np.array(key)}
    for split, stride in (("train", train_stride), ("valid", valid_stride)):
        out[f"{split}_codes"], out[f"{split}_meters"], out[f"{split}_melody"] = encode_codes(
            vae, corpus.split(split), stride
        )
        log(f"encoded {len(out[f'{split}_codes'])} {split} windows (stride {stride} bars) in {time.time() - t0:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


# -- critic-free validation on codes ------------------------------------------------------------
def one_nn_accuracy(
    a: torch.Tensor, b: torch.Tensor, groups_a=None, groups_b=None, owner_b=None, block: int = 1024
) -> float:
    """Leave-one-out 1-NN two-sample test between point sets ``a`` and ``b`` (0.5 = indistinguishable).

    With groups (meter indices), each point's neighbour is sought among points of its own group.
    ``owner_b`` (the melody of each point of ``b``) keeps a point's neighbour out of its own melody:
    windows of one tune sit close together, and would make held-out codes easy to tell from
    independent samples even for a perfect sampler."""
    x = torch.cat([a, b])
    label = torch.cat([torch.zeros(len(a)), torch.ones(len(b))])
    g = None if groups_a is None else torch.cat([groups_a, groups_b])
    own = None if owner_b is None else torch.cat([-1 - torch.arange(len(a)), torch.as_tensor(owner_b)])
    correct = 0
    for s in range(0, len(x), block):
        d = torch.cdist(x[s : s + block], x)
        d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = math.inf
        if g is not None:
            d[g[s : s + block, None] != g[None, :]] = math.inf
        if own is not None:
            d[own[s : s + block, None] == own[None, :]] = math.inf
        correct += (label[d.argmin(1)] == label[s : s + block]).sum().item()
    return correct / len(x)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``a`` and ``b`` (FID's formula, on codes)."""
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a.T), np.cov(b.T)
    eig = np.linalg.eigvals(ca @ cb)  # tr sqrt(ca cb) = sum of sqrt of its (real, >= 0) eigenvalues
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * np.sqrt(np.clip(eig.real, 0, None)).sum())


# -- training -------------------------------------------------------------------------------------
def gradient_penalty(critic, real, fake, meters, gen: torch.Generator) -> torch.Tensor:
    t = torch.rand(len(real), 1, generator=gen)
    x = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x, meters).sum(), x, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def critic_step(gan, critic, opt_c, real, meters, gen: torch.Generator, gp_weight: float) -> dict:
    with torch.no_grad():
        fake = gan(gan.noise(len(real), gen), meters)
    w = critic(real, meters).mean() - critic(fake, meters).mean()
    gp = gradient_penalty(critic, real, fake, meters, gen)
    loss = -w + gp_weight * gp
    opt_c.zero_grad(set_to_none=True)
    loss.backward()
    opt_c.step()
    return {"wasserstein": w.item(), "gp": gp.item(), "critic_loss": loss.item()}


def generator_step(gan, critic, opt_g, meters, gen: torch.Generator) -> float:
    loss = -critic(gan(gan.noise(len(meters), gen), meters), meters).mean()
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return loss.item()


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


def save_state(path: Path, parts: dict, gen: torch.Generator, info: dict) -> None:
    """Every module's weights and every optimiser's state (safetensors, no pickle), the RNG and ``info``."""
    tensors = {}
    for name, obj in parts.items():
        if isinstance(obj, torch.nn.Module):
            tensors.update({f"{name}.{k}": v.detach().contiguous().clone() for k, v in obj.state_dict().items()})
        else:
            for i, st in obj.state_dict()["state"].items():
                for k, v in st.items():
                    tensors[f"{name}.{i}.{k}"] = (
                        (v if torch.is_tensor(v) else torch.tensor(v)).detach().contiguous().clone()
                    )
    tensors["rng"] = gen.get_state()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"info": json.dumps(info)})
    tmp.replace(path)


def load_state(path: Path, parts: dict, gen: torch.Generator) -> dict:
    tensors = load_file(str(path))
    for name, obj in parts.items():
        if isinstance(obj, torch.nn.Module):
            obj.load_state_dict(
                {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}, strict=True
            )
        else:
            sd = obj.state_dict()
            for key, v in tensors.items():
                if key.startswith(name + "."):
                    _, i, field = key.split(".", 2)
                    sd["state"].setdefault(int(i), {})[field] = v
            obj.load_state_dict(sd)
    gen.set_state(tensors["rng"])
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["info"])


def code_scores(
    fake: torch.Tensor, valid: torch.Tensor, valid_m: torch.Tensor, valid_owner: torch.Tensor, four: torch.Tensor
) -> dict:
    """Code-space scores of standardised ``fake`` codes drawn for the meters ``valid_m`` of the valid codes."""
    return {
        "one_nn": one_nn_accuracy(fake, valid, valid_m, valid_m, valid_owner),
        "fd_4_4": frechet_distance(fake[four].numpy(), valid[four].numpy()),
    }


def decoded_scores(vae: MelodyVAE, sample_z, reference: list[Melody], n: int = 400, seed: int = 1234) -> dict:
    """Decoded 4/4 samples against held-out windows: the classifier test and the target overlaps."""
    gen = torch.Generator().manual_seed(seed)
    melodies = decode_codes(vae, sample_z(n, gen), (4, 4), 1.0, gen)
    stats = {**compare_stats(melodies, reference), **compare_bar_stats(melodies, reference)}
    ov = [stats[k]["overlap"] for k in TARGETS]
    return {
        "c2st": classifier_two_sample(melodies, reference, seed=seed)["accuracy"],
        "min_overlap": min(ov),
        "mean_overlap": float(np.mean(ov)),
    }


@torch.no_grad()
def validate(
    gan: LatentGAN,
    vae: MelodyVAE,
    valid: torch.Tensor,
    valid_m: torch.Tensor,
    valid_owner: torch.Tensor,
    reference: list[Melody],
    seed: int = 1234,
) -> dict:
    """Critic-free scores of ``gan`` on the valid split: codes (one sample per valid code, same meter)
    and decoded 4/4 samples against valid 4/4 windows."""
    gan.eval()
    fake = gan(gan.noise(len(valid), torch.Generator().manual_seed(seed)), valid_m)
    four = valid_m == gan.meter_index("4/4")
    out = {
        **code_scores(fake, valid, valid_m, valid_owner, four),
        **decoded_scores(vae, lambda n, g: gan.sample(n, g, (4, 4)), reference, seed=seed),
    }
    gan.train()
    return out


def train(args, log) -> None:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    corpus = load_corpus(args.corpus)
    codes = load_codes(args.vae, corpus, args.train_stride, args.valid_stride, WORK / "codes.npz", log)
    meters = tuple(
        name
        for name, _ in sorted(
            ((m, int((codes["train_meters"] == m).sum())) for m in set(codes["train_meters"].tolist())),
            key=lambda x: (-x[1], x[0]),
        )
    )
    z_dim = codes["train_codes"].shape[1]
    cfg = LatentGANConfig(
        z_dim=z_dim,
        noise_dim=z_dim if args.residual else args.noise_dim,
        hidden=args.hidden,
        layers=args.layers,
        meters=meters,
        residual=args.residual,
    )
    gan = LatentGAN(cfg)
    gan.set_code_stats(torch.from_numpy(codes["train_codes"]))
    vae, _ = load_checkpoint(args.vae, kind="vae")
    critic = LatentCritic(cfg, hidden=args.critic_hidden, layers=args.critic_layers)
    ema = copy.deepcopy(gan)
    for p in ema.parameters():
        p.requires_grad_(False)
    betas = (0.5, 0.9)
    opt_g = torch.optim.Adam(gan.parameters(), lr=args.lr, betas=betas)
    opt_c = torch.optim.Adam(
        [p for p in critic.parameters() if p.requires_grad], lr=args.lr_critic or args.lr, betas=betas
    )

    index = {m: i for i, m in enumerate(meters)}
    train_z = gan.standardise(torch.from_numpy(codes["train_codes"]))
    train_m = torch.tensor([index[m] for m in codes["train_meters"]])
    keep = np.isin(codes["valid_meters"], meters)
    valid_z = gan.standardise(torch.from_numpy(codes["valid_codes"][keep]))
    valid_m = torch.tensor([index[m] for m in codes["valid_meters"][keep]])
    valid_owner = torch.from_numpy(codes["valid_melody"][keep])
    valid_4_4 = [m for m in corpus.split("valid") if m.time_signature == (4, 4)]
    reference = window_melodies(valid_4_4, vae.config.window, stride_bars=4)
    four = valid_m == index["4/4"]
    n_g = sum(p.numel() for p in gan.parameters())
    log(
        f"{len(train_z)} train / {len(valid_z)} valid codes; meters {meters}; generator {n_g / 1e6:.2f}M parameters, "
        f"critic {sum(p.numel() for p in critic.parameters()) / 1e6:.2f}M"
    )

    out = Path(args.out)
    tag = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]
    state_path = WORK / f"state-{tag}.safetensors"
    parts = {"gan": gan, "critic": critic, "ema": ema, "opt_g": opt_g, "opt_c": opt_c}
    info = {"step": 0, "elapsed": 0.0, "best": float("inf"), "history": []}
    if args.resume and state_path.exists():
        info = load_state(state_path, parts, gen)
        log(f"resumed from {state_path} at step {info['step']}")
    else:
        # Baselines on the same validation: codes of training windows of the same meters (what a
        # perfect sampler would score), and the VAE's fitted Gaussian prior (the simplest sampler).
        g = torch.Generator().manual_seed(0)
        real = torch.stack(
            [
                train_z[train_m == k][torch.randint(int((train_m == k).sum()), (1,), generator=g)][0]
                for k in valid_m.tolist()
            ]
        )
        gauss = gan.standardise(vae.sample_prior(len(valid_z), g))
        train_4_4 = torch.from_numpy(codes["train_codes"][codes["train_meters"] == "4/4"])
        log(
            "baseline, training codes: "
            + json.dumps(
                {
                    **code_scores(real, valid_z, valid_m, valid_owner, four),
                    **decoded_scores(
                        vae, lambda n, g: train_4_4[torch.randint(len(train_4_4), (n,), generator=g)], reference
                    ),
                }
            )
        )
        log(
            "baseline, Gaussian prior: "
            + json.dumps(
                {
                    **code_scores(gauss, valid_z, valid_m, valid_owner, four),
                    **decoded_scores(vae, lambda n, g: vae.sample_prior(n, g), reference),
                }
            )
        )

    start = time.time() - info["elapsed"]
    deadline = start + args.minutes * 60
    last_save = time.time()
    stats: dict = {}
    while info["step"] < args.steps and time.time() < deadline:
        frac = info["step"] / args.steps
        for opt, lr in ((opt_g, args.lr), (opt_c, args.lr_critic or args.lr)):
            for group in opt.param_groups:  # linear decay to a tenth: a GAN settles instead of circling
                group["lr"] = lr * (1 - 0.9 * frac)
        for _ in range(args.n_critic):
            idx = torch.randint(len(train_z), (args.batch,), generator=gen)
            stats = critic_step(gan, critic, opt_c, train_z[idx], train_m[idx], gen, args.gp)
        idx = torch.randint(len(train_z), (args.batch,), generator=gen)
        stats["g_loss"] = generator_step(gan, critic, opt_g, train_m[idx], gen)
        ema_update(ema, gan, args.ema if info["step"] > 200 else 0.0)
        info["step"] += 1
        if info["step"] % 200 == 0:
            log(f"step {info['step']} " + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
        if info["step"] % args.eval_every == 0 or info["step"] >= args.steps or time.time() >= deadline:
            info["elapsed"] = time.time() - start
            v = validate(ema, vae, valid_z, valid_m, valid_owner, reference)
            # chosen on how well decoded samples pass for held-out melodies, the quantity Generate is for
            improved = v["c2st"] < info["best"]
            info["history"].append({"step": info["step"], **v})
            if improved:
                info["best"] = v["c2st"]
                save_checkpoint(
                    out,
                    ema,
                    data_fingerprint=corpus.fingerprint,
                    train_steps=info["step"],
                    metrics={"valid": v},
                    extra={
                        "train_command": args.command,
                        "train_seconds": round(info["elapsed"]),
                        "vae_weights_sha256": read_metadata(args.vae)["weights_sha256"],
                    },
                )
            log(
                f"step {info['step']} {info['elapsed'] / 60:.1f} min valid "
                + json.dumps({k: round(x, 4) for k, x in v.items()})
                + (" saved" if improved else "")
            )
        if time.time() - last_save > 60 or info["step"] >= args.steps:
            info["elapsed"] = time.time() - start
            save_state(state_path, parts, gen, info)
            last_save = time.time()
    info["elapsed"] = time.time() - start
    save_state(state_path, parts, gen, info)
    log(f"done at step {info['step']}: best valid classifier accuracy {info['best']:.4f}; checkpoint {out}")


# -- density-ratio refinement ----------------------------------------------------------------------
def fit_ratio(
    gan: LatentGAN,
    train_z: torch.Tensor,
    train_m: torch.Tensor,
    valid_z: torch.Tensor,
    valid_m: torch.Tensor,
    steps: int,
    gen: torch.Generator,
    log,
    batch: int = 256,
) -> float:
    """Train ``gan.ratio`` to tell standardised training codes (label 1) from fresh generator codes of
    the same meters (label 0); returns its accuracy on valid codes against fresh generator codes."""
    bce = F.binary_cross_entropy_with_logits
    opt = torch.optim.Adam(gan.ratio.parameters(), lr=1e-3, weight_decay=1e-4)
    gan.ratio.train()
    for step in range(steps):
        idx = torch.randint(len(train_z), (batch,), generator=gen)
        with torch.no_grad():
            fake = gan(gan.noise(batch, gen), train_m[idx])
        x, m = torch.cat([train_z[idx], fake]), torch.cat([train_m[idx], train_m[idx]])
        y = torch.cat([torch.ones(batch), torch.zeros(batch)])
        loss = bce(gan.ratio(x, m), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 500 == 0:
            log(f"ratio step {step + 1} loss {loss.item():.3f}")
    gan.ratio.eval()
    with torch.no_grad():
        fake = gan(gan.noise(len(valid_z), torch.Generator().manual_seed(7)), valid_m)
        acc = ((gan.ratio(valid_z, valid_m) > 0).float().mean() + (gan.ratio(fake, valid_m) <= 0).float().mean()) / 2
    return float(acc)


def refine(args, log) -> None:
    """Add the density-ratio classifier to the GAN at ``--out`` (rejection = ``--rejection`` draws per sample)."""
    gen = torch.Generator().manual_seed(args.seed + 1)
    corpus = load_corpus(args.corpus)
    codes = load_codes(args.vae, corpus, args.train_stride, args.valid_stride, WORK / "codes.npz", log)
    base, meta = load_checkpoint(args.out, kind="latent_gan")
    cfg = dataclasses.replace(base.config, rejection=args.rejection, ratio_temperature=args.ratio_temperature)
    gan = LatentGAN(cfg)
    missing = gan.load_state_dict(base.state_dict(), strict=False).missing_keys
    if any(not k.startswith("ratio.") for k in missing):
        raise CheckpointError(f"{args.out} lacks generator weights {missing}.")
    index = {m: i for i, m in enumerate(cfg.meters)}
    train_z = gan.standardise(torch.from_numpy(codes["train_codes"]))
    train_m = torch.tensor([index[m] for m in codes["train_meters"]])
    keep = np.isin(codes["valid_meters"], cfg.meters)
    valid_z = gan.standardise(torch.from_numpy(codes["valid_codes"][keep]))
    valid_m = torch.tensor([index[m] for m in codes["valid_meters"][keep]])
    t0 = time.time()
    acc = fit_ratio(gan, train_z, train_m, valid_z, valid_m, args.ratio_steps, gen, log)
    log(f"ratio classifier: valid accuracy {acc:.3f} (real valid codes vs fresh generator codes), "
        f"{time.time() - t0:.0f} s")
    vae, _ = load_checkpoint(args.vae, kind="vae")
    reference = window_melodies(
        [m for m in corpus.split("valid") if m.time_signature == (4, 4)], vae.config.window, stride_bars=4
    )
    four = valid_m == index["4/4"]
    owner = torch.from_numpy(codes["valid_melody"][keep])
    before = {**meta["metrics"].get("valid", {})}
    with torch.no_grad():
        fake = gan.standardise(
            torch.cat(
                [
                    gan.sample(int((valid_m == k).sum()), gen, cfg.meters[k])
                    for k in range(len(cfg.meters))
                    if (valid_m == k).any()
                ]
            )
        )
    order = torch.cat([torch.nonzero(valid_m == k).squeeze(1) for k in range(len(cfg.meters)) if (valid_m == k).any()])
    after = {
        **code_scores(fake, valid_z[order], valid_m[order], owner[order], four[order]),
        **decoded_scores(vae, lambda n, g: gan.sample(n, g, (4, 4)), reference),
    }
    log(f"valid before refinement {json.dumps(before)}")
    log(f"valid after  refinement {json.dumps(after)}")
    metrics = dict(meta["metrics"], valid=after, valid_generator_alone=before, ratio_valid_accuracy=acc)
    save_checkpoint(
        args.out,
        gan,
        data_fingerprint=meta["data_fingerprint"],
        train_steps=int(meta["train_steps"]),
        metrics=metrics,
        extra={
            "train_command": meta.get("train_command", "") + " ; " + args.command,
            "train_seconds": meta.get("train_seconds", ""),
            "vae_weights_sha256": meta["vae_weights_sha256"],
        },
    )
    log(f"wrote {args.out} with rejection {cfg.rejection}")


# -- measuring on held-out melodies ---------------------------------------------------------------
def decode_codes(
    vae: MelodyVAE, z: torch.Tensor, time_signature: tuple[int, int], temperature: float, gen: torch.Generator
) -> list[Melody]:
    """z -> melodies exactly as Generate decodes them (service.melodies_from_codes)."""
    return melodies_from_codes(vae, z, Melody(notes=(), time_signature=time_signature), temperature, gen)


def window_melodies(melodies: list[Melody], window: int, stride_bars: int = 4) -> list[Melody]:
    """Held-out windows cut as vae_windows cuts them, as melodies starting on a bar line."""
    w = vae_windows(melodies, window, stride_bars=stride_bars)
    probe = Melody(notes=(), time_signature=melodies[0].time_signature)
    out = []
    for row in w.tokens:
        m = tk.decode(row, probe)
        out.append(m.replace(key=estimate_key(m.notes)))
    return out


DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)


def window_features(m: Melody) -> np.ndarray:
    """Simple description of one window for the two-sample classifier: melody_stats, bar_stats,
    onset share at each position in the bar, and histograms of durations, absolute intervals and
    pitch classes relative to the estimated tonic."""
    st = melody_stats(m) or {
        "in_scale": 0.0,
        "pc_entropy": 0.0,
        "notes_per_bar": len(m.notes) * m.bar_steps / m.total_steps,
        "range": 0,
        "mean_abs_interval": 0.0,
    }
    f = [*st.values(), *bar_stats(m).values()]
    B = m.bar_steps
    onset = np.zeros(B)
    dur = np.zeros(len(DURATIONS) + 1)
    pcs = np.zeros(12)
    for n in m.notes:
        onset[n.start % B] += 1
        dur[np.searchsorted(DURATIONS, n.duration)] += 1
        pcs[(n.pitch - m.key.tonic) % 12] += 1
    bars = m.total_steps / B
    pitches = np.array([n.pitch for n in m.notes])
    iv = np.bincount(np.minimum(np.abs(np.diff(pitches)), 13), minlength=14) if len(pitches) > 1 else np.zeros(14)
    rest = 1 - sum(n.duration for n in m.notes) / m.total_steps
    return np.concatenate(
        [
            f,
            onset / bars,
            dur / max(len(m.notes), 1),
            iv / max(iv.sum(), 1),
            pcs / max(len(m.notes), 1),
            [rest, float(m.key.mode == "minor")],
        ]
    ).astype(np.float64)


def logistic_fit(x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    w = torch.zeros(x.shape[1] + 1, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(xb @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def classifier_two_sample(
    generated: list[Melody], reference: list[Melody], folds: int = 5, l2: float = 1e-3, seed: int = 0
) -> dict:
    """Accuracy of a logistic regression telling generated from held-out windows, on folds it did not
    train on (0.5 = indistinguishable). Both sets are cut to the same size."""
    n = min(len(generated), len(reference))
    x = np.stack([window_features(m) for m in generated[:n]] + [window_features(m) for m in reference[:n]])
    y = np.concatenate([np.ones(n), np.zeros(n)])
    order = np.random.default_rng(seed).permutation(2 * n)
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        xt = torch.from_numpy((x - mu) / sd)
        w = logistic_fit(xt[train], torch.from_numpy(y[train]), l2)
        pred = (torch.cat([xt[test], torch.ones(len(test), 1, dtype=xt.dtype)], 1) @ w > 0).numpy()
        correct += int((pred == y[test].astype(bool)).sum())
    return {"accuracy": correct / (2 * n), "per_class": n, "features": int(x.shape[1])}


def samplers(vae: MelodyVAE, gan: LatentGAN | None, codes: dict | None, valid_4_4: list[Melody]):
    """name -> function(n, torch.Generator) -> z (n, Z), for 4/4 windows."""
    out = {}
    if gan is not None:
        out["GAN"] = lambda n, g: gan.sample(n, g, (4, 4))
    out["Gaussian prior (shipped)"] = lambda n, g: vae.sample_prior(n, g)
    if codes is not None:
        four = torch.from_numpy(codes["train_codes"][codes["train_meters"] == "4/4"]).double()
        mean, tril = four.mean(0), torch.linalg.cholesky(torch.cov(four.T) + 1e-5 * torch.eye(four.shape[1]))
        out["Gaussian fitted to 4/4 codes"] = lambda n, g: (
            mean + torch.randn(n, len(mean), generator=g, dtype=torch.double) @ tril.T
        ).float()
    w = vae_windows(valid_4_4, vae.config.window, stride_bars=2)
    with torch.inference_mode():
        mu, _ = vae.encode(torch.from_numpy(w.tokens), torch.from_numpy(w.feats))
    out["valid codes (ceiling)"] = lambda n, g: mu[torch.randperm(len(mu), generator=g)[:n]]
    return out


def nearest_training_rows(melodies: list[Melody], train_tokens: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """For each window, the share of steps equal to its nearest training window (N,), and that window's row."""
    train = torch.from_numpy(train_tokens)
    rows = torch.from_numpy(np.stack([tk.encode(m).tokens for m in melodies]))
    rows[:, 0] = torch.where(rows[:, 0] == tk.HOLD, tk.REST, rows[:, 0])  # as vae_windows cuts them
    best = [(train == r).float().mean(1).max(0) for r in rows]
    return torch.stack([b.values for b in best]), torch.stack([b.indices for b in best])


def nearest_training_window(melodies: list[Melody], train_tokens: np.ndarray) -> dict:
    """How close each window comes to a training window: share of steps equal to its nearest one,
    and the share of windows that copy one outright. Memorised codes would decode to copies."""
    best, _ = nearest_training_rows(melodies, train_tokens)
    return {"nearest_train_agreement": float(best.mean()), "train_copies": float((best == 1).float().mean())}


def evaluate_sampler(
    vae: MelodyVAE,
    sample_z,
    reference: list[Melody],
    n: int = 400,
    temperature: float = 1.0,
    seed: int = 0,
    train_tokens: np.ndarray | None = None,
) -> dict:
    """Decode ``n`` codes from ``sample_z(n, generator)`` and compare them with ``reference`` windows."""
    gen = torch.Generator().manual_seed(seed)
    z = sample_z(n, gen)
    gen_melodies = decode_codes(vae, z, (4, 4), temperature, gen)
    stats = compare_stats(gen_melodies, reference)
    stats.update(compare_bar_stats(gen_melodies, reference))
    out = {
        "samples": len(gen_melodies),
        "stats": stats,
        "classifier": classifier_two_sample(gen_melodies, reference, seed=seed),
        "melodies": gen_melodies,
    }
    if train_tokens is not None:
        out["novelty"] = nearest_training_window(gen_melodies, train_tokens)
    return out


def run_evaluation(args, log) -> dict:
    vae, _ = load_checkpoint(args.vae, kind="vae")
    corpus = load_corpus(args.corpus)
    four = [m for m in corpus.split("test") if m.time_signature == (4, 4)]
    reference = window_melodies(four, vae.config.window, stride_bars=4)
    gan = load_checkpoint(args.gan, kind="latent_gan")[0] if args.gan.exists() else None
    cache = WORK / "codes.npz"
    codes = dict(np.load(cache)) if cache.exists() else None
    valid_4_4 = [m for m in corpus.split("valid") if m.time_signature == (4, 4)]
    train_tokens = vae_windows(
        [m for m in corpus.split("train") if m.time_signature == (4, 4)], vae.config.window, stride_bars=1
    ).tokens
    results = {}
    for name, fn in samplers(vae, gan, codes, valid_4_4).items():
        t0 = time.time()
        r = evaluate_sampler(vae, fn, reference, args.n, args.temperature, args.seed, train_tokens)
        results[name] = r
        log(f"{name}: {r['samples']} samples measured in {time.time() - t0:.0f} s")
    names = list(results)
    lines = [
        f"Test split: {len(reference)} held-out 4-bar 4/4 windows (stride 4 bars, {len(four)} melodies); "
        f"{args.n} samples per sampler, temperature {args.temperature}, seed {args.seed}.",
        "",
        "| statistic (overlap; generated mean / held-out mean) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for k in (*TARGETS, "pc_entropy"):
        ref = results[names[0]]["stats"][k]["heldout_mean"]
        cells = [
            f"{results[s]['stats'][k]['overlap']:.2f} ({results[s]['stats'][k]['generated_mean']:.2f} / {ref:.2f})"
            for s in names
        ]
        lines.append(f"| {k}{' (target >= 0.75)' if k in TARGETS else ''} | " + " | ".join(cells) + " |")
    lines.append(
        "| classifier two-sample accuracy (target <= 0.70) | "
        + " | ".join(f"{results[s]['classifier']['accuracy']:.3f}" for s in names)
        + " |"
    )
    for k in ("nearest_train_agreement", "train_copies"):
        lines.append(f"| {k} | " + " | ".join(f"{results[s]['novelty'][k]:.3f}" for s in names) + " |")
    print("\n".join(lines))
    return results


def draw_rolls(args, log) -> None:
    vae, _ = load_checkpoint(args.vae, kind="vae")
    gan, _ = load_checkpoint(args.gan, kind="latent_gan")
    for name, fn in (("gan", lambda n, g: gan.sample(n, g, (4, 4))), ("gaussian", lambda n, g: vae.sample_prior(n, g))):
        gen = torch.Generator().manual_seed(args.seed)
        melodies = decode_codes(vae, fn(16, gen), (4, 4), args.temperature, gen)
        path = tile_sheet([piano_roll_png(m, title=f"{name} {i + 1} ({m.key.name})", width=360, height=170)
                           for i, m in enumerate(melodies)], 4, args.rolls_dir / f"{name}_rolls.png")
        log(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluate", action="store_true", help="measure GAN and Gaussian samples on the test split")
    ap.add_argument("--rolls", action="store_true", help="piano rolls of 16 samples per sampler into --rolls-dir")
    ap.add_argument("--rolls-dir", type=Path, default=WORK)
    ap.add_argument(
        "--refine",
        action="store_true",
        help="only add the density-ratio classifier to the GAN at --out (see models/latent_gan.py)",
    )
    ap.add_argument(
        "--rejection",
        type=int,
        default=1,
        help="generator draws per sample kept by the classifier (1 = none; > 1 fits the classifier after training)",
    )
    ap.add_argument("--ratio-temperature", type=float, default=1.0)
    ap.add_argument("--ratio-steps", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=GAN_PATH)
    ap.add_argument("--gan", type=Path, default=GAN_PATH, help="the checkpoint --evaluate and --rolls read")
    ap.add_argument("--vae", type=Path, default=VAE_PATH)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--steps", type=int, default=6000, help="generator steps (the learning rate decays over them)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-critic", type=float, default=5e-4, help="the critic's learning rate (0: --lr)")
    ap.add_argument("--n-critic", type=int, default=2, help="critic steps per generator step")
    ap.add_argument("--gp", type=float, default=10.0, help="gradient penalty weight")
    ap.add_argument("--ema", type=float, default=0.999, help="decay of the saved generator's weight average")
    ap.add_argument("--noise-dim", type=int, default=LatentGANConfig.noise_dim, help="only without --residual")
    ap.add_argument(
        "--residual",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="generator = fitted Gaussian + learned correction (see models/latent_gan.py)",
    )
    ap.add_argument("--hidden", type=int, default=LatentGANConfig.hidden)
    ap.add_argument("--layers", type=int, default=LatentGANConfig.layers)
    ap.add_argument("--critic-hidden", type=int, default=256)
    ap.add_argument("--critic-layers", type=int, default=3)
    ap.add_argument("--train-stride", type=int, default=1, help="bars between training windows")
    ap.add_argument("--valid-stride", type=int, default=4, help="bars between validation windows (no overlap)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--n", type=int, default=400, help="samples per sampler when measuring")
    ap.add_argument(
        "--temperature", type=float, default=1.0, help="decoding temperature when measuring (Generate's default)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    args.command = " ".join(["python -m musicgen_app.training.train_gan", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    log = Log(WORK / "train.log" if not (args.evaluate or args.rolls) else None)
    if args.evaluate:
        run_evaluation(args, log)
    elif args.rolls:
        draw_rolls(args, log)
    else:
        log(f"command: {args.command}")
        if not args.refine:
            train(args, log)
        if args.rejection > 1:
            refine(args, log)


if __name__ == "__main__":
    main()
