"""What the studio does: continue a melody (LSTM), interpolate two clips and sample new ones (VAE).

One :class:`MelodyService` loads the checkpoints once and is read-only afterwards, so one instance
serves every user and thread. Each call takes a request (:mod:`~musicgen_app.service.requests`),
draws randomness only from its own seeded ``torch.Generator`` (the seed is returned, so a result can
be reproduced), and returns Melodies that keep the input's tempo, meter, key and program.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from .. import tokens as tk
from ..errors import CheckpointError, RequestError
from ..melody import Melody, meter_name
from ..models.checkpoints import load_checkpoint
from ..models.code_bank import Attributes, CodeBank
from ..models.latent_gan import LatentGAN, LatentGANConfig
from ..models.lstm import LSTMConfig, MelodyLSTM
from ..models.realism import critic_for
from ..models.sampling import pitch_mask, stay_close_pull
from ..models.style import StyleModel, fit_style
from ..models.vae import MelodyVAE, VAEConfig, slerp
from ..paths import CHECKPOINTS
from ..settings import draw_seed, parse_time_signature
from . import engine, phrasing
from .decoding import (
    GENERATE_BARS,
    MAX_CHUNKS,
    OVERSAMPLE,
    bank_melodies,
    bar_aligned,
    fit_length,
    form_of,
    melodies_from_codes,
    paced_ts,
    style_melodies,
)
from .engine import Engine, LSTMRun
from .form import give_form, repeats
from .requests import (
    TIME_SIGNATURES,
    ContinueRequest,
    ContinueResult,
    InterpolateRequest,
    InterpolateResult,
    SampleRequest,
    SampleResult,
    continuation_steps,
)


def _generator(seed: int | None) -> tuple[torch.Generator, int]:
    seed = draw_seed() if seed is None else seed
    return torch.Generator().manual_seed(seed), seed


class MelodyService:
    """Loads the LSTM and VAE once; every method is safe to call from many threads at once."""

    def __init__(self, lstm: MelodyLSTM, vae: MelodyVAE, info: dict | None = None, gan: LatentGAN | None = None,
                 bank: CodeBank | None = None):
        self.lstm, self.vae = lstm.eval(), vae.eval()
        self.gan = gan.eval() if gan is not None else None
        self.bank = bank.eval() if bank is not None else None
        self.info = info or {}
        self.engine = Engine(self.lstm)
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
                                          f"rebuild it with python -m musicgen_app.training.{trainer}, or remove it.")
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
        meters = list(TIME_SIGNATURES) * 12
        # per meter, three tunes of four windows 4 bars apart, so that 8- and 16-bar melodies can chain them
        tune, bar = np.arange(48) // 16 * 4 + np.arange(48) % 4, np.arange(48) // 4 % 4 * 4
        bank = CodeBank.from_windows(windows, meters, torch.ones(vae.config.z_dim), tune, bar, mix=0.5, noise=0.3)
        feats = np.stack([tk.metric_features(vae.config.window, parse_time_signature(m)) for m in meters])
        with torch.inference_mode():
            codes, _ = vae.encode(torch.from_numpy(windows), torch.from_numpy(feats))
        bank.set_neighbours(codes, torch.from_numpy(tune))
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

    def sample_lstm(self, primer: np.ndarray | None, m: Melody, n_new: int, batch: int, temperature: float,
                    gen: torch.Generator, mask: torch.Tensor | None = None,
                    after: LSTMRun | None = None, *, pull: float = 0.0,
                    like: np.ndarray | None = None, bias: torch.Tensor | None = None,
                    resumable: bool = True, prune=None) -> LSTMRun:
        """``generate_lstm``, keeping what a caller may go on from: every row's tokens so far, the
        log2-likelihood the model gives its sampled steps, and the LSTM's state after them. The
        rows are stepped by the process's one engine (service/engine.py), together with every
        other request's.

        Either ``primer`` ((T,) or (P, T), as for generate_lstm) or ``after``, a run whose P rows each
        go on as ``batch // P`` rows without running the LSTM over their past again. Each draw is
        steered (sampling.steer): ``pull`` toward (> 0) or away from (< 0) what the row played 1, 2,
        4 and 8 bars before, and toward ``like`` (n_new,), an earlier continuation's tokens at these
        steps (-1 where it has none), and by ``bias`` (n_new, C), logits added at each step. The
        likelihood is the model's own, unsteered. ``resumable=False``: nobody goes on from this run,
        so the LSTM is not run over its last token (the run's next_logits and state are None), and
        ``prune(block, i)`` may stop rows early (see engine.block).
        """
        return self.engine.run(engine.block(self.lstm, primer, m, n_new, batch, temperature, gen, mask, after,
                                            pull=pull, like=like, bias=bias, resumable=resumable, prune=prune))

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
        rows, frows = [], []
        for first, last in spans:
            for m in (a, b):
                rows.append(tk.vae_window(tk.encode(m).tokens, first * m.bar_steps, (last - first) * m.bar_steps, W))
                frows.append(tk.metric_features(W, m.time_signature, 0, m.steps_per_quarter))
        mu = self.encode_windows(np.stack(rows), np.stack(frows))
        # One path for the whole clip: the chunks' codes side by side are one point, A's and B's,
        # and every clip of the morph lies on the slerp between those two points.
        za, zb = mu[0::2].reshape(-1), mu[1::2].reshape(-1)
        returns = {id(m): repeats(tk.bar_rows(m)) for m in (a, b)}

        def path(us, temperature: float) -> list[np.ndarray]:
            """The tokens at each of ``us`` along the latent path, in the meter of the nearer clip
            (one batch per meter), its bars returning where that clip's do (form.give_form)."""
            rows = {}
            for near, group in ((a, [u for u in us if u < 0.5]), (b, [u for u in us if u >= 0.5])):
                if not group:
                    continue
                zs = torch.cat([slerp(za, zb, float(u)).view(chunks, -1) for u in group])
                feats = torch.from_numpy(tk.metric_features(W, near.time_signature, 0, near.steps_per_quarter))
                decoded = self.decode_z(zs, feats, temperature, gen)
                for gi, u in enumerate(group):
                    row = np.concatenate([decoded[gi * chunks + ci, :(last - first) * near.bar_steps]
                                          for ci, (first, last) in enumerate(spans)])
                    rows[u] = give_form(row, returns[id(near)], near.bar_steps)
            return [rows[u] for u in us]

        ts = paced_ts(path, req.steps) if req.pacing == "even" else np.linspace(0, 1, req.steps)
        clips = [a]
        velocity = round(np.mean([n.velocity for n in a.notes + b.notes]))
        middle = [float(t) for t in ts[1:-1]]
        for t, row in zip(middle, path(middle, req.temperature)):  # one batch per meter, not one per step
            near = a if t < 0.5 else b  # the meter and key of the nearer clip
            clips.append(tk.decode(row, near.replace(qpm=a.qpm, program=a.program), velocity=velocity))
        clips.append(b.replace(qpm=a.qpm, program=a.program))
        turn = next((i for i, c in enumerate(clips) if c.time_signature != a.time_signature), None)
        if turn is not None:
            notices.append(f"The morph changes from {meter_name(a.time_signature)} to {meter_name(b.time_signature)} "
                           f"at step {turn + 1} of {len(clips)}; its MIDI file changes meter there too.")
        morph = clips[0]
        for c in clips[1:]:
            morph = morph.concat(c)
        morph = morph.replace(name=f"{a.name or 'A'} to {b.name or 'B'}")
        return InterpolateResult(clips, morph, seed, notices)

    def learn_style(self, melodies: list[Melody], progress=None, seed: int = 0) -> StyleModel:
        """"More like these": a small model of 2-20 clips' codes (see models/style.py), in seconds;
        ``progress(fraction, message)`` as it goes. Pass it as SampleRequest.style."""
        return fit_style(self, melodies, progress, seed)

    def borrowed_form(self, n: int, template: Melody, phrases: int, gen: torch.Generator) -> np.ndarray | None:
        """For melodies of several phrases whose codes come from no tune (GAN, Gaussian, a style): the
        bars of ``n`` corpus tunes of that length in the bank, whose returns they take; None for one
        phrase, or without a bank that has such tunes."""
        if phrases == 1 or self.bank is None or not self.bank.knows(template.time_signature) or \
                not len(self.bank.chains(template.time_signature, phrases, GENERATE_BARS)):
            return None
        picked = self.bank.pick_chains(n, gen, template.time_signature, Attributes(), phrases, GENERATE_BARS)
        return form_of(self.bank, picked, template, phrases)

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
        phrases = req.bars // GENERATE_BARS
        if sampler == "bank" or (sampler == "gan" and self.bank is not None and self.bank.knows(ts)):
            # the GAN refines the codes the bank makes (models/latent_gan.py); the rest is the bank's
            refine = None if sampler == "bank" else functools.partial(self.gan.refine, time_signature=ts, generator=gen)
            # of more melodies than asked, the most real-looking (models/realism.py)
            critic = critic_for(self.info.get("code_bank"), ts) if sampler == "bank" else None
            melodies, _, picked = bank_melodies(self.vae, self.bank, req.count, probe, attrs, req.temperature, gen,
                                                phrases, refine, critic)
            if sampler == "bank" and picked.matches < req.count:
                what = "corpus windows" if phrases == 1 else f"corpus tunes of {req.bars} bars"
                notices.append(f"Only {picked.matches} {what} meet the request; some of these melodies "
                               "grew from the same one.")
        elif sampler == "style":
            melodies, _ = style_melodies(self.vae, req.style, req.count, probe, req.temperature, gen, phrases,
                                         self.borrowed_form(OVERSAMPLE * req.count, probe, phrases, gen))
        else:
            z = self.gan.sample(req.count * phrases, gen, ts) if sampler == "gan" else \
                self.vae.sample_prior(req.count * phrases, gen)
            melodies = melodies_from_codes(self.vae, z, probe, req.temperature, gen, None, phrases,
                                           self.borrowed_form(req.count, probe, phrases, gen))
        return SampleResult([m.replace(name=f"sample {i + 1}") for i, m in enumerate(melodies)], seed, notices)
