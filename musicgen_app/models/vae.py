"""Melody VAE in the spirit of MusicVAE's flat 2/4-bar model.

Encoder: bidirectional LSTM over a window of ``window`` step tokens (plus metrical position) ->
mu, sigma of a diagonal Gaussian over z. Decoder: an LSTM whose initial state comes from z and
which also sees z at every step beside the previous token and the step's metrical position.
With ``segments`` > 1 the window is cut into equal parts (16 parts of a 4-bar window: one beat
each in 4/4), a simplified MusicVAE conductor: the encoder hands the mean of its outputs over
each part to mu and sigma beside its final states, and the decoder gets, at every step, a code
for the part it is in, computed from z. Each beat's notes then travel a short path through z
rather than through one state carried over the whole window, so free (argmax) decoding
reconstructs windows more closely the more parts there are; the shipped model's reconstruction
is in checkpoints/MODEL_CARD.md (``python -m musicgen_app.training.evaluate``).
Training uses KL annealing with free bits (see musicgen_app/training/train.py); the config stores
both so a checkpoint says how it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .. import tokens as tk
from ..errors import CheckpointError
from .lstm import PositionEmbedding, lstm_step
from .sampling import sample_logits


@dataclass(frozen=True)
class VAEConfig:
    num_classes: int = tk.NUM_CLASSES
    window: int = 64  # steps: 4 bars of 4/4 at 16th notes
    embed_dim: int = 64
    pos_dim: int = 16
    enc_hidden: int = 192
    dec_hidden: int = 256
    dec_layers: int = 1
    z_dim: int = 128
    free_bits: float = 256.0  # nats per window below which KL costs nothing
    beta_max: float = 0.2  # weight of the KL term at the end of its annealing
    segments: int = 16  # equal parts of the window, each with its own conductor code (1 = flat)
    segment_dim: int = 128  # size of each part's conductor code

    def __post_init__(self):
        for name in ("num_classes", "window", "embed_dim", "enc_hidden", "dec_hidden", "dec_layers", "z_dim",
                     "segments", "segment_dim"):
            if getattr(self, name) < 1:
                raise CheckpointError(f"VAEConfig.{name} must be positive, got {getattr(self, name)}.")
        if self.window % self.segments:
            raise CheckpointError(f"VAEConfig.window {self.window} does not split into {self.segments} equal "
                                  "segments; choose a window that is a multiple of segments.")

    def to_dict(self) -> dict:
        return asdict(self)


class MelodyVAE(nn.Module):
    kind = "vae"

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.num_classes, c.embed_dim)
        self.pos = PositionEmbedding(c.pos_dim)
        self.encoder = nn.LSTM(c.embed_dim + self.pos.out_dim, c.enc_hidden, batch_first=True, bidirectional=True)
        summary = 2 * c.enc_hidden * (1 + (c.segments if c.segments > 1 else 0))
        self.to_mu = nn.Linear(summary, c.z_dim)
        self.to_sigma = nn.Linear(summary, c.z_dim)
        self.z_to_state = nn.Linear(c.z_dim, 2 * c.dec_layers * c.dec_hidden)
        seg_in = c.segment_dim if c.segments > 1 else 0
        if seg_in:
            self.conductor = nn.Linear(c.z_dim, c.segments * c.segment_dim)
        self.decoder = nn.LSTM(c.embed_dim + self.pos.out_dim + c.z_dim + seg_in, c.dec_hidden, c.dec_layers,
                               batch_first=True)
        self.head = nn.Linear(c.dec_hidden, c.num_classes)
        # Where Generate draws z: N(0, I) until fit_prior replaces it with a Gaussian fitted to the
        # posterior means of the training windows (stored in the checkpoint with the weights).
        self.register_buffer("prior_mean", torch.zeros(c.z_dim))
        self.register_buffer("prior_scale_tril", torch.eye(c.z_dim))

    def encode(self, tokens: torch.Tensor, feats: torch.Tensor):
        """tokens (B, W), feats (B, W, 3) -> mu, sigma (B, Z)."""
        x = torch.cat([self.embed(tokens), self.pos(feats)], dim=-1)
        out, (h, _) = self.encoder(x)
        h = torch.cat([h[0], h[1]], dim=-1)
        S = self.config.segments
        if S > 1:
            parts = out.reshape(out.shape[0], S, out.shape[1] // S, -1).mean(2)
            h = torch.cat([h, parts.flatten(1)], dim=-1)
        return self.to_mu(h), F.softplus(self.to_sigma(h)) + 1e-4

    def z_inputs(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """What the decoder sees of z at each of the first ``length`` steps: z, and its segment's code."""
        zz = z.unsqueeze(1).expand(-1, length, -1)
        S = self.config.segments
        if S == 1:
            return zz
        codes = torch.tanh(self.conductor(z)).view(z.shape[0], S, -1)
        seg = (torch.arange(length) * S // self.config.window).clamp(max=S - 1)
        return torch.cat([zz, codes[:, seg]], dim=-1)

    def initial_state(self, z: torch.Tensor):
        c = self.config
        s = torch.tanh(self.z_to_state(z)).view(z.shape[0], 2, c.dec_layers, c.dec_hidden)
        return s[:, 0].transpose(0, 1).contiguous(), s[:, 1].transpose(0, 1).contiguous()

    def decode_step(self, prev: torch.Tensor, feats: torch.Tensor, z: torch.Tensor, state, input_dropout: float = 0.0):
        """prev (B, T), feats (B, T, 3) of the steps being predicted -> logits (B, T, C), state.

        ``input_dropout`` (training only) blanks that share of the previous-token inputs, so the
        decoder has to read the melody from z rather than copy its own last step (word dropout,
        Bowman et al. 2016): it closes the gap between teacher-forced and free decoding.
        """
        zz = self.z_inputs(z, prev.shape[1])
        emb = self.embed(prev)
        if input_dropout > 0:
            keep = torch.rand(prev.shape, device=prev.device) >= input_dropout
            emb = emb * keep.unsqueeze(-1)
        x = torch.cat([emb, self.pos(feats), zz], dim=-1)
        out, state = self.decoder(x, state)
        return self.head(out), state

    def decode_one(self, prev: torch.Tensor, feats: torch.Tensor, zin: torch.Tensor, state):
        """One decoding step for sampling: prev (B,), feats (B, 3), zin (B, ·) from z_inputs -> logits, state."""
        x = torch.cat([self.embed(prev), self.pos(feats), zin], dim=-1)
        out, state = lstm_step(self.decoder, x, state)
        return self.head(out), state

    @torch.no_grad()
    def fit_prior(self, mu: torch.Tensor) -> None:
        """Fit the sampling prior to posterior means ``mu`` (N, Z) of the training windows.

        With the KL budget that exact reconstruction needs, the codes of real melodies fill only
        part of N(0, I), and z drawn from it decodes to busier, jumpier, less tonal lines than the
        corpus (measured in the model card). A full-covariance Gaussian over the codes the
        encoder actually produces (ex-post density estimation, Ghosh et al. 2020) lands samples
        where melodies are.
        """
        mu = mu.double()
        cov = torch.cov(mu.T) + 1e-5 * torch.eye(mu.shape[1], dtype=torch.double)
        self.prior_mean.copy_(mu.mean(0))
        self.prior_scale_tril.copy_(torch.linalg.cholesky(cov))

    def sample_prior(self, n: int, generator=None) -> torch.Tensor:
        eps = torch.randn(n, self.config.z_dim, generator=generator)
        return self.prior_mean + eps @ self.prior_scale_tril.T

    @torch.inference_mode()
    def generate(self, z: torch.Tensor, feats: torch.Tensor, temperature: float = 0.0, gen=None,
                 bias: torch.Tensor | None = None, max_leap: int | None = None) -> torch.Tensor:
        """Free-running decoding: z (B, Z), feats (W, 3) or (B, W, 3) -> tokens (B, W); 0 = argmax.
        ``bias`` (B, C), if given, is added to every step's logits (before the temperature);
        ``max_leap``: no note more than that many semitones from the row's previous note."""
        B = z.shape[0]
        if feats.dim() == 2:
            feats = feats.unsqueeze(0).expand(B, -1, -1)
        state = self.initial_state(z)
        prev = torch.full((B,), tk.REST, dtype=torch.long)
        C = self.config.num_classes
        last = torch.full((B,), C, dtype=torch.long)  # each row's last pitch token; C before its first note
        if max_leap is not None:  # far[last]: the tokens too far from it, one row per last token (none for C)
            classes = torch.arange(C)
            far = torch.zeros(C + 1, C, dtype=torch.bool)
            far[:C] = (classes >= 2) & ((classes[None, :] - classes[:, None]).abs() > max_leap)
        out = torch.empty(B, feats.shape[1], dtype=torch.long)
        zin = self.z_inputs(z, feats.shape[1])
        for t in range(feats.shape[1]):
            logits, state = self.decode_one(prev, feats[:, t], zin[:, t], state)
            if max_leap is not None:
                logits = logits.masked_fill(far[last], float("-inf"))
            prev = sample_logits(logits, temperature, gen, bias)
            last = torch.where(prev >= 2, prev, last)
            out[:, t] = prev
        return out

    def forward(self, tokens: torch.Tensor, feats: torch.Tensor, generator=None, input_dropout: float = 0.0):
        """Teacher-forced pass: returns logits for every window step, mu, sigma."""
        mu, sigma = self.encode(tokens, feats)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device) if generator else torch.randn_like(mu)
        z = mu + sigma * eps
        prev = torch.cat([torch.full_like(tokens[:, :1], tk.REST), tokens[:, :-1]], dim=1)
        logits, _ = self.decode_step(prev, feats, z, self.initial_state(z), input_dropout)
        return logits, mu, sigma


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between two codes: stays at the prior's typical norm, unlike a line."""
    omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
    if omega.abs() < 1e-6:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma) || N(0, 1)) per example, in nats (summed over z)."""
    return 0.5 * (mu.pow(2) + sigma.pow(2) - 1 - 2 * torch.log(sigma)).sum(-1)
