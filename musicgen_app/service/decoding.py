"""From VAE codes to melodies, and the shapes of clips the VAE reads: what Interpolate and Generate
share with training and evaluation (which decode codes the way the app does)."""

from __future__ import annotations

import numpy as np
import torch

from .. import tokens as tk
from ..melody import Melody, estimate_key
from ..models.code_bank import Attributes, CodeBank, Picked
from ..models.style import StyleModel
from ..models.vae import MelodyVAE
from .form import give_form, move, repeats

MAX_CHUNKS = 4  # interpolation windows per clip: 16 bars of 4/4
# Bars of a generated melody in every meter, as the README promises: a VAE window holds 4 bars of
# each meter Generate offers, and its other whole bars (a fifth of 3/4, four more of 2/4) are dropped.
GENERATE_BARS = 4
# Generated notes leap at most an octave from the note before: over an octave is rare in the corpus
# (0.4 % of 4-bar windows have one) and was 6 times as common in decoded samples.
MAX_LEAP = 12
PACE_GRID = 17  # points along the latent path decoded to measure how fast the melody changes


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
                        gen: torch.Generator, bias: torch.Tensor | None = None, phrases: int = 1,
                        form: np.ndarray | None = None) -> list[Melody]:
    """VAE codes (B, Z) -> melodies of ``phrases`` x GENERATE_BARS bars of ``template``'s meter, each
    with its estimated key (the model writes no key); the arguments as for :func:`tune_rows`."""
    return [as_melody(row, template) for row in tune_rows(vae, z, template, temperature, gen, bias, phrases, form)]


def as_melody(row: np.ndarray, template: Melody) -> Melody:
    m = tk.decode(row, template)
    return m.replace(key=estimate_key(m.notes))


