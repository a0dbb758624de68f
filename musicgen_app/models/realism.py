"""Realism critic: how much a decoded melody looks like a real corpus window, for choosing among
more melodies than asked (discriminator rejection sampling, Azadi et al. 2019).

A small classifier (standardised hand features, then a logistic layer or one hidden layer) is
trained by ``python -m musicgen_app.training.train_critic`` on real training windows against the
corpus bank's own decoded samples. Its logit estimates log p_real(x) / p_bank(x); Generate decodes
more melodies than asked and keeps ``n`` of them by the Gumbel-top-k trick on ``gamma`` times that
logit (:func:`choose`): gamma 1 draws ``n`` without replacement with weights p_real / p_bank (the
density ratio that turns the bank's samples into real-looking ones), a larger gamma keeps the
highest-scored more strictly, 0 keeps a random ``n``.

The features (:func:`realism_features`) describe one melody of whole bars per note, per bar or as
shares, so that melodies of any length are scored alike.
"""

from __future__ import annotations

import functools
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..melody import Melody, meter_name
from ..paths import CHECKPOINTS
from .checkpoints import KINDS, load_checkpoint

DURATIONS = (1, 2, 3, 4, 6, 8, 12, 16)  # note-length bins, in steps (a longer note falls in the last)
SLOTS = 16  # onset positions in a bar, a 4/4 bar's sixteenths
FEATURE_NAMES = (
    ["notes_per_bar", "range_octaves", "in_scale", "minor", "rest_share", "mean_abs_interval", "up_share",
     "repeated_notes", "repeated_bars", "pc_entropy", "register_mean", "register_low", "register_high"]
    + [f"onset_{i}" for i in range(SLOTS)]
    + [f"duration_le_{d}" for d in DURATIONS] + ["duration_longer"]
    + [f"interval_{i}" for i in range(13)] + ["interval_over_octave"]
    + [f"degree_{i}" for i in range(12)]
)


def realism_features(m: Melody) -> np.ndarray:
    """One melody of whole bars (with its estimated key) -> (len(FEATURE_NAMES),) float32: notes per bar,
    range (octaves), share of notes in the key's scale, minor, share of silent steps, mean absolute
    interval (semitones), share of rising intervals, of repeated pitches, bars that repeat an earlier
    bar (share of the bars after the first), pitch-class entropy (bits), mean / lowest / highest pitch
    (octaves above MIDI 0); onsets per bar at each of SLOTS positions in the bar; shares of note
    lengths (DURATIONS), of absolute intervals 0-12 and over an octave, and of scale degrees from
    the tonic."""
    return realism_features_many([m])[0]


