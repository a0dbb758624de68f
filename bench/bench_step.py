"""A/B of MelodyLSTM.step, the LSTM's one-token sampling step (issue 11), in one process.

    .venv/bin/python bench/bench_step.py [--repeats 20] [--steps 200]

"old" is the step as it was before the fused one (kept here as ``old_step``), "new" is the model's.
Prints the median ms per step at batch 4 on the shipped checkpoint and the ratio, then the model time
of Continue 8 bars x 4 variations as bench_service.py measures it, with each step, and whether the
two steps sampled the same tokens. Goal: Continue <= 80 ms (median).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)  # as the service runs; set before anything allocates a thread pool
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_service import four_bar_clips  # noqa: E402

from musicgen_app.service import ContinueRequest, MelodyService  # noqa: E402

GOAL_MS = 80


# -- the step before issue 11, copied from musicgen_app/models/lstm.py (commit c071ed7) -------------
def old_step(model, tokens: torch.Tensor, next_feats: torch.Tensor, state):
    """MelodyLSTM.step without gradients as it was."""
    table, offsets, repeats_w, bias = _old_input_tables(model)
    n = len(model.config.lookback_bars)
    idx = torch.cat([tokens.unsqueeze(1), next_feats[:, :3 + n]], dim=1) + offsets
    gates = table[idx].sum(1) + bias + next_feats[:, 3 + n:].to(table.dtype) @ repeats_w
    out, state = _old_lstm_step(model.lstm, None, state, input_gates=gates)
    return model.head(out), state


def _old_lstm_step(lstm, x, state, input_gates=None):
    h, c = state
    hs, cs = [], []
    for k in range(lstm.num_layers):
        if k == 0 and input_gates is not None:
            i, f, g, o = (input_gates + h[0] @ lstm.weight_hh_l0.T).chunk(4, 1)
            ck = torch.sigmoid(f) * c[0] + torch.sigmoid(i) * torch.tanh(g)
            hk = torch.sigmoid(o) * torch.tanh(ck)
        else:
            hk, ck = torch.lstm_cell(x, (h[k], c[k]), getattr(lstm, f"weight_ih_l{k}"),
                                     getattr(lstm, f"weight_hh_l{k}"), getattr(lstm, f"bias_ih_l{k}"),
                                     getattr(lstm, f"bias_hh_l{k}"))
        hs.append(hk)
        cs.append(ck)
        x = hk
    return x, (torch.stack(hs), torch.stack(cs))


def _old_input_tables(model):
    embeddings = [model.embed, model.pos.step_in_beat, model.pos.beat_in_bar, model.pos.bar_len]
    embeddings += [model.lookback] * len(model.config.lookback_bars)
    w = model.lstm.weight_ih_l0
    used = [e.weight for e in embeddings] + [w, model.lstm.bias_ih_l0, model.lstm.bias_hh_l0]
    version = tuple((p._version, p.data_ptr()) for p in used)
    if getattr(model, "_old_tables_version", None) != version:
        with torch.no_grad():
            parts, offsets, col, row = [], [], 0, 0
            for e in embeddings:
                d = e.weight.shape[1]
                parts.append(e.weight @ w[:, col:col + d].T)
                offsets.append(row)
                col, row = col + d, row + e.weight.shape[0]
            model._old_tables = (torch.cat(parts), torch.tensor(offsets), w[:, col:].T.contiguous(),
                                 model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0)
        model._old_tables_version = version
    return model._old_tables


# -- measurements -----------------------------------------------------------------------------------
def step_inputs(model, batch: int, steps: int):
    """Random tokens and features of the shapes sampling feeds (metrical, lookback tokens, flags)."""
    g = torch.Generator().manual_seed(0)
    n = len(model.config.lookback_bars)
    toks = torch.randint(0, model.config.num_classes, (steps, batch), generator=g)
    feats = torch.cat([torch.randint(0, 4, (steps, batch, 3), generator=g),
                       torch.randint(0, model.config.num_classes + 1, (steps, batch, n), generator=g),
                       torch.randint(0, 2, (steps, batch, n), generator=g)], dim=-1)
    return toks, feats


@torch.inference_mode()
def ms_per_step(step, model, toks, feats) -> float:
    L, B, H = model.config.layers, toks.shape[1], model.config.hidden
    state = (torch.zeros(L, B, H), torch.zeros(L, B, H))
    t = time.perf_counter()
    for tok, f in zip(toks, feats):
        _, state = step(tok, f, state)
    return (time.perf_counter() - t) * 1000 / len(toks)


@torch.inference_mode()
def max_logit_diff(model, toks, feats) -> float:
    L, B, H = model.config.layers, toks.shape[1], model.config.hidden
    s_old = s_new = (torch.zeros(L, B, H), torch.zeros(L, B, H))
    worst = 0.0
    for tok, f in zip(toks, feats):
        a, s_old = old_step(model, tok, f, s_old)
        b, s_new = model.step(tok, f, s_new)
        worst = max(worst, (a - b).abs().max().item())
    return worst


def continue_times(svc, steps: dict, clip, repeats: int):
    """Ms of Continue calls with each step, one call with each per seed in turn (after a warm-up), as
    bench_service.py times them, and the melodies of every call."""
    ms, melodies = {name: [] for name in steps}, {name: [] for name in steps}
    for seed in range(repeats + 1):
        for name, step in steps.items():
            svc.lstm.step = step  # the service's one call site reads the step from the instance
            t = time.perf_counter()
            result = svc.continue_(ContinueRequest(clip, bars=8, variations=4, seed=seed))
            if seed:
                ms[name].append((time.perf_counter() - t) * 1000)
            melodies[name].append(result.melodies)
    del svc.lstm.step
    return ms, melodies


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--steps", type=int, default=200, help="steps per timed chain")
    args = ap.parse_args(argv)
    svc = MelodyService.from_checkpoints()
    model = svc.lstm
    steps = {"old": lambda *a: old_step(model, *a), "new": model.step}

    toks, feats = step_inputs(model, 4, args.steps)
    per_step = {name: [] for name in steps}
    for _ in range(args.repeats + 1):  # interleaved, so that both see the same machine; the first is warm-up
        for name, step in steps.items():
            per_step[name].append(ms_per_step(step, model, toks, feats))
    med = {name: statistics.median(v[1:]) for name, v in per_step.items()}
    print(f"MelodyLSTM.step on the shipped checkpoint, batch 4, {torch.get_num_threads()} torch thread, "
          f"median of {args.repeats} chains of {args.steps} steps")
    for name in steps:
        print(f"  {name} step  {med[name]:.3f} ms per step")
    print(f"  speed-up  {med['old'] / med['new']:.2f}x   "
          f"largest logit difference {max_logit_diff(model, toks, feats):.1e}")

    clip = four_bar_clips(1)[0]
    ms, melodies = continue_times(svc, steps, clip, args.repeats)
    print(f"Continue 8 bars x 4 variations, model time, median of {args.repeats} calls (seeds 1-{args.repeats})")
    for name, times in ms.items():
        times.sort()
        med, p95 = statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]
        verdict = "met" if med <= GOAL_MS else "NOT met"
        print(f"  {name} step  median {med:6.1f} ms   p95 {p95:6.1f} ms   goal <= {GOAL_MS} ms: {verdict}")
    same = melodies["old"] == melodies["new"]
    print(f"  same melodies from both steps in all {len(melodies['new'])} calls: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
