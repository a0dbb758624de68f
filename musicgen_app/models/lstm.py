"""Next-step melody LSTM in the spirit of Magenta's Lookback RNN.

Input at step t: the token at t, the metrical position of step t+1 (the step being predicted:
step in beat, beat in bar, bar length) and the lookback inputs of step t+1 (the tokens 1, 2, 4
and 8 bars before it, and whether step t repeats those bars: see tokens.lookback_features);
output: logits over the 90 tokens of step t+1. Features arrive as one int64 array per step:
3 metrical columns, then 2 per lookback lag.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import tokens as tk
from ..errors import CheckpointError


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


def lstm_step(lstm: nn.LSTM, x: torch.Tensor | None, state, input_gates: torch.Tensor | None = None):
    """One time step of a (multi-layer, unidirectional) nn.LSTM: x (B, I), state (h, c) of (L, B, H).

    Sampling runs one step per call; nn.LSTM builds a oneDNN primitive on every such call, which
    costs milliseconds, while the plain cell kernel takes well under one (measured in bench/).
    ``input_gates`` (B, 4H), when given instead of ``x``, is the first layer's input projection
    with both biases already added (see MelodyLSTM.step).
    """
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

    def step(self, tokens: torch.Tensor, next_feats: torch.Tensor, state):
        """One step for sampling: tokens (B,), next_feats (B, n_features) -> logits (B, C), state."""
        if torch.is_grad_enabled():
            out, state = lstm_step(self.lstm, self.inputs(tokens, next_feats), state)
            return self.head(out), state
        # Sampling a few rows is bound by reading weights. The first layer's input is a
        # concatenation of embeddings, so its input projection is a sum of rows of precomputed
        # tables: one gather replaces the embeddings and a quarter of the weights read per step.
        table, offsets, repeats_w, bias = self._input_tables()
        n = len(self.config.lookback_bars)
        idx = torch.cat([tokens.unsqueeze(1), next_feats[:, :3 + n]], dim=1) + offsets
        gates = table[idx].sum(1) + bias + next_feats[:, 3 + n:].to(table.dtype) @ repeats_w
        out, state = lstm_step(self.lstm, None, state, input_gates=gates)
        return self.head(out), state

    def _input_tables(self):
        """(rows, 4H) table of every embedding row times its slice of the first layer's input
        weights, row offsets per input column, the repeat flags' weights, the first layer's bias.
        Rebuilt when a weight changed in place (an optimiser step, load_state_dict)."""
        embeddings = [self.embed, self.pos.step_in_beat, self.pos.beat_in_bar, self.pos.bar_len]
        embeddings += [self.lookback] * len(self.config.lookback_bars)
        w = self.lstm.weight_ih_l0
        used = [e.weight for e in embeddings] + [w, self.lstm.bias_ih_l0, self.lstm.bias_hh_l0]
        version = tuple((p._version, p.data_ptr()) for p in used)
        if getattr(self, "_tables_version", None) != version:
            with torch.no_grad():
                parts, offsets, col, row = [], [], 0, 0
                for e in embeddings:
                    d = e.weight.shape[1]
                    parts.append(e.weight @ w[:, col:col + d].T)
                    offsets.append(row)
                    col, row = col + d, row + e.weight.shape[0]
                self._tables = (torch.cat(parts), torch.tensor(offsets), w[:, col:].T.contiguous(),
                                self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0)
            self._tables_version = version
        return self._tables
