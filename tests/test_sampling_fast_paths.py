"""The sampler's fast paths compute exactly what the plain ones do (issue 9: speed under load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicgen_app import tokens as tk
from musicgen_app.melody import Melody, Note
from musicgen_app.service import MelodyService


def test_lookback_gather_gives_the_lookback_features():
    rng = np.random.default_rng(0)
    for bar, lags in ((4, (1,)), (6, (1, 2, 4)), (16, (1, 2, 4, 8))):
        toks = rng.integers(0, 4, (3, 5 * bar + 7))  # few values, so that repeats happen
        padded = np.concatenate([np.full((3, 1), tk.LOOKBACK_NONE), toks], axis=1)
        positions = np.arange(1, toks.shape[1])
        idx = tk.lookback_gather(positions, bar, lags)
        want = tk.lookback_features(toks, bar, lags, positions)
        k = len(lags)
        for j, t in enumerate(positions):
            got = padded[:, idx[j]]
            assert np.array_equal(got[:, :k], want[:, j, :k])
            assert np.array_equal(got[:, k:] == padded[:, t:t + 1], want[:, j, k:].astype(bool))


def test_a_run_nobody_goes_on_from_samples_the_same_rows():
    svc = MelodyService.debug()
    m = Melody(notes=tuple(Note(4 * i, 60 + i % 5, 4) for i in range(8)))
    toks = tk.encode(m).tokens
    full = svc.sample_lstm(toks, m, 20, 3, 0.9, torch.Generator().manual_seed(1), pull=0.5)
    last = svc.sample_lstm(toks, m, 20, 3, 0.9, torch.Generator().manual_seed(1), pull=0.5, resumable=False)
    assert np.array_equal(full.hist, last.hist) and np.array_equal(full.log2p, last.log2p)
    assert last.next_logits is None and last.state is None


def test_rows_sharing_a_history_share_one_lstm_row():
    from musicgen_app.models.sampling import distinct_rows

    row, toks = np.array([0, 0, 0, 1, 1, 1]), np.array([5, 7, 5, 5, 5, 9])
    first, after = distinct_rows(row, toks)
    assert np.array_equal(row[first] * 100 + toks[first], [5, 7, 105, 109])
    assert np.array_equal(after, [0, 1, 0, 2, 2, 3])  # each row's state after the step


@pytest.mark.parametrize("threads", [1, 2])
def test_an_lstm_row_is_the_same_in_any_batch(threads):
    # what sharing rows rests on: a step's row does not depend on the rows beside it (the head's
    # BLAS call does, so the sampler runs the head on every row)
    svc = MelodyService.from_checkpoints()
    lstm, g = svc.lstm, torch.Generator().manual_seed(0)
    L, H, k = lstm.config.layers, lstm.config.hidden, len(lstm.config.lookback_bars)
    B = 160
    state = (torch.randn(L, B, H, generator=g), torch.randn(L, B, H, generator=g))
    tok = torch.randint(0, tk.NUM_CLASSES, (B,), generator=g)
    feats = torch.cat([torch.randint(0, 4, (B, 3), generator=g), torch.randint(0, tk.NUM_CLASSES, (B, k), generator=g),
                       torch.randint(0, 2, (B, k), generator=g)], 1)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            top, (h, c) = lstm.advance(tok, feats, state)
            for n in (1, 2, 3, 5, 17, 63, 100):
                idx = torch.randperm(B, generator=g)[:n]
                sub, (hs, cs) = lstm.advance(tok[idx], feats[idx], (state[0][:, idx], state[1][:, idx]))
                assert torch.equal(sub, top[idx]) and torch.equal(hs, h[:, idx]) and torch.equal(cs, c[:, idx]), n
    finally:
        torch.set_num_threads(before)


def test_shared_rows_sample_what_one_row_each_samples(monkeypatch):
    from musicgen_app.service import engine as engine_module

    svc = MelodyService.from_checkpoints()
    m = Melody(notes=tuple(Note(4 * i, 60 + i % 5, 4) for i in range(8)))
    toks = tk.encode(m).tokens

    def run():
        body = svc.sample_lstm(toks, m, 8, 4, 1.0, gen := torch.Generator().manual_seed(2))
        ends = svc.sample_lstm(None, m, 16, 160, 1.0, gen, after=body, resumable=False)
        more = svc.sample_lstm(None, m, 4, 8, 0.8, gen, after=body.take(np.array([1, 3])))
        return body, ends, more

    shared = run()
    monkeypatch.setattr(engine_module, "distinct_rows", lambda row, t: (np.arange(len(row)),) * 2)
    plain = run()
    for a, b in zip(shared, plain):
        assert np.array_equal(a.hist, b.hist) and np.array_equal(a.log2p, b.log2p)
    assert torch.equal(shared[2].next_logits, plain[2].next_logits)
    assert all(torch.equal(x, y) for x, y in zip(shared[2].state, plain[2].state))
