"""Corpus-neighbourhood sampler: Generate's codes drawn near the codes of real training windows.

The VAE decodes a code into a corpus-like melody only close to where real windows' codes lie
(a fraction of a standard deviation per dimension); a Gaussian over z, and the latent GAN, put most of
their samples between those places (``python -m musicgen_app.training.train_gan --evaluate`` and
``python -m musicgen_app.training.train_bank --evaluate`` measure them). This sampler stays there by
construction: it keeps a bank of training windows, picks one, takes its posterior mean under the
VAE, moves it ``config.mix`` of the way towards the code of one of its ``config.neighbours`` nearest
windows from other tunes of the same meter (``neighbours``, found by code distance when the bank
is built), and adds Gaussian noise of ``config.noise`` standard deviations per dimension (each
dimension's sd over the training codes, ``code_std``). The move and the noise are what make the
melodies new; musicgen_app/training/train_bank.py chooses both on the valid split, trading realism
against copying.
Between two near codes of different tunes the decoder still writes corpus-like melodies that copy
neither, where the same distance in a random direction leaves the codes' manifold sooner.

The bank holds the windows' tokens, not their codes: one byte a step where a float16 code takes
two bytes a dimension, so more windows fit in the same file, and a window can be transposed before
it is encoded (the VAE was trained on transposed windows). A request encodes only the few windows
it picks, in one encoder call. The codes depend on the VAE, so the checkpoint records the VAE's
weight digest and the service refuses a bank made for another VAE.

Attribute controls (latent constraints by selection, after Engel, Hoffman, Roberts 2017): each
window's notes per bar, pitch range, estimated key and whether its last note is the key's tonic are
stored beside it, computed from its tokens as training.stats.melody_stats computes them on decoded
melodies. A request keeps the windows within ``density_tolerance`` / ``range_tolerance`` of what it
asks, and a window's partner is one of its neighbours that meets them too (the window alone, with
noise, when none does); a key transposes each kept window of the asked mode, and its partner, to
the asked tonic. A request no window meets is refused with the value to change.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .. import tokens as tk
from ..errors import CheckpointError, MelodyError, RequestError
from ..melody import Key, Melody, estimate_key, meter_name
from ..settings import parse_time_signature

MODES = ("major", "minor")
# numeric attributes: their name in a sentence, and their value's unit
NUMBERS = {"notes_per_bar": ("notes per bar", " notes per bar"), "range_semitones": ("the range", " semitones")}


@dataclass(frozen=True)
class CodeBankConfig:
    size: int = 1  # windows in the bank
    window: int = 64  # steps per window: the VAE's
    z_dim: int = 128  # the VAE's
    meters: tuple[str, ...] = ("4/4",)  # time signatures of the windows, as "n/d"
    noise: float = 0.5  # sd of the noise added to a window's code, in units of each dimension's code sd
    mix: float = 0.0  # how far a window's code is moved towards its partner's (0: not at all, 0.5: midway)
    neighbours: int = 4  # nearest windows of other tunes kept per window, the partners it can have
    density_tolerance: float = 0.5  # notes per bar a kept window may differ from the asked density
    range_tolerance: int = 1  # semitones a kept window's range may differ from the asked range
    pitch_class_bias: float = 0.0  # weight of the source windows' pitch-class shares in decoding (decoding_bias)

    def __post_init__(self):
        object.__setattr__(self, "meters", tuple(str(m) for m in self.meters))  # JSON gives a list back
        for name in ("size", "window", "z_dim", "neighbours"):
            if getattr(self, name) < 1:
                raise CheckpointError(f"CodeBankConfig.{name} must be positive, got {getattr(self, name)}.")
        if not self.meters or len(set(self.meters)) != len(self.meters):
            raise CheckpointError(f"CodeBankConfig.meters must be distinct time signatures, got {self.meters}.")
        if not 0 <= self.noise <= 4 or not 0 <= self.mix <= 1 or self.density_tolerance < 0 or \
                self.range_tolerance < 0 or not 0 <= self.pitch_class_bias <= 8:
            raise CheckpointError(
                f"CodeBankConfig.noise must be in [0, 4], mix in [0, 1], pitch_class_bias in [0, 8] and the "
                f"tolerances >= 0, got noise {self.noise}, mix {self.mix}, pitch_class_bias "
                f"{self.pitch_class_bias}, tolerances {self.density_tolerance} and {self.range_tolerance}."
            )

    def to_dict(self) -> dict:
        return asdict(self)


# A pseudo-count per pitch class: a class the source windows never play keeps a small chance.
PITCH_CLASS_PRIOR = 0.5
_TOKEN_PITCH_CLASS = torch.tensor([0, 0] + [tk.token_to_pitch(t) % 12 for t in range(2, tk.NUM_CLASSES)])


def pitch_class_logits(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Note counts per pitch class (n, 12) -> (n, C) logits: ``beta`` times the log share of each
    token's pitch class (with PITCH_CLASS_PRIOR), the most used class at 0; 0 for hold and rest."""
    share = (counts + PITCH_CLASS_PRIOR) / (counts + PITCH_CLASS_PRIOR).sum(1, keepdim=True)
    logp = beta * (share.log() - share.log().amax(1, keepdim=True))
    out = torch.zeros(len(counts), tk.NUM_CLASSES)
    out[:, 2:] = logp[:, _TOKEN_PITCH_CLASS[2:]]
    return out


