"""Build and measure the corpus-neighbourhood sampler (models/code_bank.py).

    python -m musicgen_app.training.train_bank [--out checkpoints/code_bank.safetensors]  # build; noise chosen on valid
    python -m musicgen_app.training.train_bank --evaluate    # test split: bank / GAN / Gaussian side by side, novelty
    python -m musicgen_app.training.train_bank --controls    # test split: attribute controls, 200 samples a setting
    python -m musicgen_app.training.train_bank --rolls       # piano rolls of 16 bank samples, into /tmp/bank
    python -m musicgen_app.training.train_bank --tune-bias   # choose only the decoding pitch-class bias again
    python -m musicgen_app.training.train_bank --positions   # only record each window's tune and bar again
    python -m musicgen_app.training.train_bank --keys        # only find each window's key (and ending) again
    python -m musicgen_app.training.train_bank --form-rolls  # 16-bar samples beside real tunes, with their form

The bank: the training split's windows (all meters, untransposed), cut as train_gan cuts the GAN's
training codes (train_gan.meter_windows), every ``--stride`` windows of a melody plus its last one,
so that phrase endings are in it, and each window's ``--neighbours`` nearest windows of other tunes
of its meter (by the cached codes). The noise unit is each dimension's sd over all training codes
(train_gan's code cache, /tmp/gan/codes.npz).

How far a code moves towards its partner (mix) and the noise are chosen on the valid split: 400
decoded 4/4 samples per pair in ``--grid`` against the valid 4/4 windows, scored by the classifier
two-sample test (train_gan.classifier_two_sample) and the six statistic overlaps, and by how much
they copy: the share of each sample's bars that equal a bar of the window it grew from (and of its
partner), its best step agreement with any 4/4 training window, and the share of its bars found in
that nearest training window. Held-out valid windows set the bar for the last: a sampler should
not copy the training set more than new tunes of the corpus resemble it (the spirit of Meehan,
Chaudhuri, Dasgupta 2020, "A non-parametric test to detect data-copying in generative models").
The pair kept is the one with the lowest classifier accuracy among those whose samples do not share
measurably more bars with their nearest training window than valid windows do (choose_sampling).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .. import tokens as tk
from ..melody import Melody, estimate_key
from ..models.checkpoints import load_checkpoint, read_metadata, resave_checkpoint, save_checkpoint
from ..models.code_bank import Attributes, CodeBank, CodeBankConfig, window_attributes
from ..models.vae import MelodyVAE
from ..paths import CHECKPOINTS
from ..service.melody_service import bank_melodies
from ..views import bar_similarity_png, piano_roll_png, tile_sheet
from .batches import vae_windows, window_starts
from .corpus import DEFAULT_CACHE, load_corpus
from .stats import TARGETS, compare_bar_stats, compare_stats
from .train_gan import (
    GAN_PATH,
    VAE_PATH,
    Log,
    classifier_two_sample,
    decode_codes,
    load_codes,
    meter_windows,
    nearest_training_window,
    samplers,
    shared_bar_share,
    window_melodies,
)

BANK_PATH = CHECKPOINTS / "code_bank.safetensors"
WORK = Path("/tmp/bank")
CODES = Path("/tmp/gan/codes.npz")  # shared with train_gan
# (mix, noise) pairs tried on the valid split
GRID = ((0, 0.3), (0, 0.5), (0, 0.6), (0, 0.7), (0.3, 0), (0.3, 0.2), (0.3, 0.4), (0.4, 0.2), (0.4, 0.3), (0.5, 0),
        (0.5, 0.2), (0.5, 0.3), (0.5, 0.4))
BIAS_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # decoding pitch-class biases tried (CodeBank.decoding_bias)


# -- the bank -------------------------------------------------------------------------------------
def bank_windows(melodies: list[Melody], window: int, stride: int) -> dict:
    """Training windows one bar apart (the code cache's order), thinned to every ``stride``-th window
    of each melody plus its last: tokens (N, window), meter names (N,), each window's melody (N,) and
    its row in the code cache (N,)."""
    tokens, meters, owners = [], [], []
    for name, w, own in meter_windows(melodies, window, 1):
        tokens.append(w.tokens)
        meters += [name] * len(w)
        owners.append(own)
    tokens, owners = np.concatenate(tokens), np.concatenate(owners)
    first = np.r_[True, owners[1:] != owners[:-1]]  # each melody's windows are consecutive
    position = np.arange(len(owners)) - np.maximum.accumulate(np.where(first, np.arange(len(owners)), 0))
    last = np.r_[owners[1:] != owners[:-1], True]
    keep = np.nonzero((position % stride == 0) | last)[0]
    # the bar each window starts on: windows with too few notes are left out, so a window's
    # position among its melody's windows is not always its bar
    starts = {}
    for i in np.unique(owners):
        m = melodies[i]
        starts[i] = [(s - m.pickup_steps) // m.bar_steps for s in window_starts(m, tk.encode(m).tokens, window)]
    bar = np.array([starts[o][p] for o, p in zip(owners[keep], position[keep])])
    return {"tokens": tokens[keep], "meters": np.array(meters)[keep], "melody": owners[keep], "code_row": keep,
            "bar": bar}


def build(args, log, corpus, codes) -> CodeBank:
    vae_window = load_checkpoint(args.vae, kind="vae")[0].config.window
    w = bank_windows(corpus.split("train"), vae_window, args.stride)
    t0 = time.time()
    code_std = torch.from_numpy(codes["train_codes"].std(0))
    bank = CodeBank.from_windows(w["tokens"], w["meters"].tolist(), code_std, w["melody"], w["bar"],
                                 neighbours=args.neighbours)
    bank.set_neighbours(torch.from_numpy(codes["train_codes"][w["code_row"]]), torch.from_numpy(w["melody"]))
    log(f"bank of {len(w['tokens'])} windows ({len(bank.config.meters)} meters) in {time.time() - t0:.0f} s")
    return bank


def with_sampling(bank: CodeBank, mix: float | None = None, noise: float | None = None,
                  pitch_class_bias: float | None = None) -> CodeBank:
    """The bank with other sampling settings (None: keep the bank's)."""
    given = {"mix": mix, "noise": noise, "pitch_class_bias": pitch_class_bias}
    out = CodeBank(dataclasses.replace(bank.config, **{k: v for k, v in given.items() if v is not None}))
    out.load_state_dict(bank.state_dict())
    return out.eval()


# -- measuring ------------------------------------------------------------------------------------
def novelty(melodies: list[Melody], train_tokens: np.ndarray, sources: dict | None = None) -> dict:
    """train_gan.nearest_training_window, and with ``sources`` (name -> the window tokens each sample
    grew from) the share of bars found in those."""
    out = nearest_training_window(melodies, train_tokens)
    for name, rows in (sources or {}).items():
        out[f"bars_in_{name}"] = float(np.mean([shared_bar_share(m, r) for m, r in zip(melodies, rows)]))
    return out


def realism(melodies: list[Melody], reference: list[Melody], seed: int) -> dict:
    stats = {**compare_stats(melodies, reference), **compare_bar_stats(melodies, reference)}
    return {
        "c2st": classifier_two_sample(melodies, reference, seed=seed)["accuracy"],
        "overlaps": {k: stats[k]["overlap"] for k in TARGETS},
        "means": {k: [stats[k]["generated_mean"], stats[k]["heldout_mean"]] for k in TARGETS},
    }


def bank_samples(vae: MelodyVAE, bank: CodeBank, n: int, seed: int, attrs: Attributes | None = None,
                 time_signature=(4, 4), temperature: float = 1.0) -> tuple[list[Melody], dict]:
    """``n`` melodies made as Generate makes them, and the (transposed) windows they grew from."""
    gen = torch.Generator().manual_seed(seed)
    melodies, _, picked = bank_melodies(vae, bank, n, Melody(notes=(), time_signature=time_signature),
                                     attrs or Attributes(), temperature, gen)
    sources = {"source": bank.windows(picked.index, picked.shift).numpy()}
    if bank.config.mix:
        sources["partner"] = bank.windows(picked.partner, picked.partner_shift).numpy()
    return melodies, sources


def four_four(melodies: list[Melody]) -> list[Melody]:
    return [m for m in melodies if m.time_signature == (4, 4)]


def choose_sampling(results: dict, reference: dict) -> tuple[float, float]:
    """The (mix, noise) whose samples pass best for held-out windows (lowest classifier accuracy)
    among those whose samples do not share measurably more bars with their nearest training window
    than held-out windows do (one-sided, two standard errors of the difference); the one that shares
    fewest when none passes."""
    def copies_more(r):
        se = np.hypot(r["bars_in_nearest_train_se"], reference["bars_in_nearest_train_se"])
        return r["bars_in_nearest_train"] - reference["bars_in_nearest_train"] > 2 * se

    novel = [k for k, r in results.items() if not copies_more(r)]
    if not novel:
        return min(results, key=lambda k: results[k]["bars_in_nearest_train"])
    return min(novel, key=lambda k: results[k]["c2st"])


def sweep(args, log, bank: CodeBank, corpus, vae: MelodyVAE) -> tuple[tuple[float, float], dict]:
    """Valid-split realism and copying of each (mix, noise) in ``args.grid``; the chosen pair and a record."""
    valid = window_melodies(four_four(corpus.split("valid")), vae.config.window)
    train_tokens = vae_windows(four_four(corpus.split("train")), vae.config.window, stride_bars=1).tokens
    ref = novelty(valid, train_tokens)
    log(f"valid 4/4 windows ({len(valid)}) against training windows: {json.dumps(ref)}")
    results = {}
    for mix, noise in args.grid:
        t0 = time.time()
        melodies, sources = bank_samples(vae, with_sampling(bank, mix, noise), args.n, args.seed)
        r = results[mix, noise] = {**realism(melodies, valid, args.seed), **novelty(melodies, train_tokens, sources)}
        log(f"mix {mix} noise {noise}: c2st {r['c2st']:.3f} overlaps "
            + " ".join(f"{v:.2f}" for v in r["overlaps"].values())
            + " | " + " ".join(f"{k} {v:.3f}" for k, v in r.items() if not isinstance(v, dict) and k != "c2st")
            + f" ({time.time() - t0:.0f} s)")
    chosen = choose_sampling(results, ref)
    record = {"valid_heldout_novelty": ref, "chosen": {"mix": chosen[0], "noise": chosen[1]},
              "valid": [{"mix": k[0], "noise": k[1], **v} for k, v in results.items()]}
    return chosen, record


def tune_bias(args, log, bank: CodeBank, corpus, vae: MelodyVAE) -> tuple[float, list]:
    """Valid-split realism and copying of each decoding pitch-class bias in ``args.bias_grid``, each
    measured with two seeds; the one with the lowest mean classifier accuracy, and a record."""
    valid = window_melodies(four_four(corpus.split("valid")), vae.config.window)
    train_tokens = vae_windows(four_four(corpus.split("train")), vae.config.window, stride_bars=1).tokens
    record = []
    for beta in args.bias_grid:
        t0 = time.time()
        runs = []
        for seed in (args.seed, args.seed + 1):
            melodies, sources = bank_samples(vae, with_sampling(bank, pitch_class_bias=beta), args.n, seed)
            runs.append({**realism(melodies, valid, seed), **novelty(melodies, train_tokens, sources)})
        r = {"pitch_class_bias": beta, "c2st": float(np.mean([x["c2st"] for x in runs])),
             "overlaps": {k: float(np.mean([x["overlaps"][k] for x in runs])) for k in TARGETS},
             "bars_in_nearest_train": float(np.mean([x["bars_in_nearest_train"] for x in runs]))}
        record.append(r)
        log(f"pitch-class bias {beta}: c2st {r['c2st']:.3f} overlaps "
            + " ".join(f"{v:.2f}" for v in r["overlaps"].values())
            + f" | bars in nearest training window {r['bars_in_nearest_train']:.3f} ({time.time() - t0:.0f} s)")
    return min(record, key=lambda r: r["c2st"])["pitch_class_bias"], record


def train(args, log) -> None:
    corpus = load_corpus(args.corpus)
    codes = load_codes(args.vae, corpus, 1, 4, CODES, log)
    vae, _ = load_checkpoint(args.vae, kind="vae")
    bank = build(args, log, corpus, codes)
    (mix, noise), record = sweep(args, log, bank, corpus, vae)
    log(f"chosen on the valid split: mix {mix}, noise {noise}")
    bank = with_sampling(bank, mix, noise)
    beta, record["valid_pitch_class_bias"] = tune_bias(args, log, bank, corpus, vae)
    log(f"chosen on the valid split: pitch-class bias {beta}")
    record["chosen"]["pitch_class_bias"] = beta
    vae_digest = read_metadata(args.vae)["weights_sha256"]
    save_checkpoint(args.out, with_sampling(bank, pitch_class_bias=beta), data_fingerprint=corpus.fingerprint,
                    metrics=record, extra={"train_command": args.command, "vae_weights_sha256": vae_digest})
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


def retune_bias(args, log) -> None:
    """Only the decoding bias of the bank at ``args.bank``, chosen again on the valid split; the
    windows, neighbours, mix and noise stay, and so does the record of how they were chosen."""
    vae, _ = load_checkpoint(args.vae, kind="vae")
    bank, meta = load_checkpoint(args.bank, kind="code_bank")
    beta, sweep_record = tune_bias(args, log, bank, load_corpus(args.corpus), vae)
    log(f"chosen on the valid split: pitch-class bias {beta}")
    record = dict(meta["metrics"])
    record["valid_pitch_class_bias"] = sweep_record
    record.setdefault("chosen", {})["pitch_class_bias"] = beta
    resave_checkpoint(args.bank, with_sampling(bank, pitch_class_bias=beta), metrics=record)
    log(f"wrote {args.bank}")


def record_positions(args, log) -> None:
    """Each window's tune and starting bar in the bank at ``args.bank`` (which 8- and 16-bar Generate
    chains), from the corpus it was built from; the windows, neighbours and settings stay."""
    # not load_checkpoint: a bank saved before positions were recorded lacks those two buffers
    bank = CodeBank(CodeBankConfig(**json.loads(read_metadata(args.bank)["config"])))
    missing, unknown = bank.load_state_dict(load_file(args.bank), strict=False)
    if unknown or set(missing) - {"tune", "bar"}:
        raise SystemExit(f"{args.bank} is not a code bank of this version ({missing}, {unknown}).")
    w = bank_windows(load_corpus(args.corpus).split("train"), bank.config.window, args.stride)
    if not np.array_equal(w["tokens"], bank.tokens.numpy()):
        raise SystemExit(f"{args.bank} holds other windows than --stride {args.stride} of this corpus gives; "
                         "build the bank again (python -m musicgen_app.training.train_bank).")
    bank.set_positions(w["melody"], w["bar"])
    resave_checkpoint(args.bank, bank)
    log(f"wrote {args.bank}: {len(np.unique(w['melody']))} tunes")


def record_keys(args, log) -> None:
    """Each window's key and whether it ends on its tonic in the bank at ``args.bank``, found again
    with the current melody.estimate_key; the windows, neighbours, positions and settings stay."""
    bank, _ = load_checkpoint(args.bank, kind="code_bank")
    t0 = time.time()
    changed = bank.set_attributes()
    resave_checkpoint(args.bank, bank)
    log(f"wrote {args.bank}: {changed} of {bank.config.size} windows' keys changed ({time.time() - t0:.0f} s)")


# -- test split -----------------------------------------------------------------------------------
def run_evaluation(args, log) -> dict:
    """Bank, GAN, Gaussian (and train_gan's other baselines) side by side on held-out 4/4 windows."""
    vae, _ = load_checkpoint(args.vae, kind="vae")
    bank, _ = load_checkpoint(args.bank, kind="code_bank")
    corpus = load_corpus(args.corpus)
    test = four_four(corpus.split("test"))
    reference = window_melodies(test, vae.config.window)
    train_tokens = vae_windows(four_four(corpus.split("train")), vae.config.window, stride_bars=1).tokens
    gan = load_checkpoint(args.gan, kind="latent_gan")[0] if args.gan.exists() else None
    results = {}
    t0 = time.time()
    melodies, sources = bank_samples(vae, bank, args.n, args.seed)
    results[f"bank (mix {bank.config.mix:g}, noise {bank.config.noise:g})"] = {
        **realism(melodies, reference, args.seed), **novelty(melodies, train_tokens, sources)}
    log(f"bank measured in {time.time() - t0:.0f} s")
    for name, sample_z in samplers(vae, gan, dict(np.load(CODES)) if CODES.exists() else None,
                                   four_four(corpus.split("valid"))).items():
        t0 = time.time()
        gen = torch.Generator().manual_seed(args.seed)
        melodies = decode_codes(vae, sample_z(args.n, gen), (4, 4), 1.0, gen)
        results[name] = {**realism(melodies, reference, args.seed), **novelty(melodies, train_tokens)}
        log(f"{name} measured in {time.time() - t0:.0f} s")
    results["held-out test windows"] = novelty(reference, train_tokens)
    print_table(results, f"Test split: {len(reference)} held-out 4-bar 4/4 windows from {len(test)} melodies; "
                f"{args.n} samples per sampler, temperature 1.0, seed {args.seed}.")
    return results


def print_table(results: dict, title: str) -> None:
    names = list(results)
    rows = [title, "", "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k in TARGETS:
        cells = [f"{r['overlaps'][k]:.2f} ({r['means'][k][0]:.2f} / {r['means'][k][1]:.2f})" if "overlaps" in r else ""
                 for r in results.values()]
        rows.append(f"| {k} overlap (generated mean / held-out) | " + " | ".join(cells) + " |")
    for k in ("c2st", "nearest_train_agreement", "bars_in_nearest_train", "train_copies", "bars_in_source",
              "bars_in_partner"):
        rows.append(f"| {k} | " + " | ".join(f"{r[k]:.3f}" if k in r else "" for r in results.values()) + " |")
    print("\n".join(rows), flush=True)


# -- attribute controls ---------------------------------------------------------------------------
CONTROLS = {
    "notes_per_bar": (2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
    "range_semitones": (5, 7, 9, 12, 15),
    "key": ("G major", "D major", "A minor", "E minor", "Bb major", "F# minor", "Eb major", "C# minor"),
    "mode": ("major", "minor"),
    "ends_on_tonic": (True,),
}


def measured(m: Melody) -> dict:
    return window_attributes(tk.encode(m).tokens, m.time_signature)


def matching_reference(windows: np.ndarray, attrs: list[dict], want: Attributes, bank: CodeBank) -> list[Melody]:
    """Held-out windows that meet ``want`` within the bank's tolerances, moved to its tonic."""
    c, probe, out = bank.config, Melody(notes=(), time_signature=(4, 4)), []
    for row, a in zip(windows, attrs):
        if (want.notes_per_bar is not None and abs(a["notes_per_bar"] - want.notes_per_bar) > c.density_tolerance) or \
                (want.range_semitones is not None and abs(a["range_semitones"] - want.range_semitones) >
                 c.range_tolerance) or (want.mode is not None and a["minor"] != (want.mode == "minor")) or \
                (want.ends_on_tonic and not a["ends_on_tonic"]):
            continue
        m = tk.decode(row, probe)
        m = m.replace(key=estimate_key(m.notes))
        out.append(m if want.tonic is None else m.transpose((want.tonic - a["tonic"] + 6) % 12 - 6))
    return out


def run_controls(args, log) -> dict:
    """200 samples per setting of each control: requested against measured after decoding, and the
    classifier test against held-out test windows that meet the same request."""
    vae, _ = load_checkpoint(args.vae, kind="vae")
    bank, _ = load_checkpoint(args.bank, kind="code_bank")
    corpus = load_corpus(args.corpus)
    held = vae_windows(four_four(corpus.split("test")), vae.config.window, stride_bars=1).tokens
    held = held[np.random.default_rng(args.seed).permutation(len(held))]  # the classifier sees many tunes
    held_attrs = [window_attributes(r, (4, 4)) for r in held]
    settings = [("free", Attributes())]
    for name, values in CONTROLS.items():
        for v in values:
            attrs = Attributes.from_key(v) if name in ("key", "mode") else Attributes(**{name: v})
            settings.append((f"{name} {v}", attrs))
    settings.append(("D minor, 3 notes per bar, ends on tonic",
                     Attributes(notes_per_bar=3.0, mode="minor", tonic=2, ends_on_tonic=True)))
    out = {}
    for i, (label, attrs) in enumerate(settings):
        t0 = time.time()
        melodies, _ = bank_samples(vae, bank, args.n_controls, args.seed + i, attrs)
        got = [measured(m) for m in melodies]
        ref = matching_reference(held, held_attrs, attrs, bank)
        r = out[label] = {
            "notes_per_bar": float(np.mean([g["notes_per_bar"] for g in got])),
            "range_semitones": float(np.mean([g["range_semitones"] for g in got])),
            "key_hit": float(np.mean([m.key == attrs.key for m in melodies])) if attrs.key else None,
            "mode_hit": float(np.mean([m.key.mode == attrs.mode for m in melodies])) if attrs.mode else None,
            "minor_share": float(np.mean([m.key.mode == "minor" for m in melodies])),
            "ends_on_tonic": float(np.mean([g["ends_on_tonic"] for g in got])),
            "c2st": classifier_two_sample(melodies, ref, seed=args.seed)["accuracy"] if len(ref) >= 20 else None,
            "reference_windows": len(ref),
            "_got": got,
        }
        log(f"{label}: " + json.dumps({k: v for k, v in r.items() if k != "_got"}) + f" ({time.time() - t0:.0f} s)")
    summary = {}
    for name in ("notes_per_bar", "range_semitones"):
        asked = [v for v in CONTROLS[name] for _ in range(args.n_controls)]
        got = [g[name] for v in CONTROLS[name] for g in out[f"{name} {v}"]["_got"]]
        summary[name] = {"correlation": float(np.corrcoef(asked, got)[0, 1]),
                         "mean_abs_error": float(np.mean(np.abs(np.array(asked) - np.array(got))))}
    summary["key_hit"] = float(np.mean([out[f"key {k}"]["key_hit"] for k in CONTROLS["key"]]))
    summary["mode_hit"] = float(np.mean([out[f"mode {k}"]["mode_hit"] for k in CONTROLS["mode"]]))
    summary["ends_on_tonic_hit"] = out["ends_on_tonic True"]["ends_on_tonic"]
    print(json.dumps(summary, indent=1))
    lines = ["| setting | notes/bar | range | key hit | mode hit | ends on tonic | c2st (held-out windows) |",
             "|---|---|---|---|---|---|---|"]
    for label, r in out.items():
        def f(v, fmt="{:.2f}"):
            return "" if v is None else fmt.format(v)
        lines.append(f"| {label} | {r['notes_per_bar']:.2f} | {r['range_semitones']:.1f} | {f(r['key_hit'])} | "
                     f"{f(r['mode_hit'])} | {r['ends_on_tonic']:.2f} | {f(r['c2st'], '{:.3f}')} "
                     f"({r['reference_windows']}) |")
    print("\n".join(lines), flush=True)
    return {"summary": summary, "settings": {k: {j: v for j, v in r.items() if j != "_got"} for k, r in out.items()}}


def draw_rolls(args, log) -> None:
    """16 bank samples as one sheet (and each roll), 4/4, temperature 1.0."""
    vae, _ = load_checkpoint(args.vae, kind="vae")
    bank, _ = load_checkpoint(args.bank, kind="code_bank")
    melodies, _ = bank_samples(vae, bank, 16, args.seed)
    path = tile_sheet([piano_roll_png(m, title=f"bank {i + 1} ({m.key.name})", width=360, height=170)
                       for i, m in enumerate(melodies)], 4, args.rolls_out)
    log(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")


def draw_form_rolls(args, log) -> None:
    """Four 16-bar bank melodies (4/4, temperature 1.0) above the first 16 bars of four held-out
    test tunes, each as a piano roll beside its bar self-similarity matrix (views.bar_similarity)."""
    from PIL import Image

    vae, _ = load_checkpoint(args.vae, kind="vae")
    bank, _ = load_checkpoint(args.bank, kind="code_bank")
    gen = torch.Generator().manual_seed(args.seed)
    made, _, _ = bank_melodies(vae, bank, 4, Melody(notes=(), time_signature=(4, 4)), Attributes(), 1.0, gen, 4)
    real = [m.slice(m.pickup_steps, m.pickup_steps + 256) for m in four_four(load_corpus(args.corpus).split("test"))
            if m.total_steps - m.pickup_steps >= 256][:: 7][:4]
    tiles = []
    for name, group in (("generated", made), ("held-out tune", real)):
        for i, m in enumerate(group):
            roll = Image.open(io.BytesIO(piano_roll_png(m, title=f"{name} {i + 1} ({m.key.name})", width=760,
                                                        height=200)))
            sim = Image.open(io.BytesIO(bar_similarity_png(m, size=200)))
            tile = Image.new("RGB", (960, 200), "white")
            tile.paste(roll, (0, 0))
            tile.paste(sim, (760, 0))
            buf = io.BytesIO()
            tile.save(buf, format="PNG")
            tiles.append(buf.getvalue())
    path = tile_sheet(tiles, 1, args.form_rolls_out)
    log(f"wrote {path} ({path.stat().st_size / 1e3:.0f} KB)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evaluate", action="store_true", help="test split: bank / GAN / Gaussian side by side")
    ap.add_argument("--controls", action="store_true", help="test split: the attribute controls")
    ap.add_argument("--rolls", action="store_true", help="a sheet of piano rolls of 16 samples")
    ap.add_argument("--rolls-out", type=Path, default=WORK / "rolls_bank.png")
    ap.add_argument("--form-rolls", action="store_true", help="16-bar samples beside held-out tunes, with their form")
    ap.add_argument("--form-rolls-out", type=Path, default=CHECKPOINTS / "form_rolls.png")
    ap.add_argument("--out", type=Path, default=BANK_PATH)
    ap.add_argument("--bank", type=Path, default=BANK_PATH, help="the checkpoint --evaluate, --controls, --rolls read")
    ap.add_argument("--gan", type=Path, default=GAN_PATH)
    ap.add_argument("--vae", type=Path, default=VAE_PATH)
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--stride", type=int, default=2, help="windows (bars) between a melody's bank windows")
    ap.add_argument("--neighbours", type=int, default=4, help="partners kept per window")
    ap.add_argument("--grid", type=lambda t: tuple(float(x) for x in t.split(":")), nargs="+", default=GRID,
                    help="mix:noise pairs tried on the valid split")
    ap.add_argument("--tune-bias", action="store_true",
                    help="choose only the decoding pitch-class bias of --bank again, on the valid split")
    ap.add_argument("--positions", action="store_true",
                    help="only record each window's tune and bar in --bank (for 8- and 16-bar Generate)")
    ap.add_argument("--keys", action="store_true",
                    help="only find each window's key and tonic ending in --bank again (after estimate_key changed)")
    ap.add_argument("--bias-grid", type=float, nargs="+", default=BIAS_GRID,
                    help="decoding pitch-class biases tried on the valid split")
    ap.add_argument("--n", type=int, default=400, help="samples per sampler or grid point")
    ap.add_argument("--n-controls", type=int, default=200, help="samples per control setting")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    args.command = " ".join(["python -m musicgen_app.training.train_bank", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    log = Log(None if (args.evaluate or args.controls or args.rolls or args.form_rolls) else WORK / "build.log")
    if args.form_rolls:
        draw_form_rolls(args, log)
        return
    if args.positions:
        record_positions(args, log)
        return
    if args.keys:
        log(f"command: {args.command}")
        record_keys(args, log)
        return
    if args.tune_bias:
        log(f"command: {args.command}")
        retune_bias(args, log)
        return
    if args.evaluate:
        run_evaluation(args, log)
    if args.controls:
        run_controls(args, log)
    if args.rolls:
        draw_rolls(args, log)
    if not (args.evaluate or args.controls or args.rolls):
        log(f"command: {args.command}")
        train(args, log)


if __name__ == "__main__":
    main()