def realism_features_many(melodies: list[Melody]) -> np.ndarray:
    """realism_features of each melody -> (len(melodies), len(FEATURE_NAMES)) float32, in one pass over
    all their notes."""
    M, F = len(melodies), len(FEATURE_NAMES)
    count = np.fromiter((len(m.notes) for m in melodies), np.int64, M)
    N = int(count.sum())
    mid = np.repeat(np.arange(M), count)
    flat = [x for m in melodies for x in m.notes]
    pitch = np.fromiter((x.pitch for x in flat), np.int64, N)
    start = np.fromiter((x.start for x in flat), np.int64, N)
    dur = np.fromiter((x.duration for x in flat), np.int64, N)
    B = np.fromiter((m.bar_steps for m in melodies), np.int64, M)
    total = np.fromiter((m.total_steps for m in melodies), np.float64, M)
    bars = np.maximum(total / B, 1e-9)
    tonic = np.fromiter((m.key.tonic for m in melodies), np.int64, M)
    scale = np.zeros((M, 12), bool)
    for i, m in enumerate(melodies):
        scale[i, list(m.key.scale_pitch_classes())] = True
    n = np.maximum(count, 1).astype(np.float64)
    f = np.zeros((M, F))
    f[:, 3] = [m.key.mode == "minor" for m in melodies]
    degree = (pitch - tonic[mid]) % 12
    pcs = np.bincount(mid * 12 + degree, minlength=M * 12).reshape(M, 12) / n[:, None]
    f[:, 0] = count / bars
    f[:, 2] = np.bincount(mid, scale[mid, pitch % 12], M) / n
    f[:, 4] = 1 - np.bincount(mid, dur, M) / total
    inner = np.ones(N, bool)  # the notes with a note before them in their melody
    inner[np.cumsum(count)[count > 0] - count[count > 0]] = False
    iv = (pitch - np.roll(pitch, 1))[inner]
    imid, ni = mid[inner], np.maximum(count - 1, 1).astype(np.float64)
    f[:, 5] = np.bincount(imid, np.abs(iv), M) / ni
    f[:, 6] = np.bincount(imid, iv > 0, M) / ni
    f[:, 7] = np.bincount(imid, iv == 0, M) / ni
    bar_of, pos = start // B[mid], start % B[mid]
    notes = list(zip(mid.tolist(), bar_of.tolist(), pos.tolist(), pitch.tolist(), dur.tolist()))
    content: dict = {}
    for i, b, s, p, d in notes:
        content.setdefault((i, b), []).append((s, p, d))
    for i in range(M):
        seen, repeated, whole = set(), 0, int(np.ceil(bars[i]))
        for b in range(whole):
            key = tuple(content.get((i, b), ()))
            repeated += bool(key) and key in seen
            seen.add(key)
        f[i, 8] = repeated / max(whole - 1, 1)
    logp = np.log2(np.where(pcs > 0, pcs, 1))
    f[:, 9] = -(pcs * logp).sum(1)
    f[:, 10] = np.bincount(mid, pitch, M) / n / 12
    low, high, has = np.zeros(M, np.int64), np.zeros(M, np.int64), count > 0
    if has.any():  # each melody's notes are one run of the flat arrays
        low[has] = np.minimum.reduceat(pitch, (np.cumsum(count) - count)[has])
        high[has] = np.maximum.reduceat(pitch, (np.cumsum(count) - count)[has])
    f[:, 1] = (high - low) / 12
    f[:, 11], f[:, 12] = low / 12, high / 12
    o = 13
    f[:, o:o + SLOTS] = np.bincount(mid * SLOTS + pos * SLOTS // B[mid], minlength=M * SLOTS).reshape(M, SLOTS) \
        / bars[:, None]
    o += SLOTS
    D = len(DURATIONS) + 1
    f[:, o:o + D] = np.bincount(mid * D + np.searchsorted(DURATIONS, dur), minlength=M * D).reshape(M, D) / n[:, None]
    o += D
    f[:, o:o + 14] = np.bincount(imid * 14 + np.minimum(np.abs(iv), 13), minlength=M * 14).reshape(M, 14) \
        / ni[:, None]
    o += 14
    f[:, o:o + 12] = pcs
    f[~has, 4], f[~has, 10:13] = 1.0, 5.0
    return f.astype(np.float32)


@dataclass(frozen=True)
class RealismCriticConfig:
    features: int = len(FEATURE_NAMES)
    hidden: int = 0  # units of the hidden layer; 0: logistic regression on the features
    meters: tuple[str, ...] = ("4/4",)  # time signatures it was trained on, as "n/d"
    gamma: float = 3.0  # sharpness of the choice (see the module docstring); train_critic.py records it
    oversample: float = 1.5  # melodies decoded per melody asked (free requests)

    def __post_init__(self):
        object.__setattr__(self, "meters", tuple(str(m) for m in self.meters))
        if self.features != len(FEATURE_NAMES):
            raise CheckpointError(f"RealismCriticConfig.features is {self.features}, but this code computes "
                                  f"{len(FEATURE_NAMES)} features; retrain the critic.")
        if self.hidden < 0 or self.gamma < 0 or not 1 <= self.oversample <= 8 or not self.meters:
            raise CheckpointError(f"RealismCriticConfig needs hidden >= 0, gamma >= 0, oversample in [1, 8] and "
                                  f"a meter, got {self.hidden}, {self.gamma}, {self.oversample}, {self.meters}.")

    def to_dict(self) -> dict:
        return asdict(self)


class RealismCritic(nn.Module):
    """Standardised realism_features -> one logit (log p_real / p_bank). See the module docstring."""

    kind = "realism_critic"

    def __init__(self, config: RealismCriticConfig):
        super().__init__()
        self.config = c = config
        self.register_buffer("mean", torch.zeros(c.features))
        self.register_buffer("std", torch.ones(c.features))
        width = c.hidden or c.features
        self.hidden = nn.Sequential(nn.Linear(c.features, c.hidden), nn.Tanh()) if c.hidden else nn.Identity()
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden((x - self.mean) / self.std)).squeeze(-1)

    def knows(self, time_signature: tuple[int, int]) -> bool:
        return meter_name(time_signature) in self.config.meters

    @torch.no_grad()
    def scores(self, melodies: list[Melody]) -> np.ndarray:
        """Each melody's logit: > 0 looks more like a real window than like the bank's samples."""
        x = torch.from_numpy(realism_features_many(melodies))
        return self(x).numpy().astype(np.float64)

    def drawn(self, n: int) -> int:
        """Melodies to decode for ``n`` asked with free attributes: ``config.oversample`` times as many
        (a shaped request decodes service.decoding.OVERSAMPLE times as many in any case)."""
        return int(np.ceil(self.config.oversample * n))

    def choose(self, melodies: list[Melody], n: int, gen: torch.Generator, *after: np.ndarray) -> np.ndarray:
        """Rows of ``n`` of ``melodies``, in their drawn order: a draw without replacement weighted by
        exp(gamma * logit) (Gumbel-top-k; randomness only from ``gen``), after the orderings ``after``
        (per melody, lower first: e.g. attributes missed), the first the strongest."""
        if n >= len(melodies):
            return np.arange(len(melodies))
        u = torch.rand(len(melodies), generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12).numpy()
        key = self.config.gamma * self.scores(melodies) - np.log(-np.log(u))
        return np.sort(np.lexsort((-key, *reversed(after)))[:n])