def _pitch_class_counts(rows: torch.Tensor) -> torch.Tensor:
    """Token windows (n, W) -> (n, 12) note onsets per pitch class."""
    notes = (rows >= 2).float()
    return torch.zeros(len(rows), 12).scatter_add_(1, _TOKEN_PITCH_CLASS[rows], notes)


@dataclass(frozen=True)
class Attributes:
    """What a Generate request asks of its melodies; None (False) = free."""

    notes_per_bar: float | None = None
    range_semitones: int | None = None
    mode: str | None = None  # "major" or "minor"
    tonic: int | None = None  # pitch class 0-11 (0 = C); needs a mode
    ends_on_tonic: bool = False

    def __post_init__(self):
        if self.mode is not None and self.mode not in MODES:
            raise RequestError(f"Mode {str(self.mode)[:20]!r} is not one of: {', '.join(MODES)}.")
        if self.tonic is not None and (self.mode is None or self.tonic not in range(12)):
            raise RequestError(f"Tonic {self.tonic!r} needs a mode and must be a pitch class 0-11 (0 = C).")

    @classmethod
    def from_key(cls, key: str, **numbers) -> Attributes:
        """``key``: "any", "major", "minor" or a key name such as "D minor"."""
        text = str(key).strip()
        if text.lower() in ("", "any"):
            return cls(**numbers)
        if text.lower() in MODES:
            return cls(mode=text.lower(), **numbers)
        try:
            k = Key.parse(text)
        except MelodyError:
            raise RequestError(f"Key {text[:30]!r} is not a key; choose any, major, minor, or a key such as "
                               "'D minor' or 'Eb major'.") from None
        return cls(mode=k.mode, tonic=k.tonic, **numbers)

    @property
    def free(self) -> bool:
        return self == Attributes()

    @property
    def key(self) -> Key | None:
        return None if self.tonic is None else Key(self.tonic, self.mode)


def window_attributes(tokens: np.ndarray, time_signature: tuple[int, int]) -> dict:
    """Attributes of one window's whole bars: notes per bar, range (semitones), estimated key, and
    whether the last note is that key's tonic."""
    probe = Melody(notes=(), time_signature=time_signature)
    return melody_attributes(tk.decode(tokens[: tk.whole_bars_steps(len(tokens), probe.bar_steps)], probe))


def melody_attributes(m: Melody, key: Key | None = None) -> dict:
    """window_attributes of a melody of whole bars; ``key``: its estimated key, if known."""
    pitches = [n.pitch for n in m.notes] or [0]
    key = key or estimate_key(m.notes)
    return {
        "notes_per_bar": len(m.notes) * m.bar_steps / m.total_steps,
        "range_semitones": max(pitches) - min(pitches),
        "tonic": key.tonic,
        "minor": key.mode == "minor",
        "ends_on_tonic": bool(m.notes) and m.notes[-1].pitch % 12 == key.tonic,
    }


