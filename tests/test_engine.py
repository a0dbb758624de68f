"""The one sampling loop (service/engine.py): requests batched together keep the seed promise."""

from __future__ import annotations

import collections
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.io.importer import load_melody
from musicgen_app.io.midi import melody_to_midi
from musicgen_app.service import ContinueRequest, MelodyService
from musicgen_app.service import engine as engine_module

CKPT = Path(__file__).resolve().parent.parent / "checkpoints"


@pytest.fixture(scope="module")
def shipped():
    if not (CKPT / "lstm.safetensors").exists():
        pytest.skip("no trained checkpoints")
    torch.set_num_threads(1)
    return MelodyService.from_checkpoints(CKPT)


@pytest.fixture(scope="module")
def tunes(data_dir):
    return [load_melody(data_dir / name).melody for name in ("folk-tune.mid", "waltz-3-4.mid", "jig-6-8.mid")]


def sixteen_requests(tunes) -> list[ContinueRequest]:
    """Requests that differ in everything a row carries: meter, length, temperature, steering, ending, key lock."""
    reqs = []
    for i in range(16):
        m = tunes[i % 3]
        reqs.append(ContinueRequest(m, bars=1 + i % 3, variations=1 + i % 4, temperature=(0.7, 1.0, 1.3)[i % 3],
                                    stay_close=(0.0, 0.5, 1.0)[(i // 3) % 3], seed=100 + i,
                                    ending=("free", "tonic chord", "tonic", "dominant", "like real tunes")[i % 5],
                                    key_lock=("off", "detected")[i % 2]))
    return reqs


def midi_of(result) -> list[bytes]:
    return [melody_to_midi(m) for m in result.melodies]


def concurrently(svc: MelodyService, reqs: list[ContinueRequest]) -> list:
    out, start = [None] * len(reqs), threading.Barrier(len(reqs))

    def one(i):
        start.wait()
        out[i] = svc.continue_(reqs[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_a_request_gives_the_same_bytes_alone_and_among_fifteen_others(shipped, tunes):
    reqs = sixteen_requests(tunes)
    alone = [shipped.continue_(r) for r in reqs]
    before = shipped.engine.stats.snapshot()
    together = concurrently(shipped, reqs)
    after = shipped.engine.stats.snapshot()
    # they did share steps: on average more than one request's rows in a step
    assert after["block_steps"] - before["block_steps"] > 1.5 * (after["steps"] - before["steps"])
    for i, (a, b) in enumerate(zip(alone, together)):
        assert midi_of(a) == midi_of(b), f"request {i} changed in company"
        assert a.log2p_per_note == b.log2p_per_note and a.seed == b.seed


def test_a_request_is_the_same_whichever_side_of_the_batch_it_joins(shipped, tunes):
    # the same request joins a batch early (first) and late (after others have stepped)
    req = ContinueRequest(tunes[0], bars=2, variations=4, seed=5, ending="tonic chord")
    alone = midi_of(shipped.continue_(req))
    others = sixteen_requests(tunes)[:6]
    for reqs in ([req] + others, others + [req]):
        assert midi_of(concurrently(shipped, reqs)[reqs.index(req)]) == alone


def test_a_failing_step_fails_its_requests_and_the_engine_serves_on(tunes, monkeypatch):
    svc = MelodyService.debug()
    req = ContinueRequest(tunes[0], bars=1, variations=2, seed=1)
    good = midi_of(svc.continue_(req))
    real, calls = engine_module.Engine.step, []

    def broken_once(self, blocks):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a step")
        return real(self, blocks)

    monkeypatch.setattr(engine_module.Engine, "step", broken_once)
    with pytest.raises(RuntimeError, match="a bug in a step"):
        svc.continue_(req)
    assert midi_of(svc.continue_(req)) == good


def test_draw_rows_samples_each_rows_distribution():
    from musicgen_app.models.sampling import draw_rows

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 90, generator=g) * 2
    logits[0, 5:20] = -torch.inf  # masked tokens are never drawn
    n = 200_000
    drawn = draw_rows(logits.expand(n, -1), torch.rand(n, generator=g))
    freq = np.bincount(drawn.numpy(), minlength=90) / n
    assert freq[5:20].sum() == 0
    assert np.abs(freq - torch.softmax(logits[0], -1).numpy()).max() < 0.005


@pytest.mark.parametrize("ending", ["tonic chord", "dominant"])
def test_pruning_hopeless_endings_changes_no_variation(shipped, tunes, ending, monkeypatch):
    from musicgen_app.service import phrasing

    reqs = [ContinueRequest(m, bars=2, variations=4, seed=9 + i, ending=ending, temperature=t)
            for i, (m, t) in enumerate(zip(tunes, (1.0, 0.7, 1.3)))]
    pruned = [shipped.continue_(r) for r in reqs]
    stepped = []
    real = shipped.engine.step
    monkeypatch.setattr(shipped.engine, "step", lambda blocks: stepped.append(sum(b.rows for b in blocks)) or
                        real(blocks))
    for r in reqs:
        shipped.continue_(r)
    with_pruning, stepped = sum(stepped), []
    monkeypatch.setattr(phrasing.EndingRule, "pruner", lambda self: None)
    for r, p in zip(reqs, pruned):
        full = shipped.continue_(r)
        assert midi_of(full) == midi_of(p)
        assert full.log2p_per_note == p.log2p_per_note and full.ended == p.ended
    assert with_pruning < 0.8 * sum(stepped)  # and it did save steps


def test_a_block_whose_rows_are_all_pruned_leaves_its_generator_as_stepping_to_the_end_would(tunes):
    svc, m = MelodyService.debug(), tunes[0]
    after = []
    for prune in (lambda block, i: np.zeros(len(block.live), bool), None):
        gen = torch.Generator().manual_seed(3)
        svc.sample_lstm(tk.encode(m).tokens, m, 12, 4, 1.0, gen, resumable=False, prune=prune)
        after.append(torch.rand(3, generator=gen))  # what the next round of endings would draw
    assert torch.equal(*after)


def test_a_primer_is_run_once_and_its_state_is_what_running_it_again_gives(shipped, tunes, monkeypatch):
    """A musician continues one input many times: the LSTM's state after it is remembered (bounded),
    keyed by the tokens and the metre features both, and is bit for bit the state a new run gives."""
    lstm = shipped.lstm
    monkeypatch.setitem(lstm.__dict__, "_primed", (collections.OrderedDict(), threading.Lock()))
    runs = []
    forward = type(lstm).forward
    monkeypatch.setattr(type(lstm), "forward", lambda self, *a, **k: runs.append(1) or forward(self, *a, **k))
    folk, waltz = tunes[0], tunes[1]
    first = shipped.continue_(ContinueRequest(folk, bars=2, variations=2, seed=5))
    again = shipped.continue_(ContinueRequest(folk, bars=2, variations=2, seed=5, temperature=1.0))
    assert len(runs) == 1 and midi_of(first) == midi_of(again)
    tokens = torch.from_numpy(tk.encode(folk).tokens[None])
    feats = torch.from_numpy(np.ascontiguousarray(tk.lstm_features(
        np.broadcast_to(tk.melody_features(folk, tokens.shape[1] + 1)[1:], (1, tokens.shape[1], 3)),
        tokens.numpy(), folk.bar_steps, lstm.config.lookback_bars, np.arange(1, tokens.shape[1] + 1))))
    with torch.inference_mode():
        kept_last, (kept_h, _) = lstm.prime(tokens, feats)
        new_logits, (new_h, _) = forward(lstm, tokens, feats)
    assert torch.equal(kept_last, new_logits[:, -1]) and torch.equal(kept_h, new_h)
    # the same notes in another metre are another primer
    shipped.continue_(ContinueRequest(folk.replace(time_signature=(3, 4)), bars=1, variations=1, seed=5))
    assert len(runs) == 2
    monkeypatch.setattr("musicgen_app.models.lstm.PRIMED_KEPT", 2)
    shipped.continue_(ContinueRequest(waltz, bars=1, variations=1, seed=5))
    assert len(lstm._primed[0]) == 2
