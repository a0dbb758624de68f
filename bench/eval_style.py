""""More like these" (models/style.py) measured on held-out musicians: are its samples closer to the
clips than the corpus samplers' are, how much do they copy, and how long does fitting take.

    PYTHONPATH=. .venv/bin/python bench/eval_style.py [--split test] [--trials 40] [--timing 5]
    PYTHONPATH=. .venv/bin/python bench/eval_style.py --split valid --kl-weight 0.3   # choices: valid only

A "musician" is one of two kinds, drawn from the split (seeded; ``--trials`` of each):
- tune: one tune cut into clips of one VAE window each (4 bars of 4/4, 5 of 3/4); half of them
  (2-20) are given, the other half are the musician's unseen material;
- collection: the tunes of one corpus file in one meter (e.g. one Essen or O'Neill's file of 6/8
  tunes, at least 3); all but a third (2-20) are given as whole-tune clips, the rest are unseen.

For each, 32 samples (temperature 1.0, as Generate) from: the style model fitted to the given clips;
"clip neighbourhood", the code bank's recipe applied to the clips' codes with no fitting (a clip
window's code moved halfway to a near window of another clip, plus noise: a baseline for the fitted
model); the corpus sampler Generate uses by default (service.sample's order: code bank, latent GAN,
Gaussian); the latent GAN; the VAE's fitted Gaussian prior; and the given clips' own codes replayed
(the copy extreme, for scale). Measured per sampler, against the given clips and against the unseen
material:
- z: each sample's distance to the nearest code of a clip window (stride one bar), in the VAE
  prior's whitened units per dimension (style.nearest_distance); "re-encoded": the same for the
  decoded melody encoded again (what a listener gets, after the decoder's own sampling);
- stats: the mean overlap of the six statistics of the GAN work (stats.compare_stats' in scale,
  range, mean interval, notes per bar; stats.bar_stats' self-similarity, repeated bars) between
  the samples and the clip windows (non-overlapping), 1 = same distribution;
- pitch gap: |mean pitch of a sample - mean pitch of the clips| in semitones; key: share of samples
  whose estimated key is the clips' most common one;
- copies: share of sample bars (with a note) equal, token for token, to a bar of the given clips.
The margins are style minus the corpus sampler, and minus the clip neighbourhood, per trial (paired),
with a bootstrap 95 % interval and the share of trials where style is closer. Then the fit time of
20 clips x 16 bars of 4/4 on one thread; with --rolls, piano rolls of clips, style and corpus samples.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from musicgen_app import tokens as tk  # noqa: E402
from musicgen_app.melody import (  # noqa: E402
    Melody,
    estimate_key,
    meter_name,  # noqa: E402
)
from musicgen_app.models import style as style_module  # noqa: E402
from musicgen_app.models.code_bank import Attributes  # noqa: E402
from musicgen_app.models.style import (  # noqa: E402
    MAX_CLIPS,
    StyleConfig,
    fit_style,
    nearest_distance,
    rebarred,
    style_windows,
)
from musicgen_app.service import (  # noqa: E402
    MelodyService,
    bank_melodies,
    decoding,  # noqa: E402
    melodies_from_codes,
    style_melodies,
)
from musicgen_app.training import corpus  # noqa: E402
from musicgen_app.training.stats import TARGETS, compare_bar_stats, compare_stats  # noqa: E402
from musicgen_app.views import piano_roll_png, tile_sheet  # noqa: E402

SAMPLERS = ("style", "clip neighbourhood", "corpus", "latent GAN", "prior", "clip codes")
# (key, column title, True when higher means closer to the clips)
MEASURES = (("z_given", "z dist", False), ("reenc_given", "re-encoded", False), ("stats_given", "stats", True),
            ("pitch_gap", "pitch gap", False), ("key_share", "key", True), ("z_unseen", "z dist unseen", False),
            ("stats_unseen", "stats unseen", True), ("copies", "copies", False))


# -- musicians ------------------------------------------------------------------------------------
def tune_musicians(melodies: list[Melody], window: int, n: int, rng: np.random.Generator) -> list[dict]:
    """One tune each: clips of one window's whole bars; half given, half unseen."""
    out = []
    for i in rng.permutation(len(melodies)):
        if len(out) == n:
            break
        m = rebarred(melodies[i], melodies[i].time_signature)
        span = (window // m.bar_steps) * m.bar_steps
        pieces = [m.slice(s, s + span) for s in range(0, m.total_steps - span + 1, span)]
        pieces = [p for p in pieces if p.notes]
        if len(pieces) < 4:
            continue
        order = rng.permutation(len(pieces))
        half = min(MAX_CLIPS, len(pieces) // 2)
        out.append({"kind": "tune", "name": m.name, "given": [pieces[j] for j in sorted(order[:half])],
                    "unseen": [pieces[j] for j in sorted(order[half:])]})
    return out


def collection_musicians(tunes: corpus.Corpus, split: str, n: int, rng: np.random.Generator) -> list[dict]:
    """The tunes of one corpus file in one meter (at least 3); two thirds (2-20) given."""
    groups = collections.defaultdict(list)
    for i, s in enumerate(tunes.splits):
        if s == split:
            m = tunes.melody(i)
            groups[(tunes.ids[i].split("#")[0], m.time_signature)].append(m)
    keys = sorted(k for k, v in groups.items() if len(v) >= 3)
    out = []
    for j in rng.permutation(len(keys))[:n]:
        tunes = [groups[keys[j]][t] for t in rng.permutation(len(groups[keys[j]]))]
        given = min(MAX_CLIPS, len(tunes) - max(1, len(tunes) // 3))
        out.append({"kind": "collection", "name": f"{keys[j][0]} {meter_name(keys[j][1])}", "given": tunes[:given],
                    "unseen": tunes[given:]})
    return out


# -- measures -------------------------------------------------------------------------------------
@torch.inference_mode()
def codes_of(svc: MelodyService, melodies: list[Melody], ts, stride_bars: int = 1) -> torch.Tensor:
    tokens, feats, _ = style_windows(melodies, svc.window, ts, stride_bars)
    mu, _ = svc.vae.encode(torch.from_numpy(tokens), torch.from_numpy(feats).expand(len(tokens), -1, -1))
    return mu


def window_melodies(melodies: list[Melody], window: int, ts) -> list[Melody]:
    """Non-overlapping windows of the clips, as melodies of the whole bars a sample has."""
    probe = Melody(notes=(), time_signature=ts)
    k = window // probe.bar_steps
    tokens, _, _ = style_windows(melodies, window, ts, stride_bars=k)
    return [tk.decode(row[:k * probe.bar_steps], probe) for row in tokens]


def bar_rows(melodies: list[Melody]) -> list[np.ndarray]:
    """Each melody's bars with a note onset, as token rows."""
    return [b for m in melodies for b in tk.bar_rows(m) if (b >= 2).any()]


def six_stats_overlap(samples: list[Melody], reference: list[Melody]) -> float:
    stats = compare_stats(samples, reference)
    stats.update(compare_bar_stats(samples, reference))
    return float(np.mean([stats[k]["overlap"] for k in TARGETS]))


def mean_pitch(m: Melody) -> float:
    return float(np.mean([n.pitch for n in m.notes])) if m.notes else float("nan")


def measure(svc: MelodyService, samples: list[Melody], z: torch.Tensor, ctx: dict) -> dict:
    W = svc.window
    rows = np.stack([tk.vae_window(tk.encode(m).tokens, 0, m.total_steps, W) for m in samples])
    with torch.inference_mode():
        reenc, _ = svc.vae.encode(torch.from_numpy(rows), torch.from_numpy(ctx["feats"]).expand(len(rows), -1, -1))
    bars = bar_rows(samples)
    copied = sum(any(np.array_equal(b, c) for c in ctx["clip_bars"]) for b in bars)
    pitches = np.array([mean_pitch(m) for m in samples])
    return {
        "z_given": float(nearest_distance(z, ctx["given_codes"], svc.vae).mean()),
        "reenc_given": float(nearest_distance(reenc, ctx["given_codes"], svc.vae).mean()),
        "stats_given": six_stats_overlap(samples, ctx["given_windows"]),
        "pitch_gap": float(np.nanmean(np.abs(pitches - ctx["clip_pitch"]))),
        "key_share": float(np.mean([estimate_key(m.notes) == ctx["clip_key"] for m in samples])),
        "z_unseen": float(nearest_distance(z, ctx["unseen_codes"], svc.vae).mean()),
        "stats_unseen": six_stats_overlap(samples, ctx["unseen_windows"]),
        "copies": copied / max(len(bars), 1),
    }


def run_trial(svc: MelodyService, musician: dict, seed: int, n: int, config: StyleConfig) -> dict:
    given, unseen = musician["given"], musician["unseen"]
    t0 = time.perf_counter()
    style = fit_style(svc, given, None, seed, config)
    fit_s = time.perf_counter() - t0
    ts, W = style.time_signature, svc.window
    given_windows = window_melodies(given, W, ts)
    keys = collections.Counter(estimate_key(m.notes) for m in given)
    ctx = {"feats": tk.metric_features(W, ts), "given_codes": codes_of(svc, given, ts),
           "owners": torch.tensor([i for i, m in enumerate(given) for _ in style_windows([m], W, ts)[0]]),
           "unseen_codes": codes_of(svc, unseen, ts), "given_windows": given_windows,
           "unseen_windows": window_melodies(unseen, W, ts),
           "clip_bars": bar_rows([rebarred(m, ts) for m in given]),
           "clip_pitch": float(np.mean([n.pitch for m in given for n in m.notes])),
           "clip_key": keys.most_common(1)[0][0]}
    codes = ctx["given_codes"]
    template = Melody(notes=(), time_signature=ts)

    def decoded(draw):
        return lambda g: (lambda z: (melodies_from_codes(svc.vae, z, template, 1.0, g), z))(draw(g))

    draws = {
        "style": lambda g: style_melodies(svc.vae, style, n, template, 1.0, g),
        "clip neighbourhood": decoded(lambda g: clip_neighbourhood(svc, codes, ctx["owners"], n, g)),
        "corpus": lambda g: corpus_samples(svc, n, g, template),
        "latent GAN": decoded(lambda g: svc.gan.sample(n, g, ts) if svc.gan is not None and style.meter in
                              svc.gan.config.meters else svc.vae.sample_prior(n, g)),
        "prior": decoded(lambda g: svc.vae.sample_prior(n, g)),
        "clip codes": decoded(lambda g: codes[torch.randint(len(codes), (n,), generator=g)]),
    }
    out = {"kind": musician["kind"], "clips": len(given), "windows": style.windows, "fit_s": fit_s}
    for name, draw in draws.items():
        samples, z = draw(torch.Generator().manual_seed(seed))
        out[name] = measure(svc, samples, z, ctx)
    return out


def corpus_samples(svc: MelodyService, n: int, gen: torch.Generator, template: Melody) -> tuple[list, torch.Tensor]:
    """What Generate makes by default for ``template``'s meter (service.sample's order: code bank,
    GAN, Gaussian), and the codes of the melodies."""
    ts = template.time_signature
    if svc.bank is not None and svc.bank.knows(ts):
        return bank_melodies(svc.vae, svc.bank, n, template, Attributes(), 1.0, gen)[:2]
    z = svc.gan.sample(n, gen, ts) if svc.gan is not None and meter_name(ts) in svc.gan.config.meters else \
        svc.vae.sample_prior(n, gen)
    return melodies_from_codes(svc.vae, z, template, 1.0, gen), z


def clip_neighbourhood(svc: MelodyService, codes: torch.Tensor, owners: torch.Tensor, n: int,
                       gen: torch.Generator) -> torch.Tensor:
    """No fitting: the code bank's recipe (models/code_bank.py) on the clips' own codes: a random clip
    window's code moved the bank's ``mix`` towards one of its 4 nearest windows of another clip, plus
    the bank's noise."""
    d = torch.cdist(codes, codes)
    d[owners[:, None] == owners[None, :]] = float("inf")
    others = len(codes) - int(torch.bincount(owners).max())  # the fewest windows any row has in other clips
    near = d.topk(min(4, others), largest=False).indices
    i = torch.randint(len(codes), (n,), generator=gen)
    j = near[i, torch.randint(near.shape[1], (n,), generator=gen)]
    cfg = svc.bank.config
    z = torch.lerp(codes[i], codes[j], cfg.mix)
    return z + cfg.noise * svc.bank.code_std * torch.randn(z.shape, generator=gen)


# -- report ---------------------------------------------------------------------------------------
def bootstrap(x: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> tuple[float, float]:
    means = x[rng.integers(0, len(x), (reps, len(x)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def table(results: list[dict], title: str) -> str:
    lines = [f"{title} ({len(results)} musicians; {np.mean([r['clips'] for r in results]):.1f} clips, "
             f"{np.mean([r['windows'] for r in results]):.0f} windows on average)",
             "| sampler | " + " | ".join(t for _, t, _ in MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
    for s in SAMPLERS:
        lines.append(f"| {s} | " + " | ".join(f"{np.mean([r[s][k] for r in results]):.3f}" for k, _, _ in MEASURES)
                     + " |")
    rng = np.random.default_rng(0)
    for other in ("corpus", "clip neighbourhood"):
        cells = []
        for k, _, higher in MEASURES:
            d = np.array([r["style"][k] - r[other][k] for r in results])
            d = d[~np.isnan(d)]
            lo, hi = bootstrap(d, rng)
            closer = np.mean(d > 0) if higher else np.mean(d < 0)
            cells.append(f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}] {closer:.0%}")
        lines.append(f"| style - {other} [95 % CI] share closer | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_timing(svc: MelodyService, melodies: list[Melody], reps: int, config: StyleConfig) -> str:
    """Fit time of 20 clips x 16 bars of 4/4 (first call in the process, then ``reps`` more)."""
    long = [m.slice(m.pickup_steps, m.pickup_steps + 16 * 16) for m in melodies
            if m.time_signature == (4, 4) and m.total_steps >= m.pickup_steps + 16 * 16]
    rng = np.random.default_rng(1)
    wall, cpu, fractions = [], [], []
    for r in range(reps + 1):
        clips = [long[i] for i in rng.permutation(len(long))[:MAX_CLIPS]]
        t0, c0 = time.perf_counter(), time.process_time()
        style = fit_style(svc, clips, lambda f, _: fractions.append(f), seed=r, config=config)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    w, c = np.array(wall[1:]), np.array(cpu[1:])
    return (f"fit time, {MAX_CLIPS} clips x 16 bars of 4/4 ({style.windows} windows), {config.steps} steps, one "
            f"thread: first call in the process {wall[0]:.2f} s (CPU {cpu[0]:.2f} s: it imports torch._dynamo), then "
            f"over {reps} fits wall median {np.median(w):.2f} s, max {w.max():.2f} s; CPU median {np.median(c):.2f} "
            f"s, max {c.max():.2f} s; {len(fractions) // (reps + 1)} progress calls each")


def draw_rolls(svc: MelodyService, musician: dict, config: StyleConfig, path: Path) -> Path:
    """One sheet: the given clips' windows (first row), then style samples, then corpus samples."""
    style = fit_style(svc, musician["given"], None, 0, config)
    ts = style.time_signature
    template = Melody(notes=(), time_signature=ts)
    gen = torch.Generator().manual_seed(0)
    rows = [("clip", window_melodies(musician["given"], svc.window, ts)[:4]),
            ("style", style_melodies(svc.vae, style, 8, template, 1.0, gen)[0]),
            ("corpus", corpus_samples(svc, 4, gen, template)[0])]
    pngs = []
    for name, ms in rows:  # each sampler starts a new line of four
        pngs += [piano_roll_png(m, title=f"{name} {i + 1}", width=400, height=200) for i, m in enumerate(ms)]
        pngs += [None] * (-len(ms) % 4)
    return tile_sheet(pngs, 4, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--split", default="test", choices=("valid", "test"))
    p.add_argument("--trials", type=int, default=40, help="musicians of each kind")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--timing", type=int, default=5, help="timed fits of 20 clips x 16 bars (0: none)")
    defaults = StyleConfig()
    for name in ("latent_dim", "hidden", "layers", "steps"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    p.add_argument("--kl-weight", type=float, default=defaults.kl_weight)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--pitch-class-bias", type=float, default=style_module.PITCH_CLASS_BIAS,
                   help="decoding lean toward the clips' pitch classes (style.PITCH_CLASS_BIAS)")
    p.add_argument("--oversample", type=int, default=decoding.OVERSAMPLE,
                   help="melodies drawn per one kept (1: no copy filter; service.OVERSAMPLE)")
    p.add_argument("--rolls", type=Path, help="write piano-roll sheets of the first musician of each kind here")
    args = p.parse_args()
    style_module.PITCH_CLASS_BIAS, decoding.OVERSAMPLE = args.pitch_class_bias, args.oversample
    torch.set_num_threads(1)
    config = StyleConfig(args.latent_dim, args.hidden, args.layers, args.kl_weight, args.steps, args.lr)
    svc = MelodyService.from_checkpoints()
    tunes = corpus.load_corpus()
    melodies = tunes.split(args.split)
    timing = fit_timing(svc, melodies, args.timing, config) if args.timing else ""  # first: its first call is cold
    rng = np.random.default_rng(0)
    musicians = tune_musicians(melodies, svc.window, args.trials, rng) + \
        collection_musicians(tunes, args.split, args.trials, rng)
    if args.rolls:
        for kind in ("tune", "collection"):
            mus = next(m for m in musicians if m["kind"] == kind)
            print(f"wrote {draw_rolls(svc, mus, config, args.rolls / f'style_{kind}.png')} ({mus['name']})")
    print(f"{args.split} split, {config}; {args.samples} samples per sampler, temperature 1.0; pitch-class "
          f"bias {args.pitch_class_bias}, {args.oversample} drawn per sample kept", flush=True)
    t0 = time.time()
    results = []
    for i, mus in enumerate(musicians):
        results.append(run_trial(svc, mus, i, args.samples, config))
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{len(musicians)} musicians, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    if results:
        print("z dist, re-encoded, pitch gap, copies: lower is closer; stats, key: higher is closer")
        for kind in ("tune", "collection"):
            print(table([r for r in results if r["kind"] == kind], f"\none {kind}"))
        print(table(results, "\nall"))
    print("\n" + timing)


if __name__ == "__main__":
    main()
