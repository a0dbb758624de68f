"""Latent GAN: a learned sampler for the VAE's codes (Engel, Hoffman, Roberts 2017, "Latent
Constraints"; Achlioptas et al. 2018, "Learning Representations and Generative Models for 3D
Point Clouds", whose "l-GAN" this is).

The VAE's posteriors are narrow (their KL per window is in checkpoints/MODEL_CARD.md), so the
codes of real windows fill a thin, curved part of z space that a Gaussian fitted to them
(MelodyVAE.sample_prior) covers loosely: most of its mass lies between the melodies, and decodes
to busier, less tonal lines. A small MLP generator maps
noise to z and is trained, against a critic over the posterior means of the training windows,
to land where those means lie.

The generator is conditioned on the time signature: a 3/4 window's code and a 4/4 window's code
lie in different places, and Generate asks for a given meter. ``config.meters`` lists the meters
it was trained on; any other raises a RequestError that names them.

Codes are modelled standardised (per dimension, by the training codes' mean and standard
deviation, kept as buffers), so one learning rate and one gradient penalty suit every dimension.

With ``residual`` (the default) the generator is the fitted Gaussian plus a learned correction:
z = L eps + f(eps, meter), with L the Cholesky factor of the standardised codes' covariance and
f's last layer zero at the start. Training then starts from the fitted Gaussian (its samples
already cover the codes' spread) and only has to move them onto where codes lie; a generator
learned from scratch must first find that spread, and trains far more slowly
(``python -m musicgen_app.training.train_gan --evaluate`` compares the samplers).

With ``rejection`` = K > 1, each sample is chosen among K generator draws by a density-ratio
classifier (real training codes against generator codes, trained after the GAN), with
probability proportional to exp(logit / ratio_temperature): sampling-importance-resampling, the
soft form of discriminator rejection sampling (Azadi et al. 2019). Where the generator still puts
mass between the codes' modes, the classifier sees it and those draws are rarely kept. The
classifier travels in the checkpoint, since sampling needs it.

Only the generator (and that classifier) lives here and in the checkpoint: the critic is a training
device (the sampler never calls it), and leaving it out keeps the file small.
musicgen_app/training/train_gan.py owns the critic and keeps it in its resumable state file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import CheckpointError, RequestError


def meter_name(time_signature: tuple[int, int]) -> str:
    return f"{time_signature[0]}/{time_signature[1]}"


@dataclass(frozen=True)
class LatentGANConfig:
    z_dim: int = 128  # must equal the VAE's z_dim
    noise_dim: int = 128  # equal to z_dim when residual
    hidden: int = 512
    layers: int = 3  # hidden layers of the generator
    meter_dim: int = 16  # size of the time-signature embedding
    meters: tuple[str, ...] = ("4/4",)  # the time signatures it can sample for, as "n/d"
    truncation: float = 1.0  # noise scale at sampling time; < 1 trades variety for typicality
    residual: bool = True  # z = fitted Gaussian's L eps + the network's correction (noise_dim = z_dim)
    rejection: int = 1  # generator draws per sample, one kept by the density-ratio classifier (1 = off)
    ratio_hidden: int = 256
    ratio_temperature: float = 1.0  # > 1 flattens the choice among draws (more variety), < 1 sharpens it

    def __post_init__(self):
        # a checkpoint's JSON metadata gives a list back
        object.__setattr__(self, "meters", tuple(str(m) for m in self.meters))
        for name in ("z_dim", "noise_dim", "hidden", "layers", "meter_dim"):
            if getattr(self, name) < 1:
                raise CheckpointError(f"LatentGANConfig.{name} must be positive, got {getattr(self, name)}.")
        if not self.meters or len(set(self.meters)) != len(self.meters):
            raise CheckpointError(f"LatentGANConfig.meters must be distinct time signatures, got {self.meters}.")
        if self.residual and self.noise_dim != self.z_dim:
            raise CheckpointError(
                f"A residual LatentGAN needs noise_dim == z_dim, got {self.noise_dim} and {self.z_dim}."
            )
        if self.rejection < 1 or self.ratio_hidden < 1 or self.ratio_temperature <= 0:
            raise CheckpointError(
                f"LatentGANConfig.rejection and ratio_hidden must be >= 1 and ratio_temperature > 0, "
                f"got {self.rejection}, {self.ratio_hidden}, {self.ratio_temperature}."
            )
        if not 0 < self.truncation <= 4:
            raise CheckpointError(f"LatentGANConfig.truncation must be in (0, 4], got {self.truncation}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LatentGANConfig:
        try:
            return cls(**d)
        except TypeError as exc:
            raise CheckpointError(f"LatentGANConfig does not take {d!r}: {exc}.") from None


def mlp(inp: int, hidden: int, layers: int, out: int, norm: bool) -> nn.Sequential:
    """``layers`` hidden layers of LeakyReLU; LayerNorm (not BatchNorm, which WGAN-GP's per-example
    gradient penalty forbids) when ``norm``."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(inp if i == 0 else hidden, hidden))
        if norm:
            mods.append(nn.LayerNorm(hidden))
        mods.append(nn.LeakyReLU(0.2))
    mods.append(nn.Linear(hidden if layers else inp, out))
    return nn.Sequential(*mods)


