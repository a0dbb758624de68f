"""Training under torchrun (DistributedDataParallel, gloo on the CPU): it runs to the end, and two
processes take the same optimisation steps as one process on the same batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

from musicgen_app.models.checkpoints import load_checkpoint, save_checkpoint
from musicgen_app.models.lstm import LSTMConfig, MelodyLSTM
from musicgen_app.training.corpus import DEFAULT_CACHE

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                       reason="torch.distributed with the gloo backend is not available in this torch build"),
]
# a few rows of small batches (3 steps an epoch) keep each run to seconds, most of them starting up
TINY = ["--max-rows", "96", "--batch", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The first 600 melodies of the corpus cache (about 25 of them valid): each process loads and cuts
    them in a tenth of a second, against about 4 s for the whole corpus."""
    with np.load(DEFAULT_CACHE) as z:
        full = {k: z[k] for k in z.files}
    n = 600
    small = {k: v[:n] for k, v in full.items() if k not in ("notes", "offsets")}
    small["offsets"] = full["offsets"][:n + 1]
    small["notes"] = full["notes"][:full["offsets"][n]]
    path = tmp_path_factory.mktemp("corpus") / "corpus.npz"
    np.savez(path, **small)
    return path


def run_train(args: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    cmd = [*(launcher if processes > 1 else [sys.executable]), "-m", "musicgen_app.training.train", *args]
    # on the CPU with gloo even where a GPU is present: nccl cannot give two processes one GPU
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def final_state(runs: Path) -> dict[str, torch.Tensor]:
    """The weights and Adam moments that rank 0 saved after the last epoch, whether or not it improved."""
    (path,) = runs.glob("lstm-*-state.safetensors")
    return load_file(str(path))


def test_torchrun_two_processes_train_and_write_a_checkpoint(tmp_path, corpus):
    out = tmp_path / "lstm.safetensors"
    done = run_train(["lstm", "--corpus", str(corpus), "--hidden", "16", "--layers", "1", "--epochs", "2",
                      "--minutes", "1", *TINY,
                      "--runs", str(tmp_path / "runs"), "--out", str(out)], processes=2)
    model, meta = load_checkpoint(out, kind="lstm")
    assert model.config.hidden == 16
    assert int(meta["train_steps"]) in (3, 6)  # 96 rows in batches of 32: 3 steps an epoch
    # rank 0 alone logs: one account of the run, not one per process
    assert (done.stdout + done.stderr).count("done: best valid loss") == 1
    assert (tmp_path / "runs" / "lstm.log").read_text().count("epoch 2 step 6") == 1


def test_two_processes_take_the_same_steps_as_one(tmp_path, corpus):
    """Without transposition or dropout nothing is random, so a wrong share of rows, gradients left
    unaveraged or averaged with the wrong weights, or optimiser moments not passed on after a resume,
    leave rank 0's weights away from those of one process training on the same batches."""
    init = tmp_path / "init.safetensors"
    save_checkpoint(init, MelodyLSTM(LSTMConfig(hidden=16, layers=1, dropout=0.0)))
    common = ["lstm", "--corpus", str(corpus), "--init-from", str(init), "--no-augment", "--lr", "0.01",
              "--minutes", "2", *TINY]
    states = {}
    for processes in (1, 2):
        runs, out = tmp_path / f"runs{processes}", tmp_path / f"out{processes}.safetensors"
        # one epoch, then a resumed second one, which starts from the state file's weights and Adam moments
        for extra in (["--epochs", "1"], ["--epochs", "2", "--resume"]):
            run_train([*common, *extra, "--runs", str(runs), "--out", str(out)], processes)
        states[processes] = final_state(runs)
    one, two = states[1], states[2]
    assert one.keys() == two.keys()
    start = load_file(str(init))
    moved = max((one[f"model.{k}"] - v).abs().max().item() for k, v in start.items())
    assert moved > 0.02  # six steps of lr 0.01 (and 0.008) moved the weights; the runs agree far closer
    # Summing the two halves' gradients rounds differently from one full batch, and Adam divides
    # near-zero gradients by their own size, so a few weights differ by up to 8e-6 on some runs
    # (4.8e-7 on most); any of the faults above moves weights by 1e-3 or more.
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-3, atol=3e-5, msg=lambda m, n=name: f"{n}: {m}")
