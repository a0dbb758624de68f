""""More like these": a tiny latent model of one musician's clips, fitted in seconds.

MidiMe (Dinculescu, Engel, Roberts 2019, "MidiMe: Personalizing a MusicVAE model with user
data"): the big VAE stays frozen; its posterior means of the musician's clips are the training
set of a second, small VAE whose latent has a few dimensions (``StyleConfig.latent_dim``) and
whose encoder and decoder are MLPs over the big VAE's z. Sampling draws the small latent from
N(0, I) and decodes it to a z near the clips' codes; the big VAE's decoder turns z into notes.

Clips are cut as Interpolate cuts them: whole bars of one meter, as many as fit the VAE's window
(4 bars of 4/4, 5 of 3/4), here one bar apart, so two 8-bar clips give ten windows. A pickup is
placed in a full first bar. All clips are read in the clips' most common meter (ties: the first
clip's), which is also the meter the samples are written in; a clip in another meter joins only
when one bar length divides the other (2/4 clips read as 4/4, 3/4 as 6/8), so its bar lines stay
bar lines.

Codes are whitened by the VAE's fitted prior (corpus codes are then about N(0, I)), centred on
the clips' mean and scaled by their spread, so one KL weight suits any set of clips. After
training, that map is folded into the decoder's last layer: ``StyleModel`` is then one MLP from
the small latent straight to z, and the encoder (a training device, as the GAN's critic) is
dropped. The model is small enough to travel as bytes (``to_bytes``/``from_bytes``).

StyleConfig's defaults were chosen on the valid split with ``bench/eval_style.py --split valid``
(distance to the musician's unseen material, six-statistic overlap with it, share of sample bars
that copy a clip bar). The KL weight and the latent size hardly change how near the samples come
to the unseen material, but they change how much the samples copy the clips; training steps
trade copying against closeness to the given clips. Scaling the latent noise at sampling moves
samples away from the unseen material without copying less, so there is no such knob.
``bench/eval_style.py`` (test split by default) prints the figures and the fit time.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from collections.abc import Callable

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .. import tokens as tk
from ..errors import CheckpointError, RequestError
from ..melody import Melody, meter_name
from .code_bank import pitch_class_logits
from .digest import weights_digest
from .latent_gan import mlp
from .vae import MelodyVAE, kl_divergence

MIN_CLIPS = 2
MAX_CLIPS = 20
MAX_CLIP_BARS = 64  # longer clips are cut: 61 windows of 4/4 each is already plenty of one tune
BYTES_FORMAT = "musicgen-style-v3"  # change it when the saved tensors change: old bytes are then refused
# Decoding leans toward the clips' pitch classes as the corpus bank's samples lean toward their
# source windows' (code_bank.pitch_class_logits); chosen on the valid split with bench/eval_style.py.
PITCH_CLASS_BIAS = 1.5

Progress = Callable[[float, str], None]


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    latent_dim: int = 4
    hidden: int = 128
    layers: int = 2  # hidden layers of the encoder and of the decoder
    kl_weight: float = 1.0  # weight of the small VAE's KL term (nats) against its squared error
    steps: int = 500  # full-batch Adam steps: a fixed budget, so fitting MAX_CLIPS clips takes seconds
    lr: float = 3e-3

    def __post_init__(self):
        for name in ("latent_dim", "hidden", "layers", "steps"):
            if getattr(self, name) < 1:
                raise RequestError(f"StyleConfig.{name} must be at least 1, got {getattr(self, name)}.")
        if self.kl_weight <= 0 or self.lr <= 0:
            raise RequestError(f"StyleConfig.kl_weight and lr must be positive, got {self.kl_weight} and {self.lr}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class StyleModel(torch.nn.Module):
    """Samples VAE codes near one musician's clips: ``sample(n, generator) -> z (n, Z)``, for
    windows in ``time_signature``."""

    def __init__(self, config: StyleConfig, z_dim: int, time_signature: tuple[int, int],
                 clips: int = 0, windows: int = 0, vae_fingerprint: str = "", clip_bars: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.decoder = mlp(config.latent_dim, config.hidden, config.layers, z_dim, norm=False)
        self.time_signature = tuple(time_signature)
        self.clips, self.windows, self.vae_fingerprint = clips, windows, vae_fingerprint
        self.notices: list[str] = []
        bar = Melody(notes=(), time_signature=self.time_signature).bar_steps
        # the clips' distinct bars with a note, as tokens: what a sample should not simply repeat
        self.register_buffer("clip_bars", torch.zeros(0, bar, dtype=torch.uint8) if clip_bars is None else clip_bars)
        self.register_buffer("pitch_classes", torch.zeros(12))  # note onsets of the clips per pitch class

    @property
    def meter(self) -> str:
        return meter_name(self.time_signature)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` codes (n, Z); randomness only from ``generator``."""
        if n < 1:
            raise RequestError(f"Ask for at least one sample, not {n}.")
        return self.decoder(torch.randn(n, self.config.latent_dim, generator=generator))

    def decoding_bias(self, n: int) -> torch.Tensor:
        """(n, C) logits that lean decoding toward the clips' pitch classes (code_bank.pitch_class_logits)."""
        return pitch_class_logits(self.pitch_classes[None], PITCH_CLASS_BIAS).expand(n, -1)

    def copies(self, melodies: list[Melody]) -> np.ndarray:
        """Each melody's share of bars with a note that equal a bar of the clips, token for token."""
        known = {bytes(row) for row in self.clip_bars.numpy()}
        out = np.zeros(len(melodies))
        for i, m in enumerate(melodies):
            bars = [b for b in tk.bar_rows(m) if (b >= 2).any()]
            out[i] = sum(bytes(b.astype(np.uint8)) in known for b in bars) / max(len(bars), 1)
        return out

    def select(self, melodies: list[Melody], n: int) -> np.ndarray:
        """Rows of the ``n`` melodies that copy the fewest of the clips' bars, in drawn order among equals.
        Fitted to a few clips, the model writes some of their bars back as they were (bench/eval_style.py
        measures how many); a melody that is mostly the clips again is no new idea."""
        return np.sort(np.argsort(self.copies(melodies), kind="stable")[:n])

    def check_vae(self, vae: MelodyVAE) -> None:
        if self.vae_fingerprint and self.vae_fingerprint != vae_fingerprint(vae):
            raise RequestError("This style was fitted on another VAE's codes; fit it again from the clips.")

    def to_bytes(self) -> bytes:
        meta = {"format": BYTES_FORMAT, "config": json.dumps(self.config.to_dict()), "meter": self.meter,
                "clips": str(self.clips), "windows": str(self.windows), "vae_fingerprint": self.vae_fingerprint,
                "z_dim": str(self.decoder[-1].out_features), "notices": json.dumps(self.notices)}
        return save_tensors({k: v.contiguous() for k, v in self.state_dict().items()}, metadata=meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> StyleModel:
        try:
            tensors = load_tensors(data)
            meta = _metadata(data)
            if meta.get("format") != BYTES_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}")
            num, den = (int(x) for x in meta["meter"].split("/"))
            model = cls(StyleConfig(**json.loads(meta["config"])), int(meta["z_dim"]), (num, den),
                        int(meta["clips"]), int(meta["windows"]), meta["vae_fingerprint"], tensors.get("clip_bars"))
            model.load_state_dict(tensors, strict=True)
            model.notices = list(json.loads(meta["notices"]))
        except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"These bytes are not a saved style ({str(exc).splitlines()[0][:120]}); "
                                  "fit the style again from the clips.") from None
        return model.eval()


