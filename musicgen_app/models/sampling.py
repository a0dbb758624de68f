"""Drawing one token per row from logits: temperature, optional mask, a caller's generator; and how
a continuation's draws are steered (:func:`steer`): toward or away from what the melody played 1, 2,
4 and 8 bars earlier ("Stay close"), with temperature kept
from changing how often it repeats; by a pull per lag on the continuation's own earlier bars (its
form: FORM_PULLS); and toward a chosen earlier variation ("more like variation N")."""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import tokens as tk

# "Stay close" (0..1) -> the logit added, per lag that had it, to the note or rest the melody had 1, 2,
# 4 and 8 bars before the step, interpolated between three points chosen on valid-split primers
# with ``bench/eval_phrasing.py --split valid``: at 0 hardly a bar of the input comes back, the
# middle (the default) repeats and copies bars about as often as the corpus's own tunes do, and at
# 1 continuations copy many of their bars from the input. Each lag weighs the same: alone, lag 4
# brings primer bars back most (phrases of 4 bars), lag 1 least, and a token that several lags
# agree on is pulled harder, as a motif that keeps returning should be.
STAY_CLOSE_PULLS = ((0.0, 0.5, 1.0), (-2.0, 0.2, 3.0))
# The continuation's own form: the logit added, per lookback lag (1, 2, 4, 8 bars), to the note or
# rest the continuation itself had that many bars before (lags reaching into the input are left to
# "Stay close"). Real tunes repeat a bar two bars later more often than the LSTM does, and four bars
# later far less: left alone, its 8-bar continuations repeat the bar 4 bars back several times as
# often as real tunes do. Chosen on valid-split primers, by the lag of each repeated bar.
FORM_PULLS = (0.0, 1.0, -1.5, 0.0)
# The logit added to the token the chosen earlier variation has at the same step ("more like"):
# large enough that new variations share most of the reference's rhythm and line, small enough
# that they are seldom copies of it (bench/eval_phrasing.py measures both per pull).
LIKE_PULL = 1.5


def pitch_mask(allowed_pitch_classes=None, pitch_range=None) -> torch.Tensor:
    """Additive logit mask over the 90 tokens: 0 where allowed, -inf where not (HOLD/REST always allowed)."""
    mask = torch.zeros(tk.NUM_CLASSES)
    for tok in range(2, tk.NUM_CLASSES):
        p = tk.token_to_pitch(tok)
        if allowed_pitch_classes is not None and p % 12 not in allowed_pitch_classes:
            mask[tok] = -math.inf
        if pitch_range is not None and not pitch_range[0] <= p <= pitch_range[1]:
            mask[tok] = -math.inf
    return mask


