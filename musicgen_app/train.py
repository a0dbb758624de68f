"""Train the melody models on the corpus (or your own MIDI folder).

    python -m musicgen_app.train lstm [--minutes 40] [--resume]
    python -m musicgen_app.train vae  [--minutes 40] [--resume]
    python -m musicgen_app.train lstm --data ~/my_midi   # your own folder of MIDI files

Seeded; transposition augmentation on the train split only; validation after every epoch; early
stopping on the validation loss; the best model so far is written to ``--out`` after every epoch
(a self-describing checkpoint) and the full training state to ``data/runs/<kind>-<tag>-state.safetensors``
so ``--resume`` continues where a stopped run left off. Progress goes to stderr (tqdm) and to
``data/runs/<kind>.log``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from tqdm import tqdm

from . import data as corpus_data
from .batches import IGNORE, lstm_batch, lstm_chunks, lstm_scores, vae_batch, vae_windows
from .checkpoints import load_checkpoint, resave_checkpoint, save_checkpoint
from .models.lstm import LSTMConfig, MelodyLSTM
from .models.vae import MelodyVAE, VAEConfig, kl_divergence

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "data" / "runs"
LN2 = math.log(2)


class Log:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = path.open("a")

    def __call__(self, msg: str):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        tqdm.write(line)
        self.f.write(line + "\n")
        self.f.flush()


# -- losses ---------------------------------------------------------------------------------------
def lstm_loss(model, batch):
    inp, feats, target = batch
    logits, _ = model(inp, feats)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)


def vae_loss(model, batch, beta: float, input_dropout: float = 0.0):
    toks, feats = batch
    logits, mu, sigma = model(toks, feats, input_dropout=input_dropout)
    recon = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), toks.reshape(-1), reduction="none")
    recon = recon.view(toks.shape).sum(1).mean()
    kl = kl_divergence(mu, sigma).mean()
    loss = recon + beta * torch.clamp(kl - model.config.free_bits, min=0)
    acc = (logits.argmax(-1) == toks).float().mean()
    return loss, recon, kl, acc


def evaluate_lstm(model, data, batch_size=128) -> dict:
    model.eval()
    nll, pred, target = lstm_scores(model, (lstm_batch(data, np.arange(s, min(s + batch_size, len(data))))
                                            for s in range(0, len(data), batch_size)))
    model.train()
    n = len(target)
    return {"loss": nll / n, "bits_per_step": nll / n / LN2, "accuracy": float((pred == target).mean())}


@torch.no_grad()
def evaluate_vae(model, data, batch_size=256) -> dict:
    model.eval()
    recon = kl = acc = 0.0
    gen = torch.Generator().manual_seed(0)
    for s in range(0, len(data), batch_size):
        toks, feats = vae_batch(data, np.arange(s, min(s + batch_size, len(data))))
        logits, mu, sigma = model(toks, feats, generator=gen)
        recon += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), toks.reshape(-1), reduction="sum").item()
        kl += kl_divergence(mu, sigma).sum().item()
        acc += (logits.argmax(-1) == toks).float().mean(1).sum().item()
    # free-running (argmax) reconstruction from the posterior mean, what Interpolate relies on
    toks, feats = vae_batch(data, np.arange(min(512, len(data))))
    mu, _ = model.encode(toks, feats)
    argmax_acc = (model.generate(mu, feats) == toks).float().mean().item()
    model.train()
    n = len(data)
    c = model.config
    objective = (recon + c.beta_max * max(0.0, kl - c.free_bits * n)) / n
    # Checkpoints are selected on free-running reconstruction, which is what interpolation uses;
    # the teacher-forced objective can improve while free decoding does not.
    return {"loss": 1.0 - argmax_acc, "objective": objective, "recon": recon / n, "kl": kl / n,
            "tf_accuracy": acc / n, "argmax_accuracy": argmax_acc}


# -- resumable state ------------------------------------------------------------------------------
def save_state(path: Path, model, opt, info: dict):
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().contiguous().clone()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"info": json.dumps(info)})
    tmp.replace(path)


def load_state(path: Path, model, opt) -> dict:
    from safetensors import safe_open

    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    sd = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            sd["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(sd)
    with safe_open(str(path), framework="pt") as f:
        return json.loads(f.metadata()["info"])


# -- the loop -------------------------------------------------------------------------------------
def train(args) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    RUNS.mkdir(parents=True, exist_ok=True)
    log = Log(RUNS / f"{args.kind}.log")
    if args.data:
        cache = RUNS / f"user-{args.data.name}.npz"
        corpus_data.main(["--midi-dir", str(args.data), "--out", str(cache)])
        corpus = corpus_data.load(cache)
    else:
        corpus = corpus_data.load(args.corpus)
    train_m, valid_m = corpus.split("train"), corpus.split("valid")
    log(f"corpus {corpus.fingerprint}: {len(train_m)} train / {len(valid_m)} valid melodies")

    if args.init_from:
        # weights and config from a shipped checkpoint, when the resumable state is not at hand
        model, _ = load_checkpoint(args.init_from, kind=args.kind)
        model.train()
        log(f"initialised from {args.init_from} ({model.config})")
    elif args.kind == "lstm":
        model = MelodyLSTM(LSTMConfig(hidden=args.hidden, layers=args.layers))
    else:
        model = MelodyVAE(VAEConfig(free_bits=args.free_bits, beta_max=args.beta_max, z_dim=args.z_dim,
                                    enc_hidden=args.enc_hidden, dec_hidden=args.dec_hidden,
                                    dec_layers=args.dec_layers, segments=args.segments))
    if args.kind == "lstm":
        lags = model.config.lookback_bars
        train_set, valid_set = lstm_chunks(train_m, args.seq_len, lags), lstm_chunks(valid_m, args.seq_len, lags)
    else:
        window = model.config.window
        train_set = vae_windows(train_m, window, stride_bars=args.stride_bars)
        valid_set = vae_windows(valid_m, window, stride_bars=4)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{args.kind}: {n_params / 1e6:.2f}M parameters, {len(train_set)} train rows, {len(valid_set)} valid rows")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    out = Path(args.out or ROOT / "checkpoints" / f"{args.kind}.safetensors")
    # one state file per output, so a trial run elsewhere never resumes into the real one
    tag = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]
    state_path = RUNS / f"{args.kind}-{tag}-state.safetensors"
    info = {"epoch": 0, "step": 0, "best": float("inf"), "bad_epochs": 0, "elapsed": 0.0}
    if args.resume and state_path.exists():
        info = load_state(state_path, model, opt)
        log(f"resumed from {state_path}: {info}")
    start = time.time() - info["elapsed"]
    deadline = start + args.minutes * 60
    model.train()
    while info["epoch"] < args.epochs and time.time() < deadline and info["bad_epochs"] < args.patience:
        for group in opt.param_groups:  # step decay per epoch; a resumed run picks up where it was
            group["lr"] = args.lr * args.lr_decay ** info["epoch"]
        order = rng.permutation(len(train_set))
        bar = tqdm(range(0, len(order) - args.batch + 1, args.batch), desc=f"epoch {info['epoch'] + 1}",
                   mininterval=10)
        for s in bar:
            idx = order[s:s + args.batch]
            if args.kind == "lstm":
                loss = lstm_loss(model, lstm_batch(train_set, idx, rng))
                shown = {"bits": f"{loss.item() / LN2:.3f}"}
            else:
                beta = model.config.beta_max * min(1.0, info["step"] / args.beta_steps)
                loss, recon, kl, acc = vae_loss(model, vae_batch(train_set, idx, rng), beta, args.input_dropout)
                shown = {"recon": f"{recon.item():.1f}", "kl": f"{kl.item():.1f}", "acc": f"{acc.item():.3f}"}
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            info["step"] += 1
            if info["step"] % 50 == 0:
                bar.set_postfix(shown)
            if info["step"] % 500 == 0:
                log(f"step {info['step']} {shown}")
            if time.time() > deadline:
                break
        info["epoch"] += 1
        info["elapsed"] = time.time() - start
        metrics = evaluate_lstm(model, valid_set) if args.kind == "lstm" else evaluate_vae(model, valid_set)
        improved = metrics["loss"] < info["best"] - 1e-4
        if improved:
            info["best"], info["bad_epochs"] = metrics["loss"], 0
            save_checkpoint(out, model, data_fingerprint=corpus.fingerprint, train_steps=info["step"],
                            metrics={"valid": metrics},
                            extra={"train_command": args.command,
                                   "train_seconds": round(info["elapsed"])})
        else:
            info["bad_epochs"] += 1
        save_state(state_path, model, opt, info)
        log(f"epoch {info['epoch']} step {info['step']} {info['elapsed'] / 60:.1f} min valid "
            f"{json.dumps({k: round(v, 4) for k, v in metrics.items()})}{' saved' if improved else ''}")
    if args.kind == "vae" and out.exists():
        best, _ = load_checkpoint(out, kind="vae")
        fit_prior(best, train_set)
        resave_checkpoint(out, best)
        log(f"sampling prior fitted to {len(train_set)} training windows' posterior means")
    log(f"done: best valid loss {info['best']:.4f}; checkpoint {out}")


@torch.no_grad()
def fit_prior(model: MelodyVAE, data, batch_size: int = 1024) -> None:
    """Fit the VAE's sampling prior to the posterior means of ``data`` (see MelodyVAE.fit_prior)."""
    model.eval()
    mus = [model.encode(torch.from_numpy(data.tokens[s:s + batch_size]),
                        torch.from_numpy(data.feats[s:s + batch_size]))[0]
           for s in range(0, len(data), batch_size)]
    model.fit_prior(torch.cat(mus))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("lstm", "vae"))
    ap.add_argument("--data", type=Path, help="a folder of your own MIDI files instead of the corpus")
    ap.add_argument("--corpus", type=Path, default=corpus_data.DEFAULT_CACHE)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--minutes", type=float, default=40)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-decay", type=float, default=0.8, help="learning rate factor per epoch")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=LSTMConfig.hidden)
    ap.add_argument("--layers", type=int, default=LSTMConfig.layers)
    ap.add_argument("--free-bits", type=float, default=VAEConfig.free_bits)
    ap.add_argument("--beta-max", type=float, default=VAEConfig.beta_max)
    ap.add_argument("--z-dim", type=int, default=VAEConfig.z_dim)
    ap.add_argument("--enc-hidden", type=int, default=VAEConfig.enc_hidden)
    ap.add_argument("--dec-hidden", type=int, default=VAEConfig.dec_hidden)
    ap.add_argument("--dec-layers", type=int, default=VAEConfig.dec_layers)
    ap.add_argument("--segments", type=int, default=VAEConfig.segments,
                    help="VAE: equal parts of the window, each with its own code from z (1 = flat)")
    ap.add_argument("--input-dropout", type=float, default=0.5,
                    help="VAE: share of previous-token decoder inputs blanked in training")
    ap.add_argument("--beta-steps", type=int, default=3000)
    ap.add_argument("--stride-bars", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", type=Path,
                    help="start from this checkpoint's weights and config (its config wins over the size flags)")
    args = ap.parse_args(argv)
    args.command = " ".join(["python -m musicgen_app.train", *(sys.argv[1:] if argv is None else argv)])
    train(args)


if __name__ == "__main__":
    main()