def _metadata(data: bytes) -> dict:
    """A safetensors blob's metadata: an 8-byte little-endian header length, then a JSON header."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]).get("__metadata__") or {}


def vae_fingerprint(vae: MelodyVAE) -> str:
    """sha256 of the tensors that fix what a code means (the encoder's last bias, the decoder's
    output layer, the fitted prior): any retraining changes them. Not of all the weights, since
    Generate checks it on every call and hashing them all would make each call slower."""
    state = vae.state_dict()
    return weights_digest({k: state[k] for k in ("to_mu.bias", "head.weight", "prior_mean", "prior_scale_tril")})


# -- clips -> windows -----------------------------------------------------------------------------
def style_meter(melodies: list[Melody]) -> tuple[int, int]:
    """The clips' most common meter (ties: the first clip's); RequestError for clips whose bars
    cannot share its windows."""
    counts = collections.Counter(m.time_signature for m in melodies)
    target = counts.most_common(1)[0][0]
    bar = melodies[[m.time_signature for m in melodies].index(target)].bar_steps
    odd = [i + 1 for i, m in enumerate(melodies) if bar % m.bar_steps and m.bar_steps % bar]
    if odd:
        m = melodies[odd[0] - 1]
        raise RequestError(
            f"Clip{'s' if len(odd) > 1 else ''} {', '.join(map(str, odd))} "
            f"{'are' if len(odd) > 1 else 'is'} in {meter_name(m.time_signature)}, whose bars cannot share a window "
            f"with the {meter_name(target)} of most clips (a bar of {m.bar_steps} sixteenths against {bar}). "
            f"Give clips in one meter, or fit a separate style for the {meter_name(m.time_signature)} clips.")
    return target


def warm_up() -> None:
    """The first fit in a process pays a one-off cost for the optimiser's first use; pay it at start-up."""
    param = torch.zeros(1, requires_grad=True)
    param.sum().backward()
    torch.optim.Adam([param]).step()


