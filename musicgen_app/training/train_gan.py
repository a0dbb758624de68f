"""Train and measure the latent GAN, an adversarial refiner of the corpus bank's codes (see
models/latent_gan.py).

    python -m musicgen_app.training.train_gan --steps 1500 --realism-weight 2 [--resume]
    python -m musicgen_app.training.train_gan --evaluate [--gan checkpoints/gan.safetensors] [--n 400]
    python -m musicgen_app.training.train_gan --rolls       # piano rolls of 16 samples per sampler, into /tmp/gan

Training data. Real: the posterior means (mu) of the shipped VAE (``checkpoints/vae.safetensors``)
for every training window, cut by batches.vae_windows exactly as VAE training cut them but with a
stride of one bar (all meters, no transposition), cached in /tmp/gan/codes.npz under the VAE's
weight digest, the corpus fingerprint and the strides. Sources (what the refiner moves): codes
made as the corpus bank (``--bank``, checkpoints/code_bank.safetensors) makes them, a bank window's
mu moved the bank's ``mix`` of the way to one of its neighbours' plus noise of the bank's ``noise``
code sds (the codes CodeBank.sample makes, which the GAN refines when it samples); the bank's
windows are encoded once (cached in /tmp/gan/bank_codes.npz under the VAE's and the bank's
digests) and each batch mixes and perturbs them afresh. A source is drawn for each real code from
the bank windows of that code's meter, so both sides of the critic see the same meters.

Training: WGAN-GP (Gulrajani et al. 2017) on standardised codes, critic and refiner conditioned on
the meter, the refiner's loss adding ``--step-penalty`` times the squared length of its move (as
Engel et al.'s distance penalty), and an exponential moving average of the refiner's weights (the
one saved). The critic alone judges codes, and codes that pass it need not decode to melodies that
pass for real ones; with ``--realism-weight`` the refiner also climbs a realism head (a latent
constraint in Engel et al.'s sense): before training, ``--realism-samples`` 4/4 codes the refiner
can reach are decoded ``--realism-repeats`` times each, a logistic regression on window_features
tells those decodings from training windows (never valid or test ones), and a small MLP learns to
predict, from a code, the mean logit of its decodings; 4/4 codes in each batch then gain
``--realism-weight`` times the head's score. Like the critic, the head is a training device: it is
kept in the state file, not in the checkpoint.

Every ``--eval-every`` steps the average is validated on the valid split: 400 refined 4/4 bank
codes decoded as Generate decodes them, against the valid 4/4 windows, by the classifier two-sample
test (classifier_two_sample) and by copying: the share of each sample's bars found in
its nearest 4/4 training window (nearest_training_window), against the valid windows' own share. The
checkpoint written to ``--out`` is the step with the lowest classifier accuracy among those whose
samples do not share measurably more bars with the training set than valid windows do (two
standard errors, as train_bank.choose_sampling); the full training state goes to
/tmp/gan/state-<tag>.safetensors so ``--resume`` continues a stopped run. Each run first logs, on
the same validation, its unrefined sources (the refiner at its start) and real training codes.

Measuring (``--evaluate``, test split only, 4-bar windows of 4/4 as evaluate.eval_samples): z from
the GAN (bank codes refined), its unrefined sources, the bank as Generate uses it (with its decoding
pitch-class bias, which the GAN's samples do not get), the VAE's Gaussian prior, a Gaussian fitted
to the 4/4 training codes, and the posterior means of valid windows (the ceiling for any sampler of
z with this decoder), each decoded as MelodyService.sample decodes; printed: the statistic overlaps
of stats.compare_stats and compare_bar_stats, the classifier two-sample test, and copying beside
the test windows' own. bench/eval_gan.py measures the same samples with the three classifiers of
two_sample.py; the test here (classifier_two_sample) stays the one the sampling choices of
train_gan and train_bank were made and recorded with.
"""

from __future__ import annotations

