r"""Train the melody models on the corpus (or your own MIDI folder).

    python -m musicgen_app.training.train lstm [--minutes 40] [--resume]
    python -m musicgen_app.training.train vae  [--minutes 40] [--resume]
    python -m musicgen_app.training.train lstm --data ~/my_midi   # your own folder of MIDI files

Seeded; transposition augmentation on the train split only; validation after every epoch; early
stopping on the validation loss; the best model so far is written to ``--out`` after every epoch
(a self-describing checkpoint) and the full training state to ``data/runs/<kind>-<tag>-state.safetensors``
so ``--resume`` continues where a stopped run left off. Progress goes to stderr (tqdm) and to
``data/runs/<kind>.log`` (``--runs`` names another folder for the log and the state).

A large MIDI folder trains faster on several processes: the same command under ``torchrun`` runs
data-parallel (DistributedDataParallel: gloo on CPUs; where CUDA is available, nccl with one GPU per
process). A step still takes one ``--batch`` of rows, split among the processes, and its averaged
gradient is that of the whole batch (for the VAE up to its sampling noise, and the free-bits hinge is
applied to each process's share of the KL). Without torchrun nothing changes: one process on the CPU.

    torchrun --standalone --nproc_per_node=4 -m musicgen_app.training.train vae --data ~/midi
    # several machines: on each, with --node-rank 0 on host0 and 1 on the other
    torchrun --nnodes=2 --node-rank=0 --nproc_per_node=4 --rdzv-endpoint=host0:29400 \
        -m musicgen_app.training.train vae --data ~/midi

Every machine needs the repository and the same MIDI folder (the processes check that they read the
same melodies). Each machine's first process extracts the folder while its others wait, for at most
the process group's timeout (30 minutes on gloo, 10 on nccl); for a folder that takes longer, extract
it once per machine (``python -m musicgen_app.training.corpus --midi-dir ~/midi --out data/midi.npz``) and train
with ``--corpus data/midi.npz``. Process 0 (on node 0) alone validates, logs and writes the checkpoint
and the resumable state; with ``--resume`` it reads that state and sends it to the others.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..models.checkpoints import load_checkpoint, resave_checkpoint, save_checkpoint
from ..models.lstm import LSTMConfig, MelodyLSTM
from ..models.vae import MelodyVAE, VAEConfig, kl_divergence
from ..paths import CHECKPOINTS, DATA
from .batches import IGNORE, SeqSet, lstm_batch, lstm_chunks, lstm_scores, vae_batch, vae_windows
from .corpus import DEFAULT_CACHE, load_corpus
from .corpus import main as build_corpus_cache

RUNS = DATA / "runs"
LN2 = math.log(2)


class Log:
    """Timestamped lines to stderr and to ``path``; no path, no output (the other ranks of a torchrun)."""

    def __init__(self, path: Path | None):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.f = path.open("a") if path else None

    def __call__(self, msg: str):
        if not self.f:
            return
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        tqdm.write(line)
        self.f.write(line + "\n")
        self.f.flush()


# -- losses ---------------------------------------------------------------------------------------
def lstm_loss(model, batch):
    inp, feats, target = batch
    logits, _ = model(inp, feats)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE)


def vae_loss(model, batch, beta: float, free_bits: float, input_dropout: float = 0.0):
    toks, feats = batch
    logits, mu, sigma = model(toks, feats, input_dropout=input_dropout)
    recon = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), toks.reshape(-1), reduction="none")
    recon = recon.view(toks.shape).sum(1).mean()
    kl = kl_divergence(mu, sigma).mean()
    loss = recon + beta * torch.clamp(kl - free_bits, min=0)
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


# -- several processes (torchrun) -----------------------------------------------------------------
def start_ranks() -> tuple[int, int, torch.device]:
    """This process's rank, the number of processes and its device: (0, 1, cpu) unless under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), world, device


