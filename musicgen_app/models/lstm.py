"""Next-step melody LSTM in the spirit of Magenta's Lookback RNN.

Input at step t: the token at t, the metrical position of step t+1 (the step being predicted:
step in beat, beat in bar, bar length) and the lookback inputs of step t+1 (the tokens 1, 2, 4
and 8 bars before it, and whether step t repeats those bars: see tokens.lookback_features);
output: logits over the 90 tokens of step t+1. Features arrive as one int64 array per step:
3 metrical columns, then 2 per lookback lag.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import tokens as tk
from ..errors import CheckpointError
from . import fused_linear

# Primers whose LSTM state is remembered: a musician clicks Continue on one input again and again
# (other settings, other seeds), and each click would run the LSTM over the same primer again.
PRIMED_KEPT = 64


@dataclass(frozen=True)
class LSTMConfig:
    num_classes: int = tk.NUM_CLASSES
    embed_dim: int = 64
    pos_dim: int = 16
    hidden: int = 384
    layers: int = 2
    dropout: float = 0.2
    lookback_bars: tuple[int, ...] = (1, 2, 4, 8)
    lookback_dim: int = 32

    def __post_init__(self):
        # a checkpoint's JSON metadata gives a list back
        object.__setattr__(self, "lookback_bars", tuple(int(b) for b in self.lookback_bars))
        if any(b < 1 for b in self.lookback_bars):
            raise CheckpointError(f"LSTMConfig.lookback_bars must be whole bars >= 1, got {self.lookback_bars}.")
        for name in ("num_classes", "embed_dim", "pos_dim", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise CheckpointError(f"LSTMConfig.{name} must be positive, got {getattr(self, name)}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_features(self) -> int:
        return 3 + 2 * len(self.lookback_bars)


class PositionEmbedding(nn.Module):
    """Sum-free concatenation of the three metrical features (see tokens.metric_features)."""

    def __init__(self, dim: int):
        super().__init__()
        self.step_in_beat = nn.Embedding(tk.MAX_BEAT_STEPS, dim)
        self.beat_in_bar = nn.Embedding(tk.MAX_BEATS, dim)
        self.bar_len = nn.Embedding(tk.MAX_BAR_STEPS, dim)
        self.out_dim = 3 * dim

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.step_in_beat(feats[..., 0]), self.beat_in_bar(feats[..., 1]),
                          self.bar_len(feats[..., 2])], dim=-1)


def lstm_step(lstm: nn.LSTM, x: torch.Tensor, state):
    """One time step of a (multi-layer, unidirectional) nn.LSTM: x (B, I), state (h, c) of (L, B, H).

    Sampling runs one step per call; nn.LSTM builds a oneDNN primitive on every such call, which
    costs more than the step's arithmetic, and the plain cell kernel does not (bench/bench_step.py).
    """
    h, c = state
    hs, cs = [], []
    for k in range(lstm.num_layers):
        x, ck = torch.lstm_cell(x, (h[k], c[k]), getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}"),
                                getattr(lstm, f"bias_ih_l{k}"), getattr(lstm, f"bias_hh_l{k}"))
        hs.append(x)
        cs.append(ck)
    return x, (torch.stack(hs), torch.stack(cs))


def _versions(tensors) -> tuple:
    return tuple((t._version, t.data_ptr()) for t in tensors)


def _cell(gates: torch.Tensor, c: torch.Tensor):
    """LSTM cell update from pre-activation gates (B, 4H) in nn.LSTM's order i, f, g, o -> h, c."""
    i, f, g, o = gates.chunk(4, 1)
    g = g.tanh()  # before the in-place sigmoid below overwrites it
    gates.sigmoid_()  # i, f and o are views of it; g's quarter is wasted work, cheaper than three calls
    c = torch.addcmul(f * c, i, g)
    return o * c.tanh(), c