import argparse
import copy
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
from ..melody import Melody, estimate_key, meter_name
from ..models.checkpoints import load_checkpoint, read_metadata, save_checkpoint
from ..models.code_bank import Attributes, CodeBank, Picked
from ..models.latent_gan import LatentCritic, LatentGAN, LatentGANConfig
from ..models.vae import MelodyVAE
from ..paths import CHECKPOINTS
from ..service.melody_service import bank_melodies, melodies_from_codes
from ..views import piano_roll_png, tile_sheet
from .batches import vae_windows
from .corpus import DEFAULT_CACHE, load_corpus
from .stats import TARGETS, compare_bar_stats, compare_stats, window_features

WORK = Path("/tmp/gan")
VAE_PATH = CHECKPOINTS / "vae.safetensors"
GAN_PATH = CHECKPOINTS / "gan.safetensors"
BANK_PATH = CHECKPOINTS / "code_bank.safetensors"


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


@torch.inference_mode()
def encode_bank(vae: MelodyVAE, bank: CodeBank, batch: int = 512) -> torch.Tensor:
    """Posterior means (bank size, z_dim) of every bank window, as CodeBank.codes encodes them."""
    out = torch.empty(bank.config.size, vae.config.z_dim)
    gen = torch.Generator().manual_seed(0)  # CodeBank.codes draws noise even at noise 0
    for k, name in enumerate(bank.config.meters):
        ts = tuple(int(x) for x in name.split("/"))
        rows = torch.nonzero(bank.meter == k).squeeze(1)
        for s in range(0, len(rows), batch):
            r = rows[s : s + batch]
            zero = torch.zeros(len(r), dtype=torch.long)
            out[r] = bank.codes(vae, Picked(r, r, zero, zero, len(r)), ts, gen, noise=0.0, mix=0.0)
    return out