def check_clips(melodies: list[Melody]) -> None:
    if not isinstance(melodies, list | tuple):
        raise RequestError(f"Give the clips as a list of melodies, not a {type(melodies).__name__}.")
    if len(melodies) < MIN_CLIPS:
        raise RequestError(f"A style needs {MIN_CLIPS} to {MAX_CLIPS} clips, got {len(melodies)}; add clips you like.")
    if len(melodies) > MAX_CLIPS:
        raise RequestError(f"A style takes at most {MAX_CLIPS} clips, got {len(melodies)}; keep the "
                           f"{MAX_CLIPS} closest to what you want.")
    for i, m in enumerate(melodies):
        if not isinstance(m, Melody):
            raise RequestError(f"Clip {i + 1} is a {type(m).__name__}, not a melody.")
        if not m.notes:
            label = f" ({m.name!r})" if m.name else ""
            raise RequestError(f"Clip {i + 1}{label} has no notes; remove it or give a clip with notes.")


def clip_bars(melodies: list[Melody], time_signature: tuple[int, int]) -> torch.Tensor:
    """The distinct bars with a note of clips read in ``time_signature``, as uint8 tokens."""
    rows = [b for m in melodies for b in tk.bar_rows(rebarred(m, time_signature)) if (b >= 2).any()]
    return torch.from_numpy(np.unique(np.stack(rows).astype(np.uint8), axis=0))


def rebarred(m: Melody, time_signature: tuple[int, int]) -> Melody:
    """``m`` read in ``time_signature`` from a bar line: a pickup gets rests before it up to the next
    bar line of that meter (as service.decoding.bar_aligned does in the clip's own meter), and the end is
    padded with rests to a whole bar."""
    probe = Melody(notes=(), time_signature=time_signature, steps_per_quarter=m.steps_per_quarter)
    pad = (-m.pickup_steps) % probe.bar_steps
    notes = tuple(dataclasses.replace(n, start=n.start + pad) for n in m.notes)
    total = pad + m.total_steps
    return m.replace(notes=notes, total_steps=total + (-total) % probe.bar_steps, time_signature=time_signature,
                     pickup_steps=0)