def agree(flag: bool, world: int, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank: a rank that left a loop alone would wait forever in the next step."""
    if world == 1:
        return flag
    t = torch.tensor([flag], dtype=torch.int32, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def share_resumed(opt, info: dict) -> dict:
    """Rank 0's resumed counters and optimiser moments on every rank (the state file is on rank 0's machine;
    DDP broadcasts rank 0's weights itself). Adam's load_state_dict moves the moments to the parameters' device."""
    sd = opt.state_dict()
    box = [info, {"state": {i: {k: v.cpu() for k, v in st.items()} for i, st in sd["state"].items()},
                  "param_groups": sd["param_groups"]}]
    dist.broadcast_object_list(box, src=0)
    opt.load_state_dict(box[1])
    return box[0]


# -- the loop -------------------------------------------------------------------------------------
def train(args) -> None:
    rank, world, device = start_ranks()
    if args.batch < world:
        raise SystemExit(f"--batch {args.batch} is split among {world} processes: give each at least one row.")
    # dropout and the VAE's noise differ per rank; every rank starts from rank 0's weights, which DDP sends
    torch.manual_seed(args.seed + rank)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    # every rank draws the same epoch orders from rng; transposition differs per rank, from its own stream
    augment = rng if world == 1 else np.random.default_rng([args.seed, rank])
    if args.no_augment:
        augment = None
    args.runs.mkdir(parents=True, exist_ok=True)
    log = Log(args.runs / f"{args.kind}.log" if rank == 0 else None)
    if args.data:
        cache = args.runs / f"user-{args.data.name}.npz"
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:  # one extraction per machine
            build_corpus_cache(["--midi-dir", str(args.data), "--out", str(cache)])
        if world > 1:
            dist.barrier()
        corpus = load_corpus(cache)
    else:
        corpus = load_corpus(args.corpus)
    if world > 1:  # row numbers name the same rows on every machine only if the melodies are the same
        first = [corpus.fingerprint]
        dist.broadcast_object_list(first, src=0)
        if first[0] != corpus.fingerprint:
            raise SystemExit(f"rank {rank} read corpus {corpus.fingerprint}, rank 0 read {first[0]}: "
                             "give every machine the same MIDI folder or corpus file.")
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
    if args.max_rows:
        train_set = SeqSet(train_set.tokens[:args.max_rows], train_set.feats[:args.max_rows],
                           train_set.lengths[:args.max_rows])
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{args.kind}: {n_params / 1e6:.2f}M parameters, {len(train_set)} train rows, {len(valid_set)} valid rows")
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    out = Path(args.out or CHECKPOINTS / f"{args.kind}.safetensors")
    # one state file per output, so a trial run elsewhere never resumes into the real one
    tag = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]
    state_path = args.runs / f"{args.kind}-{tag}-state.safetensors"
    info = {"epoch": 0, "step": 0, "best": float("inf"), "bad_epochs": 0, "elapsed": 0.0}
    if args.resume and rank == 0 and state_path.exists():
        info = load_state(state_path, model, opt)
        log(f"resumed from {state_path}: {info}")
    if args.resume and world > 1:
        info = share_resumed(opt, info)
    start = time.time() - info["elapsed"]
    deadline = start + args.minutes * 60
    model.train()
    # the forward and backward passes of training go through DDP, which averages the ranks' gradients
    net = model
    if world > 1:
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    # Each rank's loss is a mean over its own rows (LSTM: over their predicted steps). Scaled by the rank's
    # share of the batch's terms, DDP's average of the ranks' gradients is the gradient of the mean over
    # the whole batch, whatever the split; on one process the scale is exactly 1.
    terms = train_set.lengths - 1 if args.kind == "lstm" else np.ones(len(train_set))
    while agree(info["epoch"] < args.epochs and time.time() < deadline and info["bad_epochs"] < args.patience,
                world, device):
        for group in opt.param_groups:  # step decay per epoch; a resumed run picks up where it was
            group["lr"] = args.lr * args.lr_decay ** info["epoch"]
        order = rng.permutation(len(train_set))
        bar = tqdm(range(0, len(order) - args.batch + 1, args.batch), desc=f"epoch {info['epoch'] + 1}",
                   mininterval=10, disable=rank != 0)
        for s in bar:
            idx = order[s:s + args.batch]
            mine = np.array_split(idx, world)[rank]
            scale = float(world * terms[mine].sum() / terms[idx].sum())
            if args.kind == "lstm":
                loss = lstm_loss(net, [t.to(device) for t in lstm_batch(train_set, mine, augment)])
                shown = {"bits": f"{loss.item() / LN2:.3f}"}
            else:
                beta = model.config.beta_max * min(1.0, info["step"] / args.beta_steps)
                loss, recon, kl, acc = vae_loss(net, [t.to(device) for t in vae_batch(train_set, mine, augment)],
                                                beta, model.config.free_bits, args.input_dropout)
                shown = {"recon": f"{recon.item():.1f}", "kl": f"{kl.item():.1f}", "acc": f"{acc.item():.3f}"}
            opt.zero_grad(set_to_none=True)
            (loss * scale).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            info["step"] += 1
            if info["step"] % 50 == 0:
                bar.set_postfix(shown)
            if info["step"] % 500 == 0:
                log(f"step {info['step']} {shown}")
            if agree(time.time() > deadline, world, device):
                break
        info["epoch"] += 1
        info["elapsed"] = time.time() - start
        if rank != 0:  # the others wait for rank 0's verdict in agree() above
            continue
        held = model if device.type == "cpu" else copy.deepcopy(model).cpu()  # evaluated and saved on the CPU
        metrics = evaluate_lstm(held, valid_set) if args.kind == "lstm" else evaluate_vae(held, valid_set)
        improved = metrics["loss"] < info["best"] - 1e-4
        if improved:
            info["best"], info["bad_epochs"] = metrics["loss"], 0
            save_checkpoint(out, held, data_fingerprint=corpus.fingerprint, train_steps=info["step"],
                            metrics={"valid": metrics},
                            extra={"train_command": args.command,
                                   "train_seconds": round(info["elapsed"])})
        else:
            info["bad_epochs"] += 1
        save_state(state_path, model, opt, info)
        log(f"epoch {info['epoch']} step {info['step']} {info['elapsed'] / 60:.1f} min valid "
            f"{json.dumps({k: round(v, 4) for k, v in metrics.items()})}{' saved' if improved else ''}")
    if world > 1:
        dist.destroy_process_group()
    if rank != 0:
        return
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
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--runs", type=Path, default=RUNS,
                    help="folder for the log, the resumable state and the extracted --data (default data/runs)")
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
    ap.add_argument("--max-rows", type=int, help="train on the first N training rows only (quick trial runs)")
    ap.add_argument("--no-augment", action="store_true",
                    help="no random transposition, so every run sees the same batches (checks of the training loop)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init-from", type=Path,
                    help="start from this checkpoint's weights and config (its config wins over the size flags)")
    args = ap.parse_args(argv)
    args.command = " ".join(["python -m musicgen_app.training.train", *(sys.argv[1:] if argv is None else argv)])
    train(args)


if __name__ == "__main__":
    main()