def load_bank_codes(vae_path: Path, bank_path: Path, cache: Path, log) -> tuple[CodeBank, torch.Tensor]:
    """The bank at ``bank_path`` and its windows' codes under the VAE at ``vae_path`` (cached)."""
    bank, meta = load_checkpoint(bank_path, kind="code_bank")
    key = f"{read_metadata(vae_path)['weights_sha256'][:16]}-{meta['weights_sha256'][:16]}"
    if cache.exists():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                log(f"bank codes from {cache}")
                return bank, torch.from_numpy(z["codes"])
    t0 = time.time()
    mu = encode_bank(load_checkpoint(vae_path, kind="vae")[0], bank)
    log(f"encoded the bank's {len(mu)} windows in {time.time() - t0:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, key=np.array(key), codes=mu.numpy())
    return bank, mu


class Sources:
    """Unrefined standardised codes made as CodeBank.codes makes them, from pre-encoded bank codes."""

    def __init__(self, gan: LatentGAN, bank: CodeBank, bank_mu: torch.Tensor):
        c = gan.config
        self.mu, self.neighbours, self.mix, self.noise = bank_mu, bank.neighbours.long(), bank.config.mix, \
            bank.config.noise
        self.bank_std = bank.code_std
        self.gan = gan
        # bank rows grouped by the GAN's meter index: rows[start[k] : start[k] + count[k]] are of meter k
        ours = torch.tensor([c.meters.index(m) if m in c.meters else len(c.meters) for m in bank.config.meters])
        meter = ours[bank.meter.long()]
        self.rows = torch.argsort(meter, stable=True)
        self.count = torch.bincount(meter, minlength=len(c.meters) + 1)[: len(c.meters)]
        self.start = torch.cumsum(self.count, 0) - self.count

    def __call__(self, meters: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One source (B, z_dim) per entry of ``meters`` (B,), from bank windows of that meter."""
        if (self.count[meters] == 0).any():
            raise ValueError("the bank has no window of a meter the GAN trains on")
        u = torch.rand(len(meters), generator=gen)
        index = self.rows[self.start[meters] + (u * self.count[meters]).long().clamp(max=self.count[meters] - 1)]
        near = self.neighbours[index]
        partner = near[torch.arange(len(index)), torch.randint(near.shape[1], (len(index),), generator=gen)]
        z = torch.lerp(self.mu[index], self.mu[partner], self.mix)
        z = z + self.noise * self.bank_std * torch.randn(z.shape, generator=gen)
        return self.gan.standardise(z)


@torch.no_grad()
def realism_data(gan: LatentGAN, sources: Sources, vae: MelodyVAE, real: list[Melody], n: int, repeats: int,
                 gen: torch.Generator, log, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` standardised 4/4 codes the refiner can reach (sources, half of them moved by up to
    max_step per dimension at random) and the realism of their decodings: the logit of a logistic
    regression on window_features telling ``real`` training windows (1) from these decodings (0),
    averaged over ``repeats`` decodings of each code (decoding is sampled: one decoding is a noisy
    draw of its code's realism)."""
    m4 = torch.full((n,), gan.meter_index("4/4"), dtype=torch.long)
    x = sources(m4, gen)
    half = torch.arange(n) % 2 == 1
    x[half] += gan.config.max_step * (2 * torch.rand(int(half.sum()), x.shape[1], generator=gen) - 1)
    t0, feats = time.time(), []
    for _ in range(repeats):
        for s in range(0, n, batch):
            melodies = decode_codes(vae, gan.unstandardise(x[s : s + batch]), (4, 4), 1.0, gen)
            feats += [window_features(m) for m in melodies]
    fake, true = np.stack(feats), np.stack([window_features(m) for m in real])
    both = np.concatenate([true, fake])
    mu, sd = both.mean(0), both.std(0) + 1e-6
    xt = torch.from_numpy((both - mu) / sd)
    w = logistic_fit(xt, torch.from_numpy(np.r_[np.ones(len(true)), np.zeros(len(fake))]), 1e-3)
    logits = (torch.cat([xt, torch.ones(len(xt), 1, dtype=xt.dtype)], 1) @ w)[len(true):].float()
    logits = logits.view(repeats, n).mean(0)
    log(f"realism labels: {n} codes x {repeats} decodings against {len(real)} training windows in "
        f"{time.time() - t0:.0f} s; logit mean {logits.mean():.2f} sd {logits.std():.2f}")
    return x, logits


def fit_realism_head(head: LatentCritic, x: torch.Tensor, y: torch.Tensor, m4: int, steps: int,
                     gen: torch.Generator, log, batch: int = 256) -> float:
    """Regress the realism logits ``y`` on the codes ``x`` (all 4/4), keeping the weights with the best
    R^2 on a tenth held out (checked every 100 steps); returns that R^2."""
    cut = len(x) // 10
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-3)
    meters = torch.full((batch,), m4, dtype=torch.long)
    best, kept = -math.inf, copy.deepcopy(head.state_dict())
    for step in range(steps):
        idx = cut + torch.randint(len(x) - cut, (batch,), generator=gen)
        loss = F.mse_loss(head(x[idx], meters), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            with torch.no_grad():
                pred = head(x[:cut], torch.full((cut,), m4, dtype=torch.long))
                r2 = 1 - F.mse_loss(pred, y[:cut]).item() / y[:cut].var().item()
            if r2 > best:
                best, kept = r2, copy.deepcopy(head.state_dict())
    head.load_state_dict(kept)
    for p in head.parameters():
        p.requires_grad_(False)
    log(f"realism head: held-out R^2 {best:.3f}")
    return best


def gradient_penalty(critic, real, fake, meters, gen: torch.Generator) -> torch.Tensor:
    t = torch.rand(len(real), 1, generator=gen)
    x = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x, meters).sum(), x, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def critic_step(gan, critic, opt_c, real, source, meters, gen: torch.Generator, gp_weight: float) -> dict:
    """One critic update: standardised ``real`` codes against the refined ``source`` codes, all of ``meters``."""
    with torch.no_grad():
        fake = gan(source, gan.noise(len(source), gen), meters)
    w = critic(real, meters).mean() - critic(fake, meters).mean()
    gp = gradient_penalty(critic, real, fake, meters, gen)
    loss = -w + gp_weight * gp
    opt_c.zero_grad(set_to_none=True)
    loss.backward()
    opt_c.step()
    return {"wasserstein": w.item(), "gp": gp.item(), "critic_loss": loss.item()}


def generator_step(gan, critic, opt_g, source, meters, gen: torch.Generator, step_penalty: float,
                   realism=None, realism_weight: float = 0.0) -> dict:
    """One refiner update: raise the critic's score of the refined codes (and, with ``realism``, a
    head over codes of ``realism.meter``, its predicted realism times ``realism_weight``), less
    ``step_penalty`` times the squared length of the move (standardised units)."""
    step = gan.step(source, gan.noise(len(source), gen), meters)
    z = source + step
    adv = -critic(z, meters).mean()
    size = step.pow(2).sum(1).mean()
    loss = adv + step_penalty * size
    out = {"g_loss": adv.item(), "step_norm": size.sqrt().item()}
    if realism is not None and realism_weight:
        mine = meters == realism.meter
        if mine.any():
            real = realism(z[mine], meters[mine]).mean()
            loss = loss - realism_weight * real * mine.float().mean()
            out["realism"] = real.item()
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    return out


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




def decoded_scores(vae: MelodyVAE, sample_z, reference: list[Melody], train_tokens: np.ndarray, n: int = 400,
                   seed: int = 1234) -> dict:
    """``n`` decoded 4/4 samples of ``sample_z(n, generator)`` against held-out ``reference`` windows:
    the classifier test, the target overlaps, and how much they copy the training windows."""
    gen = torch.Generator().manual_seed(seed)
    melodies = decode_codes(vae, sample_z(n, gen), (4, 4), 1.0, gen)
    stats = {**compare_stats(melodies, reference), **compare_bar_stats(melodies, reference)}
    ov = [stats[k]["overlap"] for k in TARGETS]
    nov = nearest_training_window(melodies, train_tokens)
    return {
        "c2st": classifier_two_sample(melodies, reference, seed=seed)["accuracy"],
        "min_overlap": min(ov),
        "mean_overlap": float(np.mean(ov)),
        **{k: nov[k] for k in ("bars_in_nearest_train", "bars_in_nearest_train_se", "train_copies")},
    }


def copies_more(scores: dict, heldout: dict) -> bool:
    """Whether samples share measurably more bars with their nearest training window than held-out
    windows do (one-sided, two standard errors of the difference; train_bank.choose_sampling's rule)."""
    se = np.hypot(scores["bars_in_nearest_train_se"], heldout["bars_in_nearest_train_se"])
    return scores["bars_in_nearest_train"] - heldout["bars_in_nearest_train"] > 2 * se


@torch.no_grad()
def validate(gan: LatentGAN, vae: MelodyVAE, bank: CodeBank, reference: list[Melody], train_tokens: np.ndarray,
             seed: int = 1234) -> dict:
    """Critic-free scores of ``gan`` on the valid split (decoded_scores of its refined bank codes),
    and the mean length of its move (standardised units)."""
    gan.eval()
    out = decoded_scores(vae, lambda n, g: gan.sample_codes(vae, bank, n, g, (4, 4)), reference, train_tokens,
                         seed=seed)
    gen = torch.Generator().manual_seed(seed)
    src = gan.standardise(gan.source_codes(vae, bank, 400, gen, (4, 4)))
    meters = torch.full((len(src),), gan.meter_index("4/4"), dtype=torch.long)
    out["step_norm"] = gan.step(src, gan.noise(len(src), gen), meters).norm(dim=1).mean().item()
    gan.train()
    return out


def train(args, log) -> None:
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    corpus = load_corpus(args.corpus)
    codes = load_codes(args.vae, corpus, args.train_stride, args.valid_stride, WORK / "codes.npz", log)
    bank, bank_mu = load_bank_codes(args.vae, args.bank, WORK / "bank_codes.npz", log)
    counts = {m: int((codes["train_meters"] == m).sum()) for m in set(codes["train_meters"].tolist())}
    meters = tuple(m for m in sorted(counts, key=lambda m: (-counts[m], m)) if m in bank.config.meters)
    z_dim = codes["train_codes"].shape[1]
    cfg = LatentGANConfig(z_dim=z_dim, noise_dim=args.noise_dim, hidden=args.hidden, layers=args.layers,
                          meters=meters, max_step=args.max_step)
    gan = LatentGAN(cfg)
    gan.set_code_stats(torch.from_numpy(codes["train_codes"]))
    vae, _ = load_checkpoint(args.vae, kind="vae")
    critic = LatentCritic(cfg, hidden=args.critic_hidden, layers=args.critic_layers)
    ema = copy.deepcopy(gan)
    for p in ema.parameters():
        p.requires_grad_(False)
    sources = Sources(gan, bank, bank_mu)
    betas = (0.5, 0.9)
    opt_g = torch.optim.Adam(gan.parameters(), lr=args.lr, betas=betas)
    opt_c = torch.optim.Adam(critic.parameters(), lr=args.lr_critic or args.lr, betas=betas)

    keep = np.isin(codes["train_meters"], meters)
    train_z = gan.standardise(torch.from_numpy(codes["train_codes"][keep]))
    train_m = torch.tensor([meters.index(m) for m in codes["train_meters"][keep]])
    reference = window_melodies([m for m in corpus.split("valid") if m.time_signature == (4, 4)], vae.config.window)
    train_tokens = vae_windows([m for m in corpus.split("train") if m.time_signature == (4, 4)], vae.config.window,
                               stride_bars=1).tokens
    heldout = nearest_training_window(reference, train_tokens)
    head = None
    if args.realism_weight:
        head = LatentCritic(cfg, hidden=args.realism_hidden, layers=2)
        head.meter = meters.index("4/4")
    log(f"{len(train_z)} train codes, {len(bank_mu)} bank windows; meters {meters}; refiner "
        f"{sum(p.numel() for p in gan.parameters()) / 1e6:.2f}M parameters, critic "
        f"{sum(p.numel() for p in critic.parameters()) / 1e6:.2f}M; valid windows' own copying "
        + json.dumps({k: round(v, 4) for k, v in heldout.items()}))

    out = Path(args.out)
    tag = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]
    state_path = WORK / f"state-{tag}.safetensors"
    parts = {"gan": gan, "critic": critic, "ema": ema, "opt_g": opt_g, "opt_c": opt_c}
    if head is not None:
        parts["realism"] = head
    info = {"step": 0, "elapsed": 0.0, "best": float("inf"), "history": [], "baselines": {}}
    if args.resume and state_path.exists():
        info = load_state(state_path, parts, gen)
        if head is not None:
            for p in head.parameters():
                p.requires_grad_(False)
        log(f"resumed from {state_path} at step {info['step']}")
    else:
        if head is not None:
            real = window_melodies([m for m in corpus.split("train") if m.time_signature == (4, 4)],
                                   vae.config.window)
            x, y = realism_data(gan, sources, vae, real, args.realism_samples, args.realism_repeats, gen, log)
            info["realism_r2"] = fit_realism_head(head, x, y, head.meter, args.realism_steps, gen, log)
        four = torch.from_numpy(codes["train_codes"][codes["train_meters"] == "4/4"])
        info["baselines"] = {
            "sources_unrefined": validate(ema, vae, bank, reference, train_tokens),
            "training_codes": decoded_scores(
                vae, lambda n, g: four[torch.randint(len(four), (n,), generator=g)], reference, train_tokens),
        }
        for name, v in info["baselines"].items():
            log(f"baseline, {name}: " + json.dumps({k: round(x, 4) for k, x in v.items()}))

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
            m = train_m[idx]
            stats = critic_step(gan, critic, opt_c, train_z[idx], sources(m, gen), m, gen, args.gp)
        m = train_m[torch.randint(len(train_z), (args.batch,), generator=gen)]
        stats.update(generator_step(gan, critic, opt_g, sources(m, gen), m, gen, args.step_penalty, head,
                                    args.realism_weight))
        ema_update(ema, gan, args.ema if info["step"] > 200 else 0.0)
        info["step"] += 1
        if info["step"] % 200 == 0:
            log(f"step {info['step']} " + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
        if info["step"] % args.eval_every == 0 or info["step"] >= args.steps or time.time() >= deadline:
            info["elapsed"] = time.time() - start
            v = validate(ema, vae, bank, reference, train_tokens)
            copying = copies_more(v, heldout)
            improved = not copying and v["c2st"] < info["best"]
            info["history"].append({"step": info["step"], **v})
            if improved:
                info["best"] = v["c2st"]
                save_checkpoint(
                    out, ema, data_fingerprint=corpus.fingerprint, train_steps=info["step"],
                    metrics={"valid": v, "valid_heldout_novelty": heldout, **{
                        f"valid_{k}": b for k, b in info["baselines"].items()}},
                    extra={"train_command": args.command, "train_seconds": round(info["elapsed"]),
                           "vae_weights_sha256": read_metadata(args.vae)["weights_sha256"],
                           "bank_weights_sha256": read_metadata(args.bank)["weights_sha256"],
                           "bank_sampling": json.dumps({"mix": bank.config.mix, "noise": bank.config.noise})},
                )
            log(f"step {info['step']} {info['elapsed'] / 60:.1f} min valid "
                + json.dumps({k: round(x, 4) for k, x in v.items()})
                + (" copies" if copying else "") + (" saved" if improved else ""))
        if time.time() - last_save > 60 or info["step"] >= args.steps:
            info["elapsed"] = time.time() - start
            save_state(state_path, parts, gen, info)
            last_save = time.time()
    info["elapsed"] = time.time() - start
    save_state(state_path, parts, gen, info)
    log(f"done at step {info['step']}: best valid classifier accuracy {info['best']:.4f}; checkpoint {out}")


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


def tune_windows(melodies: list[Melody], bars: int, stride_bars: int = 4) -> tuple[list[Melody], np.ndarray]:
    """:func:`window_melodies` of ``bars`` 16-step bars from each tune long enough (on bar lines,
    ``stride_bars`` apart) and each window's tune, for grouping a tune's windows in one fold."""
    out, owner = [], []
    for i, m in enumerate(melodies):
        if m.total_steps - m.pickup_steps < bars * 16:
            continue
        w = window_melodies([m], bars * 16, stride_bars=stride_bars)
        out += w
        owner += [i] * len(w)
    return out, np.array(owner)


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


def samplers(vae: MelodyVAE, gan: LatentGAN | None, codes: dict | None, valid_4_4: list[Melody],
             bank: CodeBank | None = None):
    """name -> function(n, torch.Generator) -> z (n, Z), for 4/4 windows. The GAN refines codes of
    ``bank`` (default: the shipped bank at BANK_PATH, when there is one)."""
    if bank is None and gan is not None and BANK_PATH.exists():
        bank = load_checkpoint(BANK_PATH, kind="code_bank")[0]
    out = {}
    if gan is not None:
        out["GAN"] = lambda n, g: gan.sample_codes(vae, bank, n, g, (4, 4))
        out["GAN's sources, unrefined"] = lambda n, g: gan.source_codes(vae, bank, n, g, (4, 4))
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


def shared_bar_share(m: Melody, other: np.ndarray) -> float:
    """Share of ``m``'s bars with a note that equal some bar of the window tokens ``other``."""
    mine = tk.bar_rows(m)
    theirs = tk.bar_rows(tk.decode(other, m))
    sounding = (mine >= 2).any(1)
    same = (mine[:, None, :] == theirs[None, :, :]).all(-1).any(1)
    return float((same & sounding).sum() / max(sounding.sum(), 1))


def nearest_training_window(melodies: list[Melody], train_tokens: np.ndarray) -> dict:
    """How much windows copy the training set: their best step agreement with any training window,
    the share equal to one, and the share of their bars found in that nearest window (mean and
    standard error). Memorised codes would decode to copies."""
    best, row = nearest_training_rows(melodies, train_tokens)
    shared = [shared_bar_share(m, train_tokens[i]) for m, i in zip(melodies, row.tolist())]
    return {
        "nearest_train_agreement": float(best.mean()),
        "train_copies": float((best == 1).float().mean()),
        "bars_in_nearest_train": float(np.mean(shared)),
        "bars_in_nearest_train_se": float(np.std(shared) / np.sqrt(len(shared))),
    }


def sampled_melodies(vae: MelodyVAE, gan: LatentGAN | None, bank: CodeBank | None, codes: dict | None,
                     valid_4_4: list[Melody], n: int, seed: int, temperature: float = 1.0) -> dict:
    """name -> ``n`` 4/4 melodies of each sampler of ``samplers``, and of the bank as Generate uses it
    (with its decoding bias), each decoded as Generate decodes them from one generator seeded ``seed``."""
    out = {}
    for name, fn in samplers(vae, gan, codes, valid_4_4, bank).items():
        gen = torch.Generator().manual_seed(seed)
        out[name] = decode_codes(vae, fn(n, gen), (4, 4), temperature, gen)
        if name == "GAN's sources, unrefined" and bank is not None:
            gen = torch.Generator().manual_seed(seed)
            out["bank as Generate uses it"] = bank_melodies(vae, bank, n, Melody(notes=(), time_signature=(4, 4)),
                                                             Attributes(), temperature, gen)[0]
    return out


def run_evaluation(args, log) -> dict:
    """The GAN beside the bank and the baselines on held-out 4/4 test windows; with ``--record``, the
    figures go into the GAN checkpoint's metrics."""
    vae, _ = load_checkpoint(args.vae, kind="vae")
    corpus = load_corpus(args.corpus)
    four = [m for m in corpus.split("test") if m.time_signature == (4, 4)]
    reference = window_melodies(four, vae.config.window, stride_bars=4)
    gan = load_checkpoint(args.gan, kind="latent_gan")[0] if args.gan.exists() else None
    bank = load_checkpoint(args.bank, kind="code_bank")[0] if args.bank.exists() else None
    cache = WORK / "codes.npz"
    codes = dict(np.load(cache)) if cache.exists() else None
    valid_4_4 = [m for m in corpus.split("valid") if m.time_signature == (4, 4)]
    train_tokens = vae_windows(
        [m for m in corpus.split("train") if m.time_signature == (4, 4)], vae.config.window, stride_bars=1
    ).tokens
    made = sampled_melodies(vae, gan, bank, codes, valid_4_4, args.n, args.seed, args.temperature)
    results = {}
    for name, melodies in made.items():
        stats = {**compare_stats(melodies, reference), **compare_bar_stats(melodies, reference)}
        results[name] = {
            "overlaps": {k: stats[k]["overlap"] for k in TARGETS},
            "means": {k: [stats[k]["generated_mean"], stats[k]["heldout_mean"]] for k in TARGETS},
            "c2st": classifier_two_sample(melodies, reference, seed=args.seed)["accuracy"],
            **nearest_training_window(melodies, train_tokens),
        }
    results["held-out test windows"] = nearest_training_window(reference, train_tokens)
    names = list(results)
    lines = [
        f"Test split: {len(reference)} held-out 4-bar 4/4 windows (stride 4 bars, {len(four)} melodies); "
        f"{args.n} samples per sampler, temperature {args.temperature}, seed {args.seed}.",
        "",
        "| (overlap: generated mean / held-out mean) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for k in TARGETS:
        cells = [f"{r['overlaps'][k]:.2f} ({r['means'][k][0]:.2f} / {r['means'][k][1]:.2f})" if "overlaps" in r
                 else "" for r in results.values()]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    rows = {
        "c2st": "classifier two-sample accuracy (classifier_two_sample: logistic, 59 features)",
        "nearest_train_agreement": "step agreement with the nearest 4/4 training window",
        "bars_in_nearest_train": "share of bars found in that window", "train_copies": "equal to a training window",
    }
    for k, label in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{r[k]:.3f}" if k in r else "" for r in results.values()) + " |")
    print("\n".join(lines), flush=True)
    if args.record and gan is not None:
        meta = read_metadata(args.gan)
        metrics = dict(json.loads(meta["metrics"]), test={
            k: {m: v for m, v in r.items() if m not in ("means",)} for k, r in results.items()})
        save_checkpoint(args.gan, gan, data_fingerprint=meta["data_fingerprint"], train_steps=int(meta["train_steps"]),
                        metrics=metrics, extra={k: meta[k] for k in ("train_command", "train_seconds",
                                                                    "vae_weights_sha256", "bank_weights_sha256",
                                                                    "bank_sampling")
                                                if k in meta})
        log(f"recorded the test figures in {args.gan}")
    return results


def draw_rolls(args, log) -> None:
    vae, _ = load_checkpoint(args.vae, kind="vae")
    gan, _ = load_checkpoint(args.gan, kind="latent_gan")
    bank = load_checkpoint(args.bank, kind="code_bank")[0]
    for name, fn in (("gan", lambda n, g: gan.sample_codes(vae, bank, n, g, (4, 4))),
                     ("gan_sources", lambda n, g: gan.source_codes(vae, bank, n, g, (4, 4))),
                     ("gaussian", lambda n, g: vae.sample_prior(n, g))):
        gen = torch.Generator().manual_seed(args.seed)
        melodies = decode_codes(vae, fn(16, gen), (4, 4), args.temperature, gen)
        path = tile_sheet([piano_roll_png(m, title=f"{name} {i + 1} ({m.key.name})", width=360, height=170)
                           for i, m in enumerate(melodies)], 4, args.rolls_dir / f"{name}_rolls.png")
        log(f"wrote {path}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluate", action="store_true", help="measure the GAN beside the other samplers, test split")
    ap.add_argument("--record", action="store_true", help="with --evaluate: write the test figures into --gan")
    ap.add_argument("--rolls", action="store_true", help="piano rolls of 16 samples per sampler into --rolls-dir")
    ap.add_argument("--rolls-dir", type=Path, default=WORK)
    ap.add_argument("--out", type=Path, default=GAN_PATH)
    ap.add_argument("--gan", type=Path, default=GAN_PATH, help="the checkpoint --evaluate and --rolls read")
    ap.add_argument("--bank", type=Path, default=BANK_PATH, help="the corpus bank whose codes the GAN refines")
    ap.add_argument("--vae", type=Path, default=VAE_PATH)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--steps", type=int, default=1500, help="refiner steps (the learning rate decays over them)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lr-critic", type=float, default=5e-4, help="the critic's learning rate (0: --lr)")
    ap.add_argument("--n-critic", type=int, default=2, help="critic steps per refiner step")
    ap.add_argument("--gp", type=float, default=10.0, help="gradient penalty weight")
    ap.add_argument("--step-penalty", type=float, default=0.1, help="weight of the move's squared length")
    ap.add_argument("--realism-weight", type=float, default=2.0,
                    help="weight of the realism head (decoded 4/4 realism, regressed on codes) in the refiner's loss")
    ap.add_argument("--realism-samples", type=int, default=8000, help="codes decoded to fit the realism head")
    ap.add_argument("--realism-repeats", type=int, default=2, help="decodings per code, averaged")
    ap.add_argument("--realism-steps", type=int, default=3000)
    ap.add_argument("--realism-hidden", type=int, default=128)
    ap.add_argument("--ema", type=float, default=0.999, help="decay of the saved refiner's weight average")
    ap.add_argument("--max-step", type=float, default=LatentGANConfig.max_step)
    ap.add_argument("--noise-dim", type=int, default=LatentGANConfig.noise_dim)
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
    if args.evaluate:
        run_evaluation(args, Log(None))
    elif args.rolls:
        draw_rolls(args, Log(None))
    else:
        log = Log(WORK / f"train-{args.out.stem}.log")
        log(f"command: {args.command}")
        train(args, log)


if __name__ == "__main__":
    main()
