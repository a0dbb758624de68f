"""What the studio does: continue a melody (LSTM), interpolate two clips and sample new ones (VAE).

One :class:`MelodyService` loads the checkpoints once and is read-only afterwards, so one instance
serves every user and thread. Each call takes a request dataclass, draws randomness only from its own
seeded ``torch.Generator`` (the seed is returned, so a result can be reproduced), and returns
Melodies that keep the input's tempo, meter, key and program.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import phrasing, pitch_guard
from . import tokens as tk
from .checkpoints import load_checkpoint
from .errors import CheckpointError, MelodyError, RequestError
from .melody import Key, Melody, estimate_key
from .models.code_bank import Attributes, CodeBank, Picked
from .models.latent_gan import LatentGAN, LatentGANConfig, meter_name
from .models.lstm import LSTMConfig, MelodyLSTM
from .models.style import StyleModel, fit_style
from .models.vae import MelodyVAE, VAEConfig, slerp
from .sampling import distinct_rows, like_bias, pitch_mask, sample_logits, stay_close_pull, steer
from .settings import MAX_SEED, check_seed, check_settings, parse_time_signature, setting

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = ROOT / "checkpoints"
MAX_CHUNKS = 4  # interpolation windows per clip: 16 bars of 4/4
KEY_LOCKS = ["off", "detected"] + [k.name for k in Key.all()]


# -- requests and results -------------------------------------------------------------------------
@dataclass(frozen=True)
class ContinueRequest:
    melody: Melody
    bars: int = setting("Bars", 1, 32, 8, help="new bars after the input")
    temperature: float = setting("Temperature", 0.1, 2.0, 1.0, 0.05, help="higher: wilder")
    variations: int = setting("Variations", 1, 8, 4, help="continuations to write at once")
    seed: int | None = None
    key_lock: str = "off"  # "off", "detected" (the melody's key) or a key name such as "D minor"
    pitch_range: tuple[int, int] | None = None  # None: pitch_guard.pitch_guard(melody)
    ending: str = "tonic chord"  # how the last bar lands: one of phrasing.ENDINGS
    stay_close: float = setting("Stay close", 0.0, 1.0, 0.5, 0.05,
                                help="0: wander away from the input, 1: bring its bars back")
    like: Melody | None = None  # an earlier variation (ContinueResult.continuations[i]) to write more like

    def validate(self):
        if not self.melody.notes:
            raise RequestError("The melody has no notes; give at least one note to continue from.")
        check_settings(self)
        check_seed(self.seed)
        phrasing.check_ending(self.ending)
        if self.like is not None:
            phrasing.check_like(self.like, self.melody, continuation_steps(self.melody, self.bars))
        if self.key_lock not in ("off", "detected"):
            try:
                Key.parse(str(self.key_lock))
            except MelodyError:
                raise RequestError(f"Key lock {str(self.key_lock)[:30]!r} is not a key; choose off, detected, or a "
                                   "key such as 'D minor' or 'Eb major'.") from None
        if self.pitch_range is not None:
            lo, hi = self.pitch_range
            if not tk.MIN_PITCH <= lo < hi <= tk.MAX_PITCH:
                raise RequestError(f"Pitch range {self.pitch_range} must lie within {tk.MIN_PITCH}-{tk.MAX_PITCH} "
                                   "with low < high.")

    def locked_key(self) -> Key | None:
        if self.key_lock == "detected":
            return self.melody.key
        if self.key_lock and self.key_lock != "off":
            return Key.parse(self.key_lock)
        return None

    def guard_range(self) -> tuple[int, int]:
        """Lowest and highest pitch a continuation may play: the asked range, else the pitch guard's."""
        return self.pitch_range or pitch_guard.pitch_guard(self.melody)