def style_windows(melodies: list[Melody], window: int, time_signature: tuple[int, int],
                  stride_bars: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every clip's windows of whole bars of ``time_signature`` (as many as fit ``window`` steps),
    ``stride_bars`` apart, each re-encoded as its own clip (tokens.vae_window); windows without a
    note are left out. -> tokens (N, window), their metrical features (window, 3), notices."""
    notices = []
    rows = []
    for i, m in enumerate(melodies):
        m = rebarred(m, time_signature)
        bar = m.bar_steps
        if bar > window:
            raise RequestError(f"A bar of {meter_name(time_signature)} ({bar} sixteenths) is longer than the "
                               f"{window}-sixteenth window the model reads; give clips in a shorter meter.")
        bars = m.total_steps // bar
        if bars > MAX_CLIP_BARS:
            notices.append(f"Clip {i + 1} ({bars} bars) was cut to its first {MAX_CLIP_BARS} bars.")
            bars = MAX_CLIP_BARS
        k = window // bar
        toks = tk.encode(m).tokens
        for first in range(0, max(1, bars - k + 1), stride_bars):
            row = tk.vae_window(toks, first * bar, min(k, bars) * bar, window)
            if (row >= 2).any():
                rows.append(row)
    feats = tk.metric_features(window, time_signature, 0, melodies[0].steps_per_quarter)
    return np.stack(rows), feats, notices


# -- fitting --------------------------------------------------------------------------------------
def fit_style(service_or_vae, melodies: list[Melody], progress: Progress | None = None, seed: int = 0,
              config: StyleConfig | None = None) -> StyleModel:
    """Fit a StyleModel to 2-20 clips (RequestError otherwise). ``service_or_vae``: a MelodyService
    or its MelodyVAE. ``progress(fraction, message)`` is called with rising fractions, last 1.0.
    Deterministic for a given ``seed`` (and torch thread count)."""
    vae = getattr(service_or_vae, "vae", service_or_vae)
    config = config or StyleConfig()
    report = progress or (lambda fraction, message: None)
    check_clips(melodies)
    ts = style_meter(melodies)
    report(0.0, f"Reading {len(melodies)} clips")
    tokens, feats, notices = style_windows(melodies, vae.config.window, ts)
    with torch.inference_mode():
        mu, _ = vae.encode(torch.from_numpy(tokens), torch.from_numpy(feats).expand(len(tokens), -1, -1))
    mu = mu.clone()
    report(0.05, f"Learning the style of {len(tokens)} windows")

    # whitened by the VAE's prior, centred and scaled to the clips (see the module docstring)
    tril = vae.prior_scale_tril.float()
    white = torch.linalg.solve_triangular(tril, (mu - vae.prior_mean).T, upper=False).T
    centre = white.mean(0)
    scale = (white - centre).pow(2).mean().sqrt().clamp_min(1e-3)
    x = (white - centre) / scale

    gen = torch.Generator().manual_seed(seed)
    encoder = mlp(x.shape[1], config.hidden, config.layers, 2 * config.latent_dim, norm=False)
    model = StyleModel(config, x.shape[1], ts, len(melodies), len(tokens), vae_fingerprint(vae),
                       clip_bars(melodies, ts))
    model.pitch_classes.copy_(torch.from_numpy(np.bincount([n.pitch % 12 for m in melodies for n in m.notes],
                                                           minlength=12)).float())
    _seeded_init(encoder, gen)
    _seeded_init(model, gen)
    params = list(encoder.parameters()) + list(model.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    every = max(1, config.steps // 20)
    with torch.enable_grad():
        for step in range(config.steps):
            h = encoder(x)
            m, s = h[:, :config.latent_dim], torch.nn.functional.softplus(h[:, config.latent_dim:]) + 1e-4
            recon = model.decoder(m + s * torch.randn(m.shape, generator=gen))
            loss = 0.5 * (recon - x).pow(2).sum(-1).mean() + config.kl_weight * kl_divergence(m, s).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % every == 0 and step + 1 < config.steps:
                report(0.05 + 0.95 * (step + 1) / config.steps,
                       f"Learning the style: step {step + 1} of {config.steps}")
    _fold_output(model.decoder[-1], tril, vae.prior_mean.float(), centre, scale)
    model.notices = notices
    model.requires_grad_(False)
    report(1.0, f"Style learnt from {len(melodies)} clips ({len(tokens)} windows of {model.meter})")
    return model.eval()


@torch.no_grad()
def _seeded_init(module: torch.nn.Module, gen: torch.Generator) -> None:
    """nn.Linear's own initialisation, drawn from ``gen``: the global generator is shared by every
    thread of the server, so seeding it would neither be safe nor reproducible."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
            bound = 1 / math.sqrt(layer.in_features)
            torch.nn.init.uniform_(layer.bias, -bound, bound, generator=gen)


@torch.no_grad()
def _fold_output(last: torch.nn.Linear, tril: torch.Tensor, mean: torch.Tensor, centre: torch.Tensor,
                 scale: torch.Tensor) -> None:
    """Make the decoder's last layer emit z itself: z = mean + tril (centre + scale * y) for its
    output y, so sampling needs neither the prior nor the clips' statistics."""
    last.weight.copy_(tril @ (scale * last.weight))
    last.bias.copy_(mean + tril @ (centre + scale * last.bias))


def nearest_distance(z: torch.Tensor, codes: torch.Tensor, vae: MelodyVAE) -> torch.Tensor:
    """Each row of ``z``'s distance to its nearest row of ``codes``, in the VAE prior's whitened
    units per dimension (about sqrt(2) between two random corpus codes, which whitening makes
    about N(0, I))."""
    tril, mean = vae.prior_scale_tril.float(), vae.prior_mean.float()
    a = torch.linalg.solve_triangular(tril, (z.float() - mean).T, upper=False).T
    b = torch.linalg.solve_triangular(tril, (codes.float() - mean).T, upper=False).T
    return torch.cdist(a, b).min(1).values / math.sqrt(z.shape[1])