def load_critic(path: str | Path) -> tuple[RealismCritic, dict]:
    """The critic saved at ``path`` (by checkpoints.save_checkpoint) and its metadata; strict, never
    with pickle (safetensors)."""
    critic, meta = load_checkpoint(path, kind=RealismCritic.kind)
    for p in critic.parameters():
        p.requires_grad_(False)
    return critic, meta


KINDS.setdefault(RealismCritic.kind, (RealismCritic, RealismCriticConfig))  # what load_checkpoint builds


CRITIC_FILE = "realism_critic.safetensors"
ENV_PATH = "MUSICGEN_REALISM_CRITIC"  # another critic file to use instead, or "none" for no choice


@functools.cache
def _loaded(path: str) -> tuple[RealismCritic, dict] | None:
    return load_critic(path) if Path(path).is_file() else None


def critic_for(bank_info: dict | None, time_signature: tuple[int, int],
               directory: str | Path = CHECKPOINTS) -> RealismCritic | None:
    """The critic in ``directory`` (or at $MUSICGEN_REALISM_CRITIC) that was trained on the samples
    of the corpus bank whose checkpoint metadata is ``bank_info``, if it knows ``time_signature``;
    None without a bank, without the file, or for a meter it was not trained on. Loaded once per
    process (read-only afterwards). A critic made for another bank raises CheckpointError."""
    if not bank_info:
        return None
    path = os.environ.get(ENV_PATH) or str(Path(directory) / CRITIC_FILE)
    found = None if path.lower() == "none" else _loaded(path)
    if found is None:
        return None
    critic, meta = found
    if meta.get("code_bank_weights_sha256") != bank_info.get("weights_sha256"):
        raise CheckpointError(f"{path} was trained on the samples of another corpus bank; retrain it with "
                              f"python -m musicgen_app.training.train_critic, remove it, or set {ENV_PATH}=none "
                              "(Generate without the choice).")
    return critic if critic.knows(time_signature) else None