def sample_logits(logits: torch.Tensor, temperature: float, gen: torch.Generator | None, mask=None) -> torch.Tensor:
    """(B, C) logits -> (B,) tokens; temperature 0 means argmax. ``mask`` is added to the logits."""
    if mask is not None:
        logits = logits + mask
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits if temperature == 1 else logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def distinct_rows(row: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows that share an LSTM state (``row`` (B,): each row's state) and draw the same token go on
    sharing one. -> (first, row_after): a row for each distinct (state, token), to run the next
    step for, and each row's index among them."""
    _, first, after = np.unique(row * (tk.NUM_CLASSES + 1) + tokens, return_index=True, return_inverse=True)
    return first, after.reshape(-1)


def stay_close_pull(stay_close: float) -> float:
    """The logit pull toward the lookback's notes and rests for a "Stay close" value (see STAY_CLOSE_PULLS)."""
    return float(np.interp(stay_close, *STAY_CLOSE_PULLS))


def form_pulls(positions: np.ndarray, bar_steps: int, lags: tuple[int, ...], start: int) -> np.ndarray | None:
    """(n,) steps to predict -> (n, len(lags)) FORM_PULLS where the lag reaches back to a step of
    the continuation (``start`` on), 0 where it reaches into the input; None if FORM_PULLS are all 0."""
    weights = np.array([FORM_PULLS[i] if i < len(FORM_PULLS) else 0.0 for i in range(len(lags))], np.float32)
    if not weights.any():
        return None
    inside = np.asarray(positions)[:, None] - np.asarray(lags) * bar_steps >= start
    return inside * weights


def lookback_counts(lookback: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, k) the token each lookback lag had (``tk.LOOKBACK_NONE`` where the melody does not reach
    back that far) -> (B, C) float: how many lags had each token (or the sum of ``weights`` (B, k)
    over them). Holds count 0: a bar comes back through its notes and rests, and pulling on holds
    would change how many notes there are."""
    ones = torch.ones(lookback.shape) if weights is None else weights
    counts = torch.zeros(len(lookback), tk.NUM_CLASSES + 1).scatter_add_(1, lookback, ones)
    counts[:, tk.HOLD] = 0
    return counts[:, :tk.NUM_CLASSES]


def like_bias(reference: np.ndarray) -> torch.Tensor:
    """An earlier variation's tokens (n,), -1 where it has none -> (n, C): LIKE_PULL at each step's token."""
    ref = torch.from_numpy(np.asarray(reference, np.int64))
    return LIKE_PULL * (ref[:, None] == torch.arange(tk.NUM_CLASSES)).float()


def steer(logits: torch.Tensor, temperature: float | torch.Tensor, mask: torch.Tensor | None = None,
          lookback: torch.Tensor | None = None, pull: float | torch.Tensor = 0.0,
          like: torch.Tensor | None = None, form: torch.Tensor | None = None) -> torch.Tensor:
    """The logits to draw a continuation's next token from, at temperature 1. ``logits`` (B, C) are
    the LSTM's; ``lookback`` (B, k) the tokens 1/2/4/8 bars back (see lookback_counts); ``like`` (C,)
    or (B, C) a row of like_bias; ``temperature`` (> 0) and ``pull`` a number or one per row (B, 1),
    as the engine steps rows of many requests at once. Every operation is row-wise, so a row's
    result does not depend on the rows beside it.

    1. ``pull`` times the lags that had it is added to each lookback note and rest, in the model's
       own (temperature 1) logits: ``stay_close_pull`` maps "Stay close" to it; and ``form`` (B, k),
       a pull per lag (form_pulls), to the note or rest of that lag.
    2. Divided by the temperature, with the log-odds of drawing one of those lookback tokens set
       back to what they were at temperature 1. Temperature still sharpens the choice among the
       other tokens and among the lookback ones, but not the choice to repeat: left alone, a
       temperature below 1 makes the LSTM copy many more of its bars from the primer than real
       tunes repeat (bench/eval_phrasing.py reports primer copies at two temperatures). At
       temperature 1 and pull 0 both steps add exactly 0.
    3. ``like`` is added.

    With a number for ``temperature`` (1) or ``pull`` (0) that changes nothing, its step is skipped.
    """
    z = logits if mask is None else logits + mask
    if form is not None and lookback is not None:
        z = z + lookback_counts(lookback, form)
    pulled, warmed = not _is(pull, 0), not _is(temperature, 1)
    if lookback is not None and (pulled or warmed):
        counts = lookback_counts(lookback)
        if pulled:
            z = z + pull * counts
        if warmed:
            back = (counts > 0).float()
            # P(a lookback token) at temperature 1 and at ``temperature``; logit's eps keeps rows
            # where none can be drawn (or only they can) unshifted
            shares = (torch.softmax(torch.stack([z, z / temperature]), -1) * back).sum(-1)
            shift = torch.logit(shares, eps=1e-6)
            z = z / temperature + back * (shift[0] - shift[1])[:, None]
    elif warmed:
        z = z / temperature
    return z if like is None else z + like


def _is(value, number: float) -> bool:
    """Whether ``value`` is the plain number ``number`` (a tensor of one per row is not)."""
    return isinstance(value, float | int) and value == number


def draw_rows(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """(B, C) logits (temperature 1) and (B,) uniforms in [0, 1) -> (B,) tokens: each row's token is
    where its uniform falls in its cumulative distribution. The engine draws each request's
    uniforms from that request's generator, so a row's token depends on its own seed alone."""
    cdf = torch.softmax(logits, -1).cumsum_(-1)
    tok = torch.searchsorted(cdf, (uniforms * cdf[:, -1])[:, None], right=True).squeeze(1)
    return tok.clamp_(max=logits.shape[1] - 1)