class LatentGAN(nn.Module):
    """The generator: (noise, meter) -> z in the VAE's code space."""

    kind = "latent_gan"

    def __init__(self, config: LatentGANConfig):
        super().__init__()
        self.config = c = config
        self.meter_embed = nn.Embedding(len(c.meters), c.meter_dim)
        self.net = mlp(c.noise_dim + c.meter_dim, c.hidden, c.layers, c.z_dim, norm=True)
        # standardisation of the training codes (set by set_code_stats before training)
        self.register_buffer("code_mean", torch.zeros(c.z_dim))
        self.register_buffer("code_std", torch.ones(c.z_dim))
        if c.residual:
            self.register_buffer("gauss_tril", torch.eye(c.z_dim))
            nn.init.zeros_(self.net[-1].weight)  # starts as the fitted Gaussian exactly
            nn.init.zeros_(self.net[-1].bias)
        if c.rejection > 1:
            self.ratio = LatentCritic(c, hidden=c.ratio_hidden, layers=2)

    @torch.no_grad()
    def set_code_stats(self, codes: torch.Tensor) -> None:
        """Standardisation (and, when residual, the fitted Gaussian) from the training codes (N, z_dim)."""
        self.code_mean.copy_(codes.mean(0))
        self.code_std.copy_(codes.std(0).clamp_min(1e-4))
        if self.config.residual:
            x = self.standardise(codes).double()
            cov = torch.cov(x.T) + 1e-5 * torch.eye(x.shape[1], dtype=torch.double)
            self.gauss_tril.copy_(torch.linalg.cholesky(cov).float())

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.code_mean) / self.code_std

    def meter_index(self, time_signature: tuple[int, int] | str) -> int:
        name = time_signature if isinstance(time_signature, str) else meter_name(time_signature)
        if name not in self.config.meters:
            raise RequestError(
                f"The latent GAN was not trained on {name} windows; it samples for {', '.join(self.config.meters)}."
            )
        return self.config.meters.index(name)

    def forward(self, eps: torch.Tensor, meters: torch.Tensor) -> torch.Tensor:
        """eps (B, noise_dim), meters (B,) indices into config.meters -> standardised z (B, z_dim)."""
        out = self.net(torch.cat([eps, self.meter_embed(meters)], dim=-1))
        return out + eps @ self.gauss_tril.T if self.config.residual else out

    def noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=generator)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator,
        time_signature: tuple[int, int] | str = (4, 4),
        truncation: float | None = None,
    ) -> torch.Tensor:
        """``n`` codes (n, z_dim) for windows in ``time_signature``; randomness only from ``generator``."""
        if n < 1:
            raise RequestError(f"Ask for at least one sample, not {n}.")
        scale = self.config.truncation if truncation is None else truncation
        K = self.config.rejection
        eps = self.noise(n * K, generator) * scale
        meters = torch.full((n * K,), self.meter_index(time_signature), dtype=torch.long)
        z = self.forward(eps, meters)
        if K > 1:
            logits = self.ratio(z, meters).view(n, K) / self.config.ratio_temperature
            pick = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)
            z = z.view(n, K, -1)[torch.arange(n), pick]
        return z * self.code_std + self.code_mean


class LatentCritic(nn.Module):
    """WGAN critic over standardised codes and their meter (training only; see the module docstring)."""

    def __init__(
        self, config: LatentGANConfig, hidden: int | None = None, layers: int | None = None, norm: bool = False
    ):
        super().__init__()
        c = config
        self.meter_embed = nn.Embedding(len(c.meters), c.meter_dim)
        self.net = mlp(c.z_dim + c.meter_dim, hidden or c.hidden, layers or c.layers, 1, norm=norm)

    def forward(self, z: torch.Tensor, meters: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.meter_embed(meters)], dim=-1)).squeeze(-1)