@dataclass(frozen=True)
class ContinueResult:
    """Variations best first: those that end as asked, each group by the model's likelihood per note."""

    primer: Melody  # the request's melody
    melodies: list[Melody]  # input followed by each continuation
    continuations: list[Melody]  # the new part alone, starting at step 0
    start_step: int  # where the continuation starts inside each of ``melodies``
    seed: int
    key_lock: Key | None
    notices: list[str] = field(default_factory=list)
    log2p_per_note: tuple[float, ...] = ()  # the LSTM's own likelihood of each variation, per note event
    ended: tuple[bool, ...] = ()  # whether each variation ends as the request asked
    pitch_range: tuple[int, int] = (tk.MIN_PITCH, tk.MAX_PITCH)  # the pitch guard used (lowest, highest)

    def new_bars(self, i: int) -> Melody:
        """Variation ``i``'s new notes as a file of their own, in whole bars of the input's meter.

        When the input ends inside a bar, the continuation starts there; this pads it with rests
        from that bar's line instead of starting the file with a short bar (a DAW would read a
        1/8 or 1/2 meter). Placed at the input's last bar line, it lines up with the input.
        """
        whole = self.melodies[i]
        bar_line = self.start_step - (self.start_step - whole.pickup_steps) % whole.bar_steps
        part = whole.slice(bar_line, whole.total_steps)
        return part.replace(notes=tuple(n for n in part.notes if n.start >= self.start_step - bar_line))


@dataclass(frozen=True)
class InterpolateRequest:
    a: Melody
    b: Melody
    steps: int = setting("Steps", 3, 11, 7, help="clips in the morph, A and B included")
    temperature: float = setting("Temperature", 0.0, 2.0, 0.0, 0.05, help="0: the most likely notes")
    seed: int | None = None
    pacing: str = "even"  # see PACINGS

    def validate(self):
        for name, m in (("A", self.a), ("B", self.b)):
            if not m.notes:
                raise RequestError(f"Clip {name} has no notes; give each clip at least one note.")
        check_settings(self)
        check_seed(self.seed)
        if self.pacing not in PACINGS:
            raise RequestError(f"Pacing {str(self.pacing)[:20]!r} is not one of: {', '.join(PACINGS)}.")


@dataclass(frozen=True)
class InterpolateResult:
    clips: list[Melody]  # A, interpolants..., B, all of the same length
    morph: Melody  # the clips one after another
    seed: int
    notices: list[str] = field(default_factory=list)


# How the steps of a morph are spaced: "even" so that each step changes the melody by about as much
# as the next (see MelodyService.paced_ts), "linear" at equal distances along the latent path.
PACINGS = {"even": "Even steps", "linear": "Equal latent distance"}
PACE_GRID = 17  # points along the path decoded to measure how fast the melody changes
TIME_SIGNATURES = ["4/4", "3/4", "2/4", "6/8"]
# Where Generate's codes come from: near the codes of training windows (models/code_bank.py, the one
# with attribute controls), the latent GAN (models/latent_gan.py), or the Gaussian fitted to the
# training codes (MelodyVAE.sample_prior); the last two are kept to compare.
SAMPLERS = {"bank": "Corpus neighbourhood", "gan": "Latent GAN", "gaussian": "Gaussian prior",
            "style": "More like my clips"}  # "style": a model fitted to the user's clips (models/style.py)
# Generate's key control: free, a mode in any key, or one key.
GENERATE_KEYS = ["any", "major", "minor"] + [k.name for k in Key.all()]


@dataclass(frozen=True)
class SampleRequest:
    count: int = setting("How many", 1, 16, 4, help="melodies to generate")
    temperature: float = setting("Temperature", 0.1, 2.0, 1.0, 0.05, help="higher: wilder")
    seed: int | None = None
    qpm: float = setting("Tempo", 40, 240, 120, help="quarter notes per minute")
    time_signature: tuple[int, int] = (4, 4)
    program: int = 0
    sampler: str = "bank"  # where z comes from: see SAMPLERS
    # Attribute controls (the bank sampler's): None, "any" and False leave the quantity free.
    notes_per_bar: float | None = setting("Notes per bar", 0.5, 16, None, 0.25, help="note density")
    range_semitones: int | None = setting("Pitch range", 0, 36, None, help="semitones from lowest note to highest")
    key: str = "any"  # "any", "major", "minor" or a key such as "D minor": see GENERATE_KEYS
    ends_on_tonic: bool = False  # True: the last note is the tonic of the melody's key
    style: StyleModel | None = None  # fitted by MelodyService.learn_style; needed by the "style" sampler

    def validate(self):
        check_settings(self)
        check_seed(self.seed)
        if self.sampler not in SAMPLERS:
            raise RequestError(f"Sampler {str(self.sampler)[:20]!r} is not one of: {', '.join(SAMPLERS)}.")
        if self.sampler == "style" and self.style is None:
            raise RequestError("There is no style to sample yet: give 2-20 clips under \"More like these\" and "
                               "learn their style first, or choose another sampler.")
        if not isinstance(self.ends_on_tonic, bool):
            raise RequestError(f"ends_on_tonic = {str(self.ends_on_tonic)[:20]!r} must be true or false.")
        if not self.attributes().free and self.sampler != "bank":
            raise RequestError(f"The {SAMPLERS[self.sampler]} sampler has no attribute controls; choose the "
                               f"{SAMPLERS['bank']} sampler, or leave notes per bar, range, key and ending free.")

    def attributes(self) -> Attributes:
        return Attributes.from_key(self.key, notes_per_bar=self.notes_per_bar, range_semitones=self.range_semitones,
                                   ends_on_tonic=self.ends_on_tonic)