@dataclass(frozen=True)
class Picked:
    """Windows chosen for one request: bank rows, their partners' rows (a row itself when it has no
    partner), the semitones each is moved by, and how many bank windows met the request (a small
    number means the melodies share sources)."""

    index: torch.Tensor
    partner: torch.Tensor
    shift: torch.Tensor
    partner_shift: torch.Tensor
    matches: int

    def take(self, rows) -> Picked:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Picked(self.index[rows], self.partner[rows], self.shift[rows], self.partner_shift[rows], self.matches)


class CodeBank(nn.Module):
    """Training windows with their attributes; see the module docstring. Buffers only, no weights."""

    kind = "code_bank"

    def __init__(self, config: CodeBankConfig):
        super().__init__()
        self.config = c = config
        self.register_buffer("tokens", torch.zeros(c.size, c.window, dtype=torch.uint8))
        self.register_buffer("meter", torch.zeros(c.size, dtype=torch.uint8))  # index into config.meters
        self.register_buffer("notes_per_bar", torch.zeros(c.size))
        self.register_buffer("range_semitones", torch.zeros(c.size, dtype=torch.uint8))
        self.register_buffer("tonic", torch.zeros(c.size, dtype=torch.uint8))
        self.register_buffer("minor", torch.zeros(c.size, dtype=torch.uint8))
        self.register_buffer("ends_on_tonic", torch.zeros(c.size, dtype=torch.uint8))
        self.register_buffer("code_std", torch.ones(c.z_dim))  # per dimension, over the training codes
        self.register_buffer("neighbours", torch.arange(c.size, dtype=torch.int32)[:, None].repeat(1, c.neighbours))
        # where each window is in the corpus: its tune, and the bar it starts on (after any pickup),
        # so that consecutive windows of one tune can be chained into 8- and 16-bar melodies
        self.register_buffer("tune", torch.arange(c.size, dtype=torch.int32))
        self.register_buffer("bar", torch.zeros(c.size, dtype=torch.int32))
        self._chains: dict[tuple, object] = {}  # chains, phrase_windows and copy indexes, made when first asked
        self._chains_lock = threading.Lock()

    @classmethod
    def from_windows(cls, tokens: np.ndarray, meters: list[str], code_std: torch.Tensor,
                     tune: np.ndarray | None = None, bar: np.ndarray | None = None, **config) -> CodeBank:
        """A bank of ``tokens`` (N, window) windows of the time signatures ``meters`` (N names "n/d"),
        from tunes ``tune`` (N,), starting on their bars ``bar`` (N,) (default: each its own tune)."""
        names = tuple(sorted(set(meters), key=lambda m: (-meters.count(m), m)))
        bank = cls(CodeBankConfig(size=len(tokens), window=tokens.shape[1], z_dim=len(code_std), meters=names,
                                  **config))
        with torch.no_grad():
            bank.tokens.copy_(torch.from_numpy(np.asarray(tokens, np.uint8)))
            bank.meter.copy_(torch.tensor([names.index(m) for m in meters]))
            bank.set_attributes()
            bank.code_std.copy_(code_std)
            bank.set_positions(np.arange(len(tokens)) if tune is None else tune,
                               np.zeros(len(tokens)) if bar is None else bar)
        return bank

    @torch.no_grad()
    def set_attributes(self) -> int:
        """Each window's attributes (window_attributes: notes per bar, range, estimated key, ending on
        its tonic) found from its tokens; -> how many windows' keys changed (after estimate_key did)."""
        before = torch.stack([self.tonic, self.minor])
        meters = [parse_time_signature(m) for m in self.config.meters]
        attrs = [window_attributes(row, meters[m]) for row, m in zip(self.tokens.numpy(), self.meter.tolist())]
        for name in ("notes_per_bar", "range_semitones", "tonic", "minor", "ends_on_tonic"):
            getattr(self, name).copy_(torch.tensor([a[name] for a in attrs]))
        return int((torch.stack([self.tonic, self.minor]) != before).any(0).sum())

    @torch.no_grad()
    def set_positions(self, tune: np.ndarray, bar: np.ndarray) -> None:
        """Which tune each window is from (N,) and the bar it starts on (N,)."""
        self.tune.copy_(torch.as_tensor(np.asarray(tune), dtype=torch.int32))
        self.bar.copy_(torch.as_tensor(np.asarray(bar), dtype=torch.int32))
        self._chains.clear()

    @torch.no_grad()
    def set_neighbours(self, codes: torch.Tensor, melody: torch.Tensor, block: int = 1024) -> None:
        """Each window's ``config.neighbours`` nearest windows (standardised code distance) among the
        windows of its meter from other melodies; ``codes`` (N, z_dim) are the windows' posterior
        means, ``melody`` (N,) says which tune each window is from. Too few: the window itself."""
        x = codes / self.code_std
        K = self.config.neighbours
        for m in range(len(self.config.meters)):
            rows = torch.nonzero(self.meter == m).squeeze(1)
            for s in range(0, len(rows), block):
                mine = rows[s:s + block]
                d = torch.cdist(x[mine], x[rows])
                d[melody[mine][:, None] == melody[rows][None, :]] = float("inf")
                dist, j = d.topk(min(K, len(rows)), largest=False)
                near = torch.where(dist.isfinite(), rows[j], mine[:, None])
                self.neighbours[mine] = torch.cat([near, mine[:, None].expand(-1, K - near.shape[1])], 1).int()

    def knows(self, time_signature: tuple[int, int]) -> bool:
        return meter_name(time_signature) in self.config.meters

    def matching(self, time_signature: tuple[int, int], attrs: Attributes) -> torch.Tensor:
        """Indices of the windows of ``time_signature`` that meet ``attrs``; RequestError when none do,
        naming the value to change."""
        name = meter_name(time_signature)
        if name not in self.config.meters:
            raise RequestError(f"The corpus bank has no {name} windows; it has {', '.join(self.config.meters)}.")
        masks = self._masks(self.meter == self.config.meters.index(name), attrs)
        keep = torch.stack(list(masks.values())).all(0) if masks else self.meter == self.config.meters.index(name)
        if not keep.any():
            raise RequestError(self._refusal(name, self.meter == self.config.meters.index(name), attrs, masks))
        return torch.nonzero(keep).squeeze(1)

    def _masks(self, meter: torch.Tensor, a: Attributes) -> dict[str, torch.Tensor]:
        c, out = self.config, {}
        if a.notes_per_bar is not None:
            out["notes_per_bar"] = meter & ((self.notes_per_bar - a.notes_per_bar).abs() <= c.density_tolerance + 1e-6)
        if a.range_semitones is not None:
            out["range_semitones"] = meter & ((self.range_semitones.int() - a.range_semitones).abs()
                                              <= c.range_tolerance)
        if a.mode is not None:
            out["mode"] = meter & (self.minor == (a.mode == "minor"))
        if a.ends_on_tonic:
            out["ends_on_tonic"] = meter & (self.ends_on_tonic == 1)
        return out

    def _refusal(self, name: str, meter: torch.Tensor, a: Attributes, masks: dict) -> str:
        """Which asked value to change: one that no window of the meter has alone, else the nearest
        values that windows meeting the other requests have."""
        words = {"notes_per_bar": f"{a.notes_per_bar:g} notes per bar", "range_semitones":
                 f"a range of {a.range_semitones} semitones", "mode": f"{a.mode} mode",
                 "ends_on_tonic": "an ending on the tonic"}
        for k, m in masks.items():
            if not m.any():
                fix = f"ask for {self._nearest(k, a, meter)}{NUMBERS[k][1]} (the nearest there are)" \
                    if k in NUMBERS else "leave it free"
                return f"No {name} melody in the corpus bank has {words[k]}; {fix}."
        hints = []
        for k in NUMBERS:
            others = [m for j, m in masks.items() if j != k]
            if k in masks and torch.stack(others).all(0).any():
                hints.append(f"{NUMBERS[k][0]} to {self._nearest(k, a, torch.stack(others).all(0))}{NUMBERS[k][1]}")
        fix = "change " + ", or ".join(hints) + " (the nearest there are with the rest of the request)" if hints \
            else "leave one of them free"
        return f"No {name} melody in the corpus bank has {' and '.join(words[k] for k in masks)} together; {fix}."

    def _nearest(self, attribute: str, a: Attributes, where: torch.Tensor) -> str:
        """The values of ``attribute`` nearest the asked one among the windows ``where``, below and above."""
        values = getattr(self, attribute)[where].float().unique()
        asked = getattr(a, attribute)
        below, above = values[values < asked], values[values > asked]
        near = [f"{v.item():g}" for v in (below[-1:], above[:1]) if len(v)]
        return " or ".join(near)

    def place(self) -> torch.Tensor:
        """(size,) a key that sorts the windows by tune, then by starting bar."""
        return self.tune.long() * (1 << 24) + self.bar.long()

    def phrase_windows(self, hop: int) -> torch.Tensor:
        """(size,) True for windows that start on a phrase line (a bar that is a multiple of ``hop``)
        or end their tune: whole phrases, as a tune plays them."""
        with self._chains_lock:
            if ("phrases", hop) not in self._chains:
                last = torch.ones(self.config.size, dtype=torch.bool)
                order = torch.argsort(self.place())
                same = self.tune[order][1:] == self.tune[order][:-1]
                last[order[:-1][same]] = False
                self._chains[("phrases", hop)] = (self.bar % hop == 0) | last
            return self._chains[("phrases", hop)]

    def pick(self, n: int, gen: torch.Generator, time_signature: tuple[int, int], attrs: Attributes,
             hop: int | None = None) -> Picked:
        """``n`` windows meeting ``attrs``, distinct while there are enough and preferring those with a
        partner that meets them too, each with a random such partner and the transpositions to the
        asked tonic (0 when none is asked); with ``hop``, windows of whole phrases (phrase_windows)
        where any meet ``attrs``. Randomness only from ``gen``."""
        if n < 1:
            raise RequestError(f"Ask for at least one sample, not {n}.")
        rows = self.matching(time_signature, attrs)
        ok = torch.zeros(self.config.size, dtype=torch.bool)
        ok[rows] = True
        if hop is not None and self.phrase_windows(hop)[rows].any():
            rows = rows[self.phrase_windows(hop)[rows]]
        paired = ok[self.neighbours[rows].long()].any(1)
        pool = rows[paired] if paired.any() else rows
        order = _draw(len(pool), n, gen)
        index = pool[order]
        near = self.neighbours[index].long()
        fits = ok[near]
        choice = torch.multinomial((fits | ~fits.any(1, keepdim=True)).float(), 1, generator=gen).squeeze(1)
        partner = torch.where(fits.any(1), near[torch.arange(n), choice], index)
        return Picked(index, partner, self.shift_to(index, attrs), self.shift_to(partner, attrs), len(rows))

    def chains(self, time_signature: tuple[int, int], length: int, hop: int) -> torch.Tensor:
        """(M, length) bank rows of ``time_signature``: windows of one tune ``hop`` bars apart, the
        first starting on a bar that is a multiple of ``hop`` (a phrase line in most tunes), so
        that their last ``hop`` bars follow one another as the tune has them."""
        m = self.config.meters.index(meter_name(time_signature))
        with self._chains_lock:
            if (m, length, hop) not in self._chains:
                rows = torch.nonzero(self.meter == m).squeeze(1)
                place = self.place()[rows]
                order = torch.argsort(place)
                place, rows = place[order], rows[order]
                first = torch.nonzero(self.bar[rows] % hop == 0).squeeze(1)
                cols, found = [], torch.ones(len(first), dtype=torch.bool)
                for j in range(length):
                    at = torch.searchsorted(place, place[first] + j * hop).clamp(max=len(place) - 1)
                    found &= place[at] == place[first] + j * hop
                    cols.append(rows[at])
                self._chains[(m, length, hop)] = torch.stack(cols, 1)[found]
            return self._chains[(m, length, hop)]

    def pick_chains(self, n: int, gen: torch.Generator, time_signature: tuple[int, int], attrs: Attributes,
                    length: int, hop: int) -> Picked:
        """``n`` chains of ``length`` windows (see chains) meeting ``attrs`` as a whole: notes per bar
        on average, the widest window's range, and mode and ending those of the last window, whose
        key moves the whole chain to an asked tonic. Each window gets a random partner among its
        neighbours. The Picked rows are chain after chain, ``length`` rows each."""
        if n < 1:
            raise RequestError(f"Ask for at least one sample, not {n}.")
        chains = self.chains(time_signature, length, hop)
        c, last = self.config, chains[:, -1] if len(chains) else chains.new_zeros(0)
        ok = torch.ones(len(chains), dtype=torch.bool)
        if attrs.notes_per_bar is not None:
            ok &= (self.notes_per_bar[chains].mean(1) - attrs.notes_per_bar).abs() <= c.density_tolerance + 1e-6
        if attrs.range_semitones is not None:
            ok &= (self.range_semitones[chains].int().amax(1) - attrs.range_semitones).abs() <= c.range_tolerance
        if attrs.mode is not None:
            ok &= self.minor[last] == (attrs.mode == "minor")
        if attrs.ends_on_tonic:
            ok &= self.ends_on_tonic[last] == 1
        pool = chains[ok]
        if not len(pool):
            bars = length * hop
            raise RequestError(f"No {meter_name(time_signature)} tune in the corpus bank has {bars} bars "
                               f"{'meeting the shape asked' if not attrs.free else 'to follow'}; ask for fewer "
                               "bars" + (", or leave notes per bar, range, key and ending free." if not attrs.free
                                         else "."))
        order = _draw(len(pool), n, gen)
        index = pool[order].reshape(-1)
        near = self.neighbours[index].long()
        partner = near[torch.arange(len(index)), torch.randint(near.shape[1], (len(index),), generator=gen)]
        shift = self.shift_to(pool[order][:, -1], attrs).repeat_interleave(length)
        return Picked(index, partner, shift, self.shift_to(partner, attrs), len(pool))

    def misses(self, melodies: list[Melody], attrs: Attributes) -> np.ndarray:
        """How many of the asked attributes each decoded melody (with its estimated key) misses, by
        the tolerances windows are picked with. Decoding does not keep every attribute of the
        window a code came from, so Generate decodes a few more melodies than asked and keeps
        those that miss least (select)."""
        c, out = self.config, np.zeros(len(melodies), np.int64)
        for i, m in enumerate(melodies):
            got = melody_attributes(m, m.key)
            out[i] = sum((
                attrs.notes_per_bar is not None and abs(got["notes_per_bar"] - attrs.notes_per_bar)
                > c.density_tolerance + 1e-6,
                attrs.range_semitones is not None and abs(got["range_semitones"] - attrs.range_semitones)
                > c.range_tolerance,
                attrs.mode is not None and got["minor"] != (attrs.mode == "minor"),
                attrs.tonic is not None and got["tonic"] != attrs.tonic,
                attrs.ends_on_tonic and not got["ends_on_tonic"],
            ))
        return out

    def select(self, melodies: list[Melody], attrs: Attributes, n: int) -> np.ndarray:
        """Rows of the ``n`` melodies that miss fewest asked attributes, in their drawn order among equals."""
        return np.sort(np.argsort(self.misses(melodies, attrs), kind="stable")[:n])

    def copied(self, melodies: list[Melody]) -> np.ndarray:
        """(len(melodies),) True for each melody (whole bars from a bar line) whose tokens, as a clip of
        their own, are those of as many bars of a bank tune from one of its bar lines: training bars
        played back. The bank's windows overlap, so they hold their tunes' bars (all but bars no
        window covers); the index of each length is made when first asked."""
        out = np.zeros(len(melodies), bool)
        for i, m in enumerate(melodies):
            if self.knows(m.time_signature):
                digests = self._bar_windows(meter_name(m.time_signature), m.total_steps, m.bar_steps)
                out[i] = tk.window_digest(tk.clip_window(m)) in digests
        return out

    def _bar_windows(self, meter: str, steps: int, bar_steps: int) -> set[bytes]:
        """Digests of every ``steps``-step stretch of the bank's tunes of ``meter`` from a bar line, as
        tk.vae_window re-encodes a clip (a leading hold becomes a rest)."""
        with self._chains_lock:
            key = ("copies", meter, steps)
            if key not in self._chains:
                rows = torch.nonzero(self.meter == self.config.meters.index(meter)).squeeze(1)
                rows = rows[torch.argsort(self.place()[rows])].numpy()
                tune, bar, tokens = self.tune.numpy()[rows], self.bar.numpy()[rows], self.tokens.numpy()[rows]
                digests, W = set(), self.config.window
                for first in np.nonzero(np.r_[True, tune[1:] != tune[:-1]])[0]:
                    mine = np.arange(first, first + int((tune[first:] == tune[first]).argmin() or len(tune) - first))
                    timeline = np.full(int(bar[mine].max()) * bar_steps + W, -1, np.int64)
                    for j in mine:  # a window's first step may be a re-encoded hold: the other windows' say
                        at = int(bar[j]) * bar_steps
                        timeline[at + 1:at + W] = tokens[j, 1:]
                        if timeline[at] < 0:
                            timeline[at] = tokens[j, 0]
                    for at in range(0, len(timeline) - steps + 1, bar_steps):
                        seg = timeline[at:at + steps]
                        if (seg >= 0).all():
                            digests.add(tk.window_digest(tk.vae_window(seg, 0, steps, steps)))
                self._chains[key] = digests
            return self._chains[key]

    def shift_to(self, index: torch.Tensor, attrs: Attributes) -> torch.Tensor:
        """Semitones that move windows ``index`` to the asked tonic, the nearer way round (-6..+5)."""
        if attrs.tonic is None:
            return torch.zeros(len(index), dtype=torch.long)
        return (attrs.tonic - self.tonic[index].long() + 6) % 12 - 6

    def windows(self, index: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Windows ``index`` as tokens (n, window), int64, moved by ``shift`` semitones; a window that
        would leave the token range is moved an octave the other way."""
        rows = self.tokens[index].long()
        notes = rows >= 2
        high = torch.where(notes, rows, 0).amax(1)
        low = torch.where(notes, rows, tk.NUM_CLASSES).amin(1)
        shift = torch.where(high + shift > tk.NUM_CLASSES - 1, shift - 12, shift)
        shift = torch.where(low + shift < 2, shift + 12, shift)
        return torch.where(notes, rows + shift[:, None], rows)

    @torch.no_grad()
    def codes(self, vae, picked: Picked, time_signature: tuple[int, int], gen: torch.Generator,
              noise: float | None = None, mix: float | None = None) -> torch.Tensor:
        """The picked windows' posterior means under ``vae``, moved towards their partners' and given
        the bank's noise (or ``noise`` / ``mix``) -> z (n, z_dim)."""
        n = len(picked.index)
        t = self.config.mix if mix is None else mix
        scale = self.config.noise if noise is None else noise
        rows = self.windows(picked.index, picked.shift)
        if t:
            rows = torch.cat([rows, self.windows(picked.partner, picked.partner_shift)])
        feats = torch.from_numpy(tk.metric_features(self.config.window, time_signature))
        mu, _ = vae.encode(rows, feats.expand(len(rows), -1, -1))
        z = torch.lerp(mu[:n], mu[n:], t) if t else mu
        return z + scale * self.code_std * torch.randn(z.shape, generator=gen)

    def decoding_bias(self, picked: Picked, chain: int = 1) -> torch.Tensor:
        """(n, C) logits to add at every decoding step: ``config.pitch_class_bias`` times the log share
        of each pitch class among the notes of a sample's source window and partner (as moved to the
        asked key), shifted so the most used class gets 0; 0 for hold and rest.

        Decoded from a moved, noisy code alone, samples stray from the key more than real tunes do
        (train_bank.py --tune-bias measures the in-scale share): the code carries the key only loosely. The
        windows the code came from say which pitch classes belong, including the raised 7th a
        minor tune uses, which a scale mask would not know. Weight chosen on the valid split
        (train_bank.py --tune-bias)."""
        beta = self.config.pitch_class_bias
        if not beta:
            return torch.zeros(len(picked.index), tk.NUM_CLASSES)
        counts = _pitch_class_counts(self.windows(picked.index, picked.shift))
        if self.config.mix:
            counts = counts + _pitch_class_counts(self.windows(picked.partner, picked.partner_shift))
        if chain > 1:  # the windows of one chain share their pitch classes: one key through the tune
            counts = counts.view(-1, chain, 12).sum(1).repeat_interleave(chain, 0)
        return pitch_class_logits(counts, beta)

    def sample(self, vae, n: int, gen: torch.Generator, time_signature: tuple[int, int] = (4, 4),
               attrs: Attributes | None = None) -> tuple[torch.Tensor, Picked]:
        """``n`` codes for windows in ``time_signature`` meeting ``attrs`` (None: free), and the windows
        they came from."""
        picked = self.pick(n, gen, time_signature, attrs or Attributes())
        return self.codes(vae, picked, time_signature, gen), picked


def _draw(size: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices below ``size``: distinct while there are enough, else drawn with repeats."""
    return torch.randperm(size, generator=gen)[:n] if size >= n else torch.randint(size, (n,), generator=gen)