class MelodyLSTM(nn.Module):
    kind = "lstm"

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.num_classes, config.embed_dim)
        self.pos = PositionEmbedding(config.pos_dim)
        n_lags = len(config.lookback_bars)
        self.lookback = nn.Embedding(config.num_classes + 1, config.lookback_dim)  # + LOOKBACK_NONE
        in_dim = config.embed_dim + self.pos.out_dim + n_lags * (config.lookback_dim + 1)
        self.lstm = nn.LSTM(in_dim, config.hidden, config.layers,
                            batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.num_classes)

    def inputs(self, tokens: torch.Tensor, next_feats: torch.Tensor) -> torch.Tensor:
        n = len(self.config.lookback_bars)
        back = self.lookback(next_feats[..., 3:3 + n]).flatten(-2)
        repeats = next_feats[..., 3 + n:3 + 2 * n].to(back.dtype)
        return torch.cat([self.embed(tokens), self.pos(next_feats), back, repeats], dim=-1)

    def forward(self, tokens: torch.Tensor, next_feats: torch.Tensor, state=None):
        """tokens (B, T) int64, next_feats (B, T, n_features) int64 -> logits (B, T, C), state."""
        out, state = self.lstm(self.inputs(tokens, next_feats), state)
        return self.head(self.drop(out)), state

    def prime(self, tokens: torch.Tensor, next_feats: torch.Tensor):
        """:meth:`forward` over primers without gradients -> (the last step's logits (B, C), state),
        the same tensors for the same tokens and features as the last PRIMED_KEPT primers got
        (computed once: the same bits as computing them again). Callers must not change them."""
        if torch.is_grad_enabled() or self.training:
            logits, state = self(tokens, next_feats)
            return logits[:, -1], state
        key = (tuple(tokens.shape), tokens.numpy().tobytes(), tuple(next_feats.shape), next_feats.numpy().tobytes(),
               _versions(tuple(self.parameters())))
        kept, lock = self.__dict__.setdefault("_primed", (collections.OrderedDict(), threading.Lock()))
        with lock:
            if key in kept:
                kept.move_to_end(key)
                return kept[key]
        logits, state = self(tokens, next_feats)
        got = (logits[:, -1], state)
        with lock:
            kept[key] = got
            while len(kept) > PRIMED_KEPT:
                kept.popitem(last=False)
        return got

    def step(self, tokens: torch.Tensor, next_feats: torch.Tensor, state):
        """One step for sampling: tokens (B,), next_feats (B, n_features) -> logits (B, C), state."""
        top, state = self.advance(tokens, next_feats, state)
        # the head has few output rows (num_classes): there the plain BLAS call is the quicker one
        return self.head(top), state

    def advance(self, tokens: torch.Tensor, next_feats: torch.Tensor, state):
        """:meth:`step` without the head: -> the last layer's output (B, H), state. Each row's
        numbers are the same whatever rows share the batch (oneDNN's kernel; the head's BLAS call gives
        other bits at some batch sizes), so a sampler may run only the distinct rows."""
        if torch.is_grad_enabled():
            return lstm_step(self.lstm, self.inputs(tokens, next_feats), state)
        # Sampling a few rows is bound by reading weights and by the count of calls, so each layer
        # is one matrix product on packed weights (see fused_linear) and the first layer's input, a
        # concatenation of embeddings and flags, is one summed gather from precomputed tables.
        table, offsets, layers, _ = self._sampling_weights()
        x = F.embedding_bag(torch.column_stack([tokens, next_feats]) + offsets, table, mode="sum")
        hs, cs = [], []
        for k, ((w, b), h, c) in enumerate(zip(layers, *state)):
            # the first layer adds its input projection x; the others multiply [input | state] at once
            gates = (fused_linear.linear(h, w, b).add_(x) if k == 0
                     else fused_linear.linear(torch.cat([x, h], 1), w, b))
            x, c = _cell(gates, c)
            hs.append(x)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))

    def head_rows(self, top: torch.Tensor) -> torch.Tensor:
        """The head on :meth:`advance`'s output (B, H) -> logits (B, C) on packed weights: unlike the
        head's BLAS call, each row gets the same bits in any batch, which the engine's rows of many
        requests need (service/engine.py)."""
        if torch.is_grad_enabled():
            return self.head(top)
        return fused_linear.linear(top, self._sampling_weights()[3], self.head.bias)

    def _sampling_weights(self):
        """What step() reads without gradients, rebuilt when a parameter changed in place or got
        new data (an optimiser step, load_state_dict, .to()):

        - a (rows, 4H) table: each input column's rows (embedding rows, or 0 and 1 for a repeat
          flag) times that column's slice of the first layer's input weights, and the row offset
          of each column of [token, next_feats];
        - per layer, packed weights and summed biases: the first layer's W_hh (its input is the
          table sum), the others' [W_ih | W_hh] for the input and the state side by side;
        - the head's packed weight.
        """
        params, version, weights = getattr(self, "_sampling", ((), None, None))
        # The parameter list is kept, as walking the modules for it on every step is a noticeable
        # share of the step; so a parameter replaced by a new object goes unseen.
        if _versions(params) != version:
            params = tuple(self.parameters())
            weights = self._build_sampling_weights()
            self._sampling = params, _versions(params), weights
        return weights

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_sampling", None)  # oneDNN's packed weights cannot be copied or pickled; step() rebuilds them
        state.pop("_primed", None)  # a lock; prime() starts again
        return state

    @torch.no_grad()
    def _build_sampling_weights(self):
        lstm, n = self.lstm, len(self.config.lookback_bars)
        w = lstm.weight_ih_l0
        flag = torch.tensor([[0.0], [1.0]], dtype=w.dtype, device=w.device)  # a repeat flag's two values
        columns = [self.embed.weight, self.pos.step_in_beat.weight, self.pos.beat_in_bar.weight,
                   self.pos.bar_len.weight] + [self.lookback.weight] * n + [flag] * n
        parts, offsets, col, row = [], [], 0, 0
        for e in columns:
            d = e.shape[1]
            parts.append(e @ w[:, col:col + d].T)
            offsets.append(row)
            col, row = col + d, row + e.shape[0]
        layers = [(fused_linear.pack(w_hh if k == 0 else torch.cat([w_ih, w_hh], 1)), b_ih + b_hh)
                  for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(lstm.all_weights)]
        offsets = torch.tensor(offsets, device=w.device)
        return torch.cat(parts), offsets, layers, fused_linear.pack(self.head.weight)
