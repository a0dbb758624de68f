"""Latent GAN: an adversarial refiner of the VAE's codes (after Engel, Hoffman, Roberts 2017,
"Latent Constraints", whose generator moves prior samples by a bounded step towards where a critic
says real codes lie, with a penalty on the step's size).

The VAE decodes a code into a corpus-like melody only close to where real windows' codes lie; most
of a Gaussian's mass over z lies between those places. So the generator does not map noise to z.
It starts from a code the corpus bank makes (models/code_bank.py, CodeBank.sample: a training
window's posterior mean moved the bank's ``mix`` of the way towards one of its nearest windows from
another tune, plus Gaussian noise of the bank's ``noise`` code standard deviations per dimension),
and adds a learned refinement:

    z' = z + max_step * tanh(f(z, eps, meter))          (per dimension, in code standard deviations)

with ``eps`` noise of ``noise_dim`` dimensions and f's last layer zero at the start (the refiner
starts as the identity). The tanh bounds every dimension's move by ``max_step``; training also
penalises the move's size, so that the refiner takes the moved, noisy code back onto the codes'
surface without walking it all the way to a training window's code (which would decode to a copy).
musicgen_app/training/train_gan.py trains it (WGAN-GP against the codes of real training windows,
with a second term for how real the decodings of 4/4 codes look) and measures realism and copying.

The refiner is conditioned on the time signature; ``config.meters`` lists those it was trained
on, and any other raises a RequestError that names them. Codes are handled standardised (per
dimension, by the training codes' mean and standard deviation, kept as buffers).

Without a bank (or with one that has no window of the asked meter), ``sample_codes`` refines draws
of the Gaussian fitted to the training codes instead (``gauss_tril``): the refiner was trained on
bank codes, and these decode far less like the corpus.

Only the refiner lives here and in the checkpoint: the critic is a training device, kept by
train_gan.py in its resumable state file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..errors import CheckpointError, RequestError
from ..melody import meter_name
from ..settings import parse_time_signature


@dataclass(frozen=True)
class LatentGANConfig:
    z_dim: int = 128  # must equal the VAE's z_dim
    noise_dim: int = 32  # noise the refiner sees beside the code it refines
    hidden: int = 512
    layers: int = 3  # hidden layers of the refiner
    meter_dim: int = 16  # size of the time-signature embedding
    meters: tuple[str, ...] = ("4/4",)  # the time signatures it can refine for, as "n/d"
    max_step: float = 0.5  # bound on each dimension's move, in code standard deviations

    def __post_init__(self):
        # a checkpoint's JSON metadata gives a list back
        object.__setattr__(self, "meters", tuple(str(m) for m in self.meters))
        for name in ("z_dim", "noise_dim", "hidden", "layers", "meter_dim"):
            if getattr(self, name) < 1:
                raise CheckpointError(f"LatentGANConfig.{name} must be positive, got {getattr(self, name)}.")
        if not self.meters or len(set(self.meters)) != len(self.meters):
            raise CheckpointError(f"LatentGANConfig.meters must be distinct time signatures, got {self.meters}.")
        if not 0 < self.max_step <= 4:
            raise CheckpointError(f"LatentGANConfig.max_step must be in (0, 4], got {self.max_step}.")

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
    """The refiner: (code, noise, meter) -> code in the VAE's code space; see the module docstring."""

    kind = "latent_gan"

    def __init__(self, config: LatentGANConfig):
        super().__init__()
        self.config = c = config
        self.meter_embed = nn.Embedding(len(c.meters), c.meter_dim)
        self.net = mlp(c.z_dim + c.noise_dim + c.meter_dim, c.hidden, c.layers, c.z_dim, norm=True)
        nn.init.zeros_(self.net[-1].weight)  # starts as the identity
        nn.init.zeros_(self.net[-1].bias)
        # standardisation of the training codes, and the Gaussian fitted to them (set_code_stats)
        self.register_buffer("code_mean", torch.zeros(c.z_dim))
        self.register_buffer("code_std", torch.ones(c.z_dim))
        self.register_buffer("gauss_tril", torch.eye(c.z_dim))

    @torch.no_grad()
    def set_code_stats(self, codes: torch.Tensor) -> None:
        """Standardisation and the fitted Gaussian from the training codes (N, z_dim)."""
        self.code_mean.copy_(codes.mean(0))
        self.code_std.copy_(codes.std(0).clamp_min(1e-4))
        x = self.standardise(codes).double()
        cov = torch.cov(x.T) + 1e-5 * torch.eye(x.shape[1], dtype=torch.double)
        self.gauss_tril.copy_(torch.linalg.cholesky(cov).float())

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.code_mean) / self.code_std

    def unstandardise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.code_std + self.code_mean

    def meter_index(self, time_signature: tuple[int, int] | str) -> int:
        name = time_signature if isinstance(time_signature, str) else meter_name(time_signature)
        if name not in self.config.meters:
            raise RequestError(
                f"The latent GAN was not trained on {name} windows; it samples for {', '.join(self.config.meters)}."
            )
        return self.config.meters.index(name)

    def step(self, x: torch.Tensor, eps: torch.Tensor, meters: torch.Tensor) -> torch.Tensor:
        """The move (B, z_dim) for standardised codes ``x`` (B, z_dim), noise ``eps`` (B, noise_dim) and
        ``meters`` (B,) indices into config.meters; each entry within +-max_step."""
        raw = self.net(torch.cat([x, eps, self.meter_embed(meters)], dim=-1))
        return self.config.max_step * torch.tanh(raw)

    def forward(self, x: torch.Tensor, eps: torch.Tensor, meters: torch.Tensor) -> torch.Tensor:
        """Standardised codes (B, z_dim) -> refined standardised codes (B, z_dim)."""
        return x + self.step(x, eps, meters)

    def noise(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(n, self.config.noise_dim, generator=generator)

    @torch.no_grad()
    def refine(
        self, z: torch.Tensor, time_signature: tuple[int, int] | str, generator: torch.Generator
    ) -> torch.Tensor:
        """Codes ``z`` (n, z_dim) of windows in ``time_signature`` -> refined codes (n, z_dim); each
        dimension moves by at most ``max_step`` of its code standard deviation. Randomness only
        from ``generator``."""
        if z.dim() != 2 or z.shape[1] != self.config.z_dim:
            raise RequestError(f"The latent GAN refines codes of shape (n, {self.config.z_dim}), not {tuple(z.shape)}.")
        meters = torch.full((len(z),), self.meter_index(time_signature), dtype=torch.long)
        return self.unstandardise(self(self.standardise(z), self.noise(len(z), generator), meters))

    @torch.no_grad()
    def source_codes(self, vae, bank, n: int, generator: torch.Generator,
                     time_signature: tuple[int, int] = (4, 4)) -> torch.Tensor:
        """``n`` unrefined codes (n, z_dim): the codes ``bank`` makes for free requests (CodeBank.sample)
        when it has windows of ``time_signature``, else draws of the Gaussian fitted to the training
        codes."""
        if n < 1:
            raise RequestError(f"Ask for at least one sample, not {n}.")
        self.meter_index(time_signature)  # an unknown meter is refused before any randomness is drawn
        if bank is None or not bank.knows(time_signature):
            return self.unstandardise(torch.randn(n, self.config.z_dim, generator=generator) @ self.gauss_tril.T)
        return bank.sample(vae, n, generator, time_signature)[0]

    @torch.no_grad()
    def sample_codes(self, vae, bank, n: int, generator: torch.Generator,
                     time_signature: tuple[int, int] = (4, 4)) -> torch.Tensor:
        """``n`` codes (n, z_dim) for windows in ``time_signature``: source_codes, refined. ``vae`` is
        the VAE the bank's windows are encoded with; ``bank`` a CodeBank or None (see the module
        docstring). Randomness only from ``generator``."""
        return self.refine(self.source_codes(vae, bank, n, generator, time_signature), time_signature, generator)

    def sample(
        self, n: int, generator: torch.Generator, time_signature: tuple[int, int] | str = (4, 4)
    ) -> torch.Tensor:
        """``n`` codes without a bank: refined draws of the fitted Gaussian (sample_codes is the sampler
        to use; this one decodes far less like the corpus)."""
        ts = parse_time_signature(time_signature) if isinstance(time_signature, str) else time_signature
        return self.sample_codes(None, None, n, generator, ts)


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
