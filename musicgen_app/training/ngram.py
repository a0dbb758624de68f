"""Interpolated Kneser-Ney n-gram model over step tokens: the baseline the LSTM must beat.

Vectorised with numpy: an n-gram is one integer (base ``V + 1`` digits, the extra symbol pads
contexts before a melody's first step), counted with ``np.unique`` and looked up with
``np.searchsorted``. Lower orders use continuation counts, as Kneser-Ney prescribes; the
discount of each order is ``n1 / (n1 + 2 n2)``.
"""

from __future__ import annotations

import numpy as np


class KneserNey:
    def __init__(self, order: int = 5, vocab: int = 90):
        self.order, self.V, self.base = order, vocab, vocab + 1
        self.pad = vocab

    def _grams(self, seqs, k: int) -> np.ndarray:
        """Keys of every k-gram that predicts a step >= 1 (step 0 is given, as for the LSTM)."""
        out = []
        for s in seqs:
            s = np.asarray(s, dtype=np.int64)
            padded = np.concatenate([np.full(self.order - 1, self.pad, np.int64), s])
            n = len(s)
            key = np.zeros(n - 1, np.int64)
            for j in range(k):  # digits: context oldest first, target last
                key = key * self.base + padded[self.order - k + 1 + j: self.order - k + n + j]
            out.append(key)
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def fit(self, seqs) -> KneserNey:
        self.tables = {}
        seqs = [s for s in seqs if len(s) > 1]
        raw = {k: self._grams(seqs, k) for k in range(1, self.order + 1)}
        for k in range(1, self.order + 1):
            if k == self.order:
                keys, counts = np.unique(raw[k], return_counts=True)
            else:
                # continuation count: distinct one-longer grams ending in this gram
                longer = np.unique(raw[k + 1])
                keys, counts = np.unique(longer % self.base ** k, return_counts=True)
            n1, n2 = (counts == 1).sum(), (counts == 2).sum()
            discount = n1 / (n1 + 2 * n2) if n1 + 2 * n2 else 0.5
            ctx = keys // self.base
            ctx_keys, first, ctx_n = np.unique(ctx, return_index=True, return_counts=True)
            ctx_tot = np.add.reduceat(counts, first)
            self.tables[k] = (keys, counts.astype(np.float64), ctx_keys, ctx_tot.astype(np.float64),
                              ctx_n.astype(np.float64), discount)
        return self

    @staticmethod
    def _lookup(keys, values, query):
        pos = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
        return np.where(keys[pos] == query, values[pos], 0.0)

    def log2_probs(self, seq) -> np.ndarray:
        """log2 P(token_t | previous order-1 tokens) for t = 1 .. len(seq)-1."""
        seq = np.asarray(seq, dtype=np.int64)
        p = np.full(len(seq) - 1, 1.0 / self.V)
        for k in range(1, self.order + 1):
            keys, counts, ctx_keys, ctx_tot, ctx_n, d = self.tables[k]
            q = self._grams([seq], k)
            c = self._lookup(keys, counts, q)
            tot = self._lookup(ctx_keys, ctx_tot, q // self.base)
            nplus = self._lookup(ctx_keys, ctx_n, q // self.base)
            safe = np.maximum(tot, 1.0)
            p = np.where(tot > 0, (np.maximum(c - d, 0) + d * nplus * p) / safe, p)
        return np.log2(p)