@dataclass(frozen=True)
class SampleResult:
    melodies: list[Melody]
    seed: int
    notices: list[str] = field(default_factory=list)


def _generator(seed: int | None) -> tuple[torch.Generator, int]:
    seed = random.SystemRandom().randint(0, MAX_SEED) if seed is None else seed
    return torch.Generator().manual_seed(seed), seed


def continuation_steps(melody: Melody, bars: int) -> int:
    """Steps to the next bar line, then ``bars`` whole bars."""
    to_bar_line = (-(melody.total_steps - melody.pickup_steps)) % melody.bar_steps
    return to_bar_line + bars * melody.bar_steps


class MelodyService:
    """Loads the LSTM and VAE once; every method is safe to call from many threads at once."""

    def __init__(self, lstm: MelodyLSTM, vae: MelodyVAE, info: dict | None = None, gan: LatentGAN | None = None,
                 bank: CodeBank | None = None):
        self.lstm, self.vae = lstm.eval(), vae.eval()
        self.gan = gan.eval() if gan is not None else None
        self.bank = bank.eval() if bank is not None else None
        self.info = info or {}
        for model in (self.lstm, self.vae, self.gan):
            for p in model.parameters() if model is not None else ():
                p.requires_grad_(False)

    @classmethod
    def from_checkpoints(cls, directory: str | Path = CHECKPOINTS) -> MelodyService:
        directory = Path(directory)
        lstm, lstm_meta = load_checkpoint(directory / "lstm.safetensors", kind="lstm")
        vae, vae_meta = load_checkpoint(directory / "vae.safetensors", kind="vae")
        info, latent = {"lstm": lstm_meta, "vae": vae_meta}, {}
        # optional: Generate falls back on the GAN, then on the Gaussian
        for name, kind, trainer in (("gan", "latent_gan", "train_gan"), ("code_bank", "code_bank", "train_bank")):
            path = directory / f"{name}.safetensors"
            if path.is_file():
                latent[name], info[name] = load_checkpoint(path, kind=kind)
                if info[name].get("vae_weights_sha256") != vae_meta["weights_sha256"]:
                    raise CheckpointError(f"{path} samples codes of another VAE than {directory / 'vae.safetensors'}; "
                                          f"rebuild it with python -m musicgen_app.{trainer}, or remove it.")
        return cls(lstm, vae, info, latent.get("gan"), latent.get("code_bank"))

    @classmethod
    def debug(cls, seed: int = 0) -> MelodyService:
        """A tiny model with random weights and the same interfaces, for fast tests of everything above."""
        torch.manual_seed(seed)
        lstm = MelodyLSTM(LSTMConfig(embed_dim=8, pos_dim=4, hidden=16, layers=1, dropout=0.0, lookback_dim=4))
        vae = MelodyVAE(VAEConfig(embed_dim=8, pos_dim=4, enc_hidden=16, dec_hidden=16, dec_layers=1, z_dim=8,
                                segment_dim=8))
        gan = LatentGAN(LatentGANConfig(z_dim=8, noise_dim=8, hidden=16, layers=1, meter_dim=4,
                                        meters=tuple(TIME_SIGNATURES)))
        # 48 random windows, 12 per meter, with notes every 2, 4 or 8 steps (so densities differ)
        rng = np.random.default_rng(seed)
        windows = np.full((48, vae.config.window), tk.HOLD, np.int64)
        for i, row in enumerate(windows):
            every = (2, 4, 8)[i % 3]
            row[::every] = tk.pitch_to_token(60) + rng.integers(-7, 8, len(row[::every]))
        meters = TIME_SIGNATURES * 12
        bank = CodeBank.from_windows(windows, meters, torch.ones(vae.config.z_dim), mix=0.5, noise=0.3)
        feats = np.stack([tk.metric_features(vae.config.window, parse_time_signature(m)) for m in meters])
        with torch.inference_mode():
            codes, _ = vae.encode(torch.from_numpy(windows), torch.from_numpy(feats))
        bank.set_neighbours(codes, torch.arange(len(windows)))  # each window a tune of its own
        return cls(lstm, vae, {"debug": True}, gan, bank)

    @property
    def window(self) -> int:
        return self.vae.config.window

    # -- continue ---------------------------------------------------------------------------------
    def continue_(self, req: ContinueRequest) -> ContinueResult:
        req.validate()
        m = req.melody
        gen, seed = _generator(req.seed)
        notices = []
        enc = tk.encode(m)
        if enc.folded_notes:
            notices.append(f"{enc.folded_notes} input notes were outside the model's range 21-108 and were "
                           "moved by octaves.")
        key = req.locked_key()
        rows = self.continuation_rows(req, gen)
        n_new = rows.tokens.shape[1]
        if req.ending != "free" and not rows.satisfied.all():
            notices.append(f"{int((~rows.satisfied).sum())} of {len(rows.satisfied)} variations could not end on the "
                           f"{req.ending} in the bars asked for; they come last.")
        velocity = round(sum(n.velocity for n in m.notes) / len(m.notes))
        melodies, conts = [], []
        for row in rows.tokens:
            whole = tk.decode(np.concatenate([enc.tokens, row]), m, velocity=velocity)
            # the input's own notes stay untouched (velocities, unfolded pitches); only new ones are added
            new_notes = tuple(n for n in whole.notes if n.start >= m.total_steps)
            full = m.replace(notes=m.notes + new_notes, total_steps=m.total_steps + n_new)
            melodies.append(full)
            conts.append(full.slice(m.total_steps, full.total_steps))
        return ContinueResult(m, melodies, conts, m.total_steps, seed, key, notices,
                              tuple(float(x) for x in rows.log2p_per_note), tuple(bool(x) for x in rows.satisfied),
                              req.guard_range())

    def continuation_rows(self, req: ContinueRequest, gen: torch.Generator,
                          candidates: int | None = None) -> phrasing.PhrasedRows:
        """The request's continuation tokens, best first, each ending as asked where it can (see
        phrasing.generate_with_ending): the key lock and pitch guard as a logit mask, "Stay close"
        and "like" steering the draws, whole bars to the bar line. ``candidates``: endings sampled
        per variation (default: one for "free")."""
        m = req.melody
        key = req.locked_key()
        rng = req.guard_range()
        mask = pitch_mask(key.scale_pitch_classes() if key else None, rng)
        if candidates is None:
            candidates = 1 if req.ending == "free" else phrasing.DEFAULT_CANDIDATES
        return phrasing.generate_with_ending(self, tk.encode(m).tokens, m, continuation_steps(m, req.bars),
                                             req.variations, req.temperature, gen, mask, ending=req.ending,
                                             key=key or m.key, candidates=candidates,
                                             pull=stay_close_pull(req.stay_close),
                                             like=None if req.like is None else phrasing.reference_tokens(req.like))

    @torch.inference_mode()
    def generate_lstm(self, primer: np.ndarray, m: Melody, n_new: int, batch: int, temperature: float,
                      gen: torch.Generator, mask: torch.Tensor | None = None, *, pull: float = 0.0,
                      like: np.ndarray | None = None) -> np.ndarray:
        """Sample ``n_new`` tokens after ``primer`` for ``batch`` rows at once -> (batch, n_new).

        ``primer`` is one token row for every row, or (P, T) rows of equal length, each the primer of
        ``batch // P`` consecutive rows (candidate endings of several variations in one pass);
        ``pull`` and ``like`` steer the draws as in sample_lstm.
        """
        primers = np.atleast_2d(primer)
        run = self.sample_lstm(primers, m, n_new, batch, temperature, gen, mask, pull=pull, like=like)
        return run.hist[:, primers.shape[1]:].copy()

    @torch.inference_mode()
    def sample_lstm(self, primer: np.ndarray | None, m: Melody, n_new: int, batch: int, temperature: float,
                    gen: torch.Generator, mask: torch.Tensor | None = None,
                    after: phrasing.LSTMRun | None = None, *, pull: float = 0.0,
                    like: np.ndarray | None = None, bias: torch.Tensor | None = None,
                    resumable: bool = True) -> phrasing.LSTMRun:
        """``generate_lstm``, keeping what a caller may go on from: every row's tokens so far, the
        log2-likelihood the model gives its sampled steps, and the LSTM's state after them.

        Either ``primer`` ((T,) or (P, T), as for generate_lstm) or ``after``, a run whose P rows each
        go on as ``batch // P`` rows without running the LSTM over their past again. Each draw is
        steered (sampling.steer): ``pull`` toward (> 0) or away from (< 0) what the row played 1, 2,
        4 and 8 bars before, and toward ``like`` (n_new,), an earlier continuation's tokens at these
        steps (-1 where it has none), and by ``bias`` (n_new, C), logits added at each step. The
        likelihood is the model's own, unsteered. ``resumable=False``: nobody goes on from this run,
        so the LSTM is not run over its last token (the run's next_logits and state are None).
        """
        lags = self.lstm.config.lookback_bars
        past = np.atleast_2d(primer) if after is None else after.hist
        P, T = past.shape
        if batch % P:
            raise RequestError(f"{batch} rows cannot share {P} primers evenly.")
        reps = batch // P
        metric = tk.melody_features(m, T + n_new + 1)
        # Each row's history (the past, then its sampled steps) behind one LOOKBACK_NONE column, so
        # that a step's lookback inputs are one gather from it (tokens.lookback_gather) rather than
        # a tokens.lstm_features call per step: the same numbers, a tenth of the time.
        padded = np.empty((batch, 1 + T + n_new), np.int64)
        padded[:, 0] = tk.LOOKBACK_NONE
        padded[:, 1:T + 1] = np.repeat(past, reps, axis=0)
        k = len(lags)
        gather = tk.lookback_gather(np.arange(T, T + n_new + 1), m.bar_steps, lags)
        ahead_all = np.empty((n_new + 1, batch, 3 + 2 * k), np.int64)  # the inputs of each predicted step
        ahead_all[:, :, :3] = metric[T:, None, :]
        aheads = torch.from_numpy(ahead_all).unbind(0)
        lookbacks = torch.from_numpy(ahead_all[:, :, 3:3 + k]).unbind(0)  # the lookback tokens (sampling.steer)

        def ahead(i: int) -> torch.Tensor:  # the inputs for predicting step T + i, from the history so far
            g = padded[:, gather[i]]
            ahead_all[i, :, 3:3 + k] = g[:, :k]
            ahead_all[i, :, 3 + k:] = g[:, k:] == padded[:, T + i:T + i + 1]
            return aheads[i]

        if after is None:
            f = tk.lstm_features(np.broadcast_to(metric[1:T + 1], (P, T, 3)), past, m.bar_steps, lags,
                                 np.arange(1, T + 1))
            logits, (h, c) = self.lstm(torch.from_numpy(np.ascontiguousarray(past)), torch.from_numpy(f))
            last, log2p = logits[:, -1], np.zeros(P)
        else:
            last, (h, c), log2p = after.next_logits, after.state, after.log2p
        # Rows with the same history have the same LSTM state, so the LSTM runs once per distinct
        # history: ``row`` maps each row to its state's row. Candidate endings are 40 draws from
        # one state each, and at a step half or more of them still share their history with another.
        row = np.repeat(np.arange(P), reps)
        log2p = np.repeat(log2p, reps).astype(np.float64)
        toward = None if like is None else like_bias(like)
        if bias is not None:
            toward = bias if toward is None else toward + bias
        ahead(0)  # step 0's lookback tokens, which steer reads
        steps = []  # per step, the model's own log-probability of the drawn token (B, 1)
        rows_last = last[torch.from_numpy(row)]  # each row's logits
        for i in range(n_new):
            steered = steer(rows_last, temperature, mask, lookbacks[i], pull, None if toward is None else toward[i])
            tok = sample_logits(steered, 1.0, gen)
            toks = tok.numpy()
            padded[:, T + i + 1] = toks
            # the model's own likelihood (temperature 1, no mask), as phrasing.log_likelihood_per_note
            steps.append(torch.log_softmax(rows_last, -1).gather(1, tok[:, None]))
            if i == n_new - 1 and not resumable:
                rows_last = h = c = None
                break
            # one step past the last token too (a few rows, ~0.1 ms), so the run can be gone on from
            x = ahead(i + 1)
            first, after_row = distinct_rows(row, toks)
            src, prev = torch.from_numpy(first), torch.from_numpy(row[first])
            top, (h, c) = self.lstm.advance(tok[src], x[src], (h[:, prev], c[:, prev]))
            row = after_row
            # the head on every row, as one batch: its BLAS call gives other bits for other batch sizes
            rows_last = self.lstm.head(top[torch.from_numpy(row)])
        if steps:
            for lp in (torch.cat(steps, 1).double().numpy() / phrasing.LN2).T:  # summed in step order
                log2p += lp
        state = None
        if h is not None:  # one state per row again, for take() and for going on
            back = torch.from_numpy(row)
            state = (h[:, back], c[:, back])
        return phrasing.LSTMRun(np.ascontiguousarray(padded[:, 1:]), log2p, rows_last, state)

    # -- VAE --------------------------------------------------------------------------------------
    def decode_z(self, z: torch.Tensor, feats: torch.Tensor, temperature: float, gen: torch.Generator) -> np.ndarray:
        """z (B, Z), feats (W, 3) or per row (B, W, 3) -> tokens (B, W), autoregressively."""
        return self.vae.generate(z, feats, temperature, gen).numpy()

    @torch.inference_mode()
    def encode_windows(self, tokens: np.ndarray, feats: np.ndarray) -> torch.Tensor:
        mu, _ = self.vae.encode(torch.from_numpy(tokens), torch.from_numpy(feats))
        return mu

    def interpolate(self, req: InterpolateRequest) -> InterpolateResult:
        req.validate()
        gen, seed = _generator(req.seed)
        notices = []
        a, b = bar_aligned(req.a, notices, "A"), bar_aligned(req.b, notices, "B")
        W = self.window
        # Whole bars of each clip's own meter (6/8 stays 6/8), as many as the shorter clip has: neither
        # is padded with silent bars. They go through the VAE k bars (one window) at a time.
        k = min(W // a.bar_steps, W // b.bar_steps)
        bars = max(1, min(int(a.num_bars), int(b.num_bars), MAX_CHUNKS * k))
        spans = [(c, min(c + k, bars)) for c in range(0, bars, k)]  # bar ranges, the last maybe shorter
        chunks = len(spans)
        for name, m in (("A", a), ("B", b)):
            if m.num_bars > bars:
                notices.append(f"Clip {name} ({m.num_bars:g} bars) was cut to its first {bars} bars, the length "
                               "both clips have.")
        a, b = (fit_length(m, bars * m.bar_steps) for m in (a, b))
        if chunks > 1:
            notices.append(f"Interpolated in {chunks} chunks of up to {k} bars.")
        rows, frows = [], []
        for first, last in spans:
            for m in (a, b):
                rows.append(tk.vae_window(tk.encode(m).tokens, first * m.bar_steps, (last - first) * m.bar_steps, W))
                frows.append(tk.metric_features(W, m.time_signature, 0, m.steps_per_quarter))
        mu = self.encode_windows(np.stack(rows), np.stack(frows))
        def path(us, temperature: float) -> list[np.ndarray]:
            """The tokens at each of ``us`` along the latent path, in the meter of the nearer clip
            (one batch per meter)."""
            rows = {}
            for near, group in ((a, [u for u in us if u < 0.5]), (b, [u for u in us if u >= 0.5])):
                if not group:
                    continue
                zs = torch.stack([slerp(mu[2 * ci], mu[2 * ci + 1], float(u)) for u in group for ci in range(chunks)])
                feats = torch.from_numpy(tk.metric_features(W, near.time_signature, 0, near.steps_per_quarter))
                decoded = self.decode_z(zs, feats, temperature, gen)
                for gi, u in enumerate(group):
                    rows[u] = np.concatenate([decoded[gi * chunks + ci, :(last - first) * near.bar_steps]
                                              for ci, (first, last) in enumerate(spans)])
            return [rows[u] for u in us]

        ts = paced_ts(path, req.steps) if req.pacing == "even" else np.linspace(0, 1, req.steps)
        clips = [a]
        velocity = round(np.mean([n.velocity for n in a.notes + b.notes]))
        for t in ts[1:-1]:
            near = a if t < 0.5 else b  # the meter and key of the nearer clip
            clips.append(tk.decode(path([t], req.temperature)[0], near.replace(qpm=a.qpm, program=a.program),
                                   velocity=velocity))
        clips.append(b.replace(qpm=a.qpm, program=a.program))
        if a.bar_steps != b.bar_steps:
            notices.append(f"The morph file is written in clip A's {a.time_signature[0]}/{a.time_signature[1]}; "
                           "each step's own file keeps its clip's meter.")
        morph = clips[0]
        for c in clips[1:]:
            morph = morph.concat(c)
        morph = morph.replace(name=f"{a.name or 'A'} to {b.name or 'B'}")
        return InterpolateResult(clips, morph, seed, notices)

    def learn_style(self, melodies: list[Melody], progress=None, seed: int = 0) -> StyleModel:
        """"More like these": a small model of 2-20 clips' codes (see models/style.py), in seconds;
        ``progress(fraction, message)`` as it goes. Pass it as SampleRequest.style."""
        return fit_style(self, melodies, progress, seed)

    def sample(self, req: SampleRequest) -> SampleResult:
        req.validate()
        gen, seed = _generator(req.seed)
        notices = []
        ts = req.time_signature
        if req.sampler == "style":
            req.style.check_vae(self.vae)
            if ts != req.style.time_signature:
                notices.append(f"These are in {req.style.meter}, the meter of the clips the style was learnt from.")
            ts = req.style.time_signature
        probe = Melody(notes=(), time_signature=ts, qpm=req.qpm, program=req.program)
        W = self.window
        if probe.bar_steps > W:
            num, den = req.time_signature
            raise RequestError(f"A bar of {num}/{den} ({probe.bar_steps} sixteenths) is longer than the "
                               f"{W}-sixteenth clips the model writes; choose a shorter meter such as 4/4 or 6/8.")
        sampler, attrs, meter = req.sampler, req.attributes(), meter_name(req.time_signature)
        if sampler == "bank" and (self.bank is None or not self.bank.knows(req.time_signature)):
            why = "is not installed" if self.bank is None else f"has no {meter} windows"
            if not attrs.free:
                raise RequestError(f"The corpus bank {why}, and the attribute controls need it; leave notes per "
                                   "bar, range, key and ending free" + (" or choose another time signature."
                                                                        if self.bank is not None else "."))
            notices.append(f"The corpus bank {why}; these come from the latent GAN.")
            sampler = "gan"
        if sampler == "gan" and (self.gan is None or meter not in self.gan.config.meters):
            why = "is not installed" if self.gan is None else f"was not trained on {meter}"
            notices.append(f"The latent GAN {why}; these come from the Gaussian prior.")
            sampler = "gaussian"
        if sampler == "bank":
            melodies, _, picked = bank_melodies(self.vae, self.bank, req.count, probe, attrs, req.temperature, gen)
            if picked.matches < req.count:
                notices.append(f"Only {picked.matches} corpus windows meet the request; some of these melodies "
                               "grew from the same one.")
        elif sampler == "style":
            melodies, _ = style_melodies(self.vae, req.style, req.count, probe, req.temperature, gen)
        else:
            z = self.gan.sample(req.count, gen, req.time_signature) if sampler == "gan" else \
                self.vae.sample_prior(req.count, gen)
            melodies = melodies_from_codes(self.vae, z, probe, req.temperature, gen)
        return SampleResult([m.replace(name=f"sample {i + 1}") for i, m in enumerate(melodies)], seed, notices)


def paced_ts(path, steps: int, grid: int = PACE_GRID) -> np.ndarray:
    """Points 0 = t_0 < ... < t_{steps-1} = 1 along a latent path at which the decoded melody has
    changed by equal amounts: ``path(us, 0.0)`` decodes (argmax) ``grid`` points, the tokens that
    change between neighbours are counted, and the cumulative count is split evenly. Along a
    straight slerp the change bunches in the middle (the first and last steps are near-copies of A
    and B).
    """
    us = np.linspace(0, 1, grid)
    rows = path([float(u) for u in us], 0.0)
    change = [float(np.mean(x[:min(len(x), len(y))] != y[:min(len(x), len(y))])) for x, y in zip(rows, rows[1:])]
    cum = np.concatenate([[0.0], np.cumsum(change)])
    if cum[-1] <= 0:
        return np.linspace(0, 1, steps)
    cum = cum + us * 1e-9  # strictly increasing for the inverse below
    return np.interp(np.linspace(0, cum[-1], steps), cum, us)


@torch.inference_mode()
def melodies_from_codes(vae: MelodyVAE, z: torch.Tensor, template: Melody, temperature: float,
                        gen: torch.Generator, bias: torch.Tensor | None = None) -> list[Melody]:
    """VAE codes (B, Z) -> melodies of the whole bars of ``template``'s meter that fit the window,
    each with its estimated key (the model writes no key); ``bias`` as for MelodyVAE.generate."""
    W = vae.config.window
    feats = torch.from_numpy(tk.metric_features(W, template.time_signature, 0, template.steps_per_quarter))
    length = tk.whole_bars_steps(W, template.bar_steps)
    out = []
    for row in vae.generate(z, feats, temperature, gen, bias).numpy():
        m = tk.decode(row[:length], template)
        out.append(m.replace(key=estimate_key(m.notes)))
    return out


# Melodies decoded per melody asked when attributes are asked: the extra ones let select() drop
# those whose decoding lost the asked key or ending (costs ~20 % more decoding time for 8).
OVERSAMPLE = 2


@torch.inference_mode()
def bank_melodies(vae: MelodyVAE, bank: CodeBank, n: int, template: Melody, attrs: Attributes, temperature: float,
                  gen: torch.Generator) -> tuple[list[Melody], torch.Tensor, Picked]:
    """``n`` melodies from the corpus bank in ``template``'s meter meeting ``attrs`` as well as
    decoding allows, their codes and the windows they grew from (as Generate makes them;
    train_bank measures this)."""
    drawn = n if attrs.free else OVERSAMPLE * n
    z, picked = bank.sample(vae, drawn, gen, template.time_signature, attrs)
    melodies = melodies_from_codes(vae, z, template, temperature, gen, bank.decoding_bias(picked))
    if drawn == n:
        return melodies, z, picked
    keep = bank.select(melodies, attrs, n)
    return [melodies[i] for i in keep], z[torch.from_numpy(keep)], picked.take(keep)


@torch.inference_mode()
def style_melodies(vae: MelodyVAE, style: StyleModel, n: int, template: Melody, temperature: float,
                   gen: torch.Generator) -> tuple[list[Melody], torch.Tensor]:
    """``n`` melodies "more like" the clips ``style`` was fitted to, the fewest copies of their bars
    among OVERSAMPLE * n drawn, and their codes."""
    z = style.sample(OVERSAMPLE * n, gen)
    melodies = melodies_from_codes(vae, z, template, temperature, gen, style.decoding_bias(len(z)))
    keep = style.select(melodies, n)
    return [melodies[i] for i in keep], z[torch.from_numpy(keep)]


def bar_aligned(m: Melody, notices: list[str], name: str) -> Melody:
    """A clip with a pickup gets rests before it so that it starts on a bar line, as VAE windows do."""
    if not m.pickup_steps:
        return m
    pad = m.bar_steps - m.pickup_steps
    notices.append(f"Clip {name}'s pickup was placed in a full first bar (rests before it).")
    return Melody(notes=(), total_steps=pad, **_meta(m)).concat(m.replace(pickup_steps=0))


def _meta(m: Melody) -> dict:
    return {"qpm": m.qpm, "time_signature": m.time_signature, "key": m.key, "program": m.program,
            "steps_per_quarter": m.steps_per_quarter, "name": m.name}


def fit_length(m: Melody, length: int) -> Melody:
    if m.total_steps >= length:
        return m.slice(0, length) if m.total_steps > length else m
    return m.replace(total_steps=length)