@torch.inference_mode()
def tune_rows(vae: MelodyVAE, z: torch.Tensor, template: Melody, temperature: float, gen: torch.Generator,
              bias: torch.Tensor | None = None, phrases: int = 1, form: np.ndarray | None = None) -> np.ndarray:
    """VAE codes (B, Z) -> (B / phrases, phrases x span) tokens: each code decodes one phrase (see
    :func:`generated_span`), ``phrases`` consecutive codes make one melody (:func:`joined`).
    ``form`` (B / phrases, the same width), tokens of real bars whose returns the melodies take
    (form.give_form); ``bias`` as for MelodyVAE.generate."""
    start, stop = generated_span(vae.config.window, template.bar_steps)
    # Decoding is causal: the window's steps up to ``stop`` are those a whole window would have.
    feats = torch.from_numpy(tk.metric_features(stop, template.time_signature, 0, template.steps_per_quarter))
    rows = vae.generate(z, feats, temperature, gen, bias, MAX_LEAP).numpy()[:, start:stop]
    rows = np.stack([joined(row) for row in rows.reshape(len(rows) // phrases, phrases, stop - start)])
    if form is not None:
        for i, row in enumerate(rows):
            rows[i] = give_form(row, repeats(form[i].reshape(-1, template.bar_steps)), template.bar_steps)
    return rows


def joined(phrases: np.ndarray) -> np.ndarray:
    """Phrases decoded each on its own (n, span) -> one row, each phrase moved by the fewest octaves
    that bring its first note within MAX_LEAP of the last note before it (form.move: an octave
    less where that would leave the range); the decoder of one window does not know where the
    window before it ended."""
    out = phrases.copy()
    for j in range(1, len(out)):
        before = out[:j].reshape(-1)
        before, mine = before[before >= 2], out[j][out[j] >= 2]
        if len(before) and len(mine) and abs(leap := int(mine[0]) - int(before[-1])) > MAX_LEAP:
            out[j] = move(out[j], -int(np.sign(leap)) * 12 * -(-(abs(leap) - MAX_LEAP) // 12))
    return out.reshape(-1)


def generated_span(window: int, bar_steps: int) -> tuple[int, int]:
    """The steps [start, stop) of a decoded window that become a generated melody: its last
    GENERATE_BARS whole bars (all its whole bars when fewer fit), starting on a bar line.

    The last bars, not the first, because the corpus bank picks windows by the notes per bar,
    range, key and last note of all their whole bars (code_bank.window_attributes): a melody that
    ends where they end keeps the ending a request asked for.
    """
    stop = tk.whole_bars_steps(window, bar_steps)
    return max(0, stop - GENERATE_BARS * bar_steps), stop


# Melodies decoded per melody asked when attributes are asked: the extra ones let select() drop
# those whose decoding lost the asked key or ending, at the price of decoding them
# (bench/bench_service.py times Generate).
OVERSAMPLE = 2


@torch.inference_mode()
def bank_melodies(vae: MelodyVAE, bank: CodeBank, n: int, template: Melody, attrs: Attributes, temperature: float,
                  gen: torch.Generator, phrases: int = 1, refine=None, critic=None
                  ) -> tuple[list[Melody], torch.Tensor, Picked]:
    """``n`` melodies of ``phrases`` x GENERATE_BARS bars from the corpus bank in ``template``'s meter,
    meeting ``attrs`` as well as decoding allows, their codes and the windows they grew from (as Generate makes
    them; train_bank measures this). Longer melodies grow from consecutive windows of one tune
    (CodeBank.pick_chains), each moved to its own partner; every melody takes the returns of the
    bars it grew from (form.give_form); one that comes out as those very bars is drawn again.
    ``refine(z) -> z``, if given, moves the codes before they are decoded (the latent GAN's refiner).
    ``critic`` (models/realism.RealismCritic), if given, decodes more melodies than asked and keeps
    those that miss fewest asked attributes, then those that do not play training bars back, and
    among equals the ones it draws as the most real-looking."""
    drawn = n if attrs.free else OVERSAMPLE * n
    if critic is not None and attrs.free:
        drawn = critic.drawn(n)
    if phrases == 1:
        picked = bank.pick(drawn, gen, template.time_signature, attrs, GENERATE_BARS)
    else:
        picked = bank.pick_chains(drawn, gen, template.time_signature, attrs, phrases, GENERATE_BARS)
    form = form_of(bank, picked, template, phrases)

    def decoded(chosen: Picked, form: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        z = bank.codes(vae, chosen, template.time_signature, gen)
        z = z if refine is None else refine(z)
        return tune_rows(vae, z, template, temperature, gen, bank.decoding_bias(chosen, phrases), phrases, form), z

    rows, z = decoded(picked, form)
    # A melody that plays back the very bars it grew from is a corpus tune, not a new one (one in a few
    # hundred 16-bar melodies of repetitive tunes did): its codes are drawn once more.
    copied = np.nonzero((rows == form).all(1))[0]
    if len(copied):
        again = torch.from_numpy((copied[:, None] * phrases + np.arange(phrases)).reshape(-1))
        rows[copied], z[again] = decoded(picked.take(again), form[copied])
    melodies = [as_melody(row, template) for row in rows]
    if drawn == n:
        return melodies, z, picked
    keep = bank.select(melodies, attrs, n) if critic is None else \
        critic.choose(melodies, n, gen, bank.misses(melodies, attrs), bank.copied(melodies))
    kept = torch.from_numpy((keep[:, None] * phrases + np.arange(phrases)).reshape(-1))
    return [melodies[i] for i in keep], z[kept], picked.take(kept)


def form_of(bank: CodeBank, picked: Picked, template: Melody, phrases: int) -> np.ndarray:
    """The bars each melody grows from, as Generate decodes them: (melodies, phrases x span) tokens."""
    start, stop = generated_span(bank.config.window, template.bar_steps)
    return bank.windows(picked.index, picked.shift)[:, start:stop].reshape(-1, phrases * (stop - start)).numpy()


@torch.inference_mode()
def style_melodies(vae: MelodyVAE, style: StyleModel, n: int, template: Melody, temperature: float,
                   gen: torch.Generator, phrases: int = 1, form: np.ndarray | None = None
                   ) -> tuple[list[Melody], torch.Tensor]:
    """``n`` melodies "more like" the clips ``style`` was fitted to, the fewest copies of their bars
    among OVERSAMPLE * n drawn, and their codes; ``phrases`` and ``form`` (OVERSAMPLE * n rows) as
    for melodies_from_codes."""
    z = style.sample(OVERSAMPLE * n * phrases, gen)
    melodies = melodies_from_codes(vae, z, template, temperature, gen, style.decoding_bias(len(z)), phrases, form)
    keep = style.select(melodies, n)
    rows = torch.from_numpy((keep[:, None] * phrases + np.arange(phrases)).reshape(-1))
    return [melodies[i] for i in keep], z[rows]


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
