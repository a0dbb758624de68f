"""The sampler's fast paths compute exactly what the plain ones do (issue 9: speed under load)."""

from __future__ import annotations

import numpy as np
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
