"""Continuations that end as asked (on the tonic, its chord, the dominant), and the LSTM's own
likelihood of each, so variations can be ranked best first.

The ending is reached by choosing, never by editing notes: the body of each variation is sampled up
to the start of its final bar(s), then ``candidates`` endings are sampled from the LSTM at that bar
line and played to the end (look-ahead), and the most likely ending that satisfies the rule is kept.
When none does, the most likely one is kept and the variation is flagged, so the caller can say so.

Ending rule (:func:`ends_on`): the continuation's last note

- has a pitch class of the asked set: ``tonic`` {1}, ``tonic chord`` the tonic triad {1, 3, 5}
  (minor third in minor), ``dominant`` the dominant triad V {5, 7, 2}, with the 7th degree natural
  or raised in minor (``Key.scale_pitch_classes`` allows both);
- *lands*: it starts on the final bar's downbeat or on its middle beat when the middle falls on a
  beat (4/4 beat 3, 2/4 and 6/8 beat 2, 12/8 beat 3; 3/4 and 9/8 have only the downbeat), the
  metrically strong places where cadences arrive. Only rests may follow it. A last note on a weak
  beat or an off-beat is a lead-in to a next phrase, not an ending; a note held over from an
  earlier bar has not landed in this one.

``like real tunes`` (the default) asks this of some variations only: each draws, from the
request's generator, whether its last note is to be a cadence, in the tonic triad without landing,
or elsewhere, as often as real tunes' last notes are at that bar of a phrase (REAL_ENDINGS), and the
most likely candidate of its kind is kept.

Likelihood (:func:`log_likelihood_per_note`): log2 P(continuation | primer) under the LSTM's own
distribution (temperature 1, no key mask, teacher-forced with exactly the inputs that sampling
gives it), divided by the continuation's note events (non-HOLD tokens: note-ons and rests). Per
event rather than per step or per row, because what a continuation has to decide grows with its
notes, not with its steps: a bar of one held note and a bar of sixteenths are both 16 steps.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import tokens as tk
from ..errors import RequestError
from ..melody import Key, Melody
from ..models.lstm import MelodyLSTM
from ..settings import draw_seed
from .engine import LN2
from .form import repeats

# "like real tunes" (the default) lands on the tonic chord as often as real tunes do where the
# continuation ends (see :func:`ending_targets`); the others hold for every variation that can.
LIKE_REAL = "like real tunes"
ENDINGS = ("free", "tonic", "tonic chord", "dominant", LIKE_REAL)
# Scale degrees of each ending as semitones above the tonic, by mode.
_ENDING_DEGREES = {
    "tonic": {"major": (0,), "minor": (0,)},
    "tonic chord": {"major": (0, 4, 7), "minor": (0, 3, 7)},
    "dominant": {"major": (7, 11, 2), "minor": (7, 10, 11, 2)},
}
# Endings sampled per variation, unsteered. The LSTM, like the tunes it learnt, mostly ends a bar with
# a lead-in to the next phrase, so few sampled last bars land on the tonic chord; the variations none
# of whose candidates land get rounds of endings steered to a cadence (CADENCE_CANDIDATES, a round
# each, while any variation still has none). Chosen with ``bench/eval_phrasing.py --split valid
# --candidates K``: 8 unsteered, then 16 and 24 steered, land as often as 40 and 40 did (99.8-100 %
# at temperatures 1.0 and 0.7), with the same repeats and primer copies and a likelihood per note
# nearer the real tunes', for about half the model's steps; the figures are in checkpoints/MODEL_CARD.md.
DEFAULT_CANDIDATES = 8
CADENCE_CANDIDATES = (16, 24)


def check_ending(ending: str) -> None:
    if ending not in ENDINGS:
        raise RequestError(f"Ending {str(ending)[:30]!r} is not one of {', '.join(ENDINGS)}.")


def ending_pitch_classes(ending: str, key: Key) -> frozenset[int] | None:
    """Pitch classes the last note may have; None for ``free`` and ``like real tunes`` (any)."""
    check_ending(ending)
    if ending in ("free", LIKE_REAL):
        return None
    return frozenset((key.tonic + d) % 12 for d in _ENDING_DEGREES[ending][key.mode])


def landing_steps(melody: Melody) -> tuple[int, ...]:
    """Steps where a final note lands: the final bar's downbeat, and its middle if that is a beat."""
    bar, beat = melody.bar_steps, melody.beat_steps
    into_last_bar = (melody.total_steps - melody.pickup_steps) % bar or bar
    downbeat = melody.total_steps - into_last_bar
    middle = () if bar % 2 or (bar // 2) % beat else (downbeat + bar // 2,)
    return tuple(s for s in (downbeat, *middle) if 0 <= s < melody.total_steps)


def ends_on(melody: Melody, ending: str, key: Key | None = None) -> bool:
    """Whether ``melody`` (a continuation alone, or any melody) ends as ``ending`` asks (see the
    module docstring). ``key`` defaults to the melody's own; ``free`` and ``like real tunes`` hold
    for any melody (the latter asks something of many variations, not of one)."""
    allowed = ending_pitch_classes(ending, key or melody.key)
    if allowed is None:
        return True
    if not melody.notes:
        return False
    last = melody.notes[-1]
    return last.pitch % 12 in allowed and last.start in landing_steps(melody)


# The logit added to the "Stay close" pull per unit of the input's share of repeated bars
# (repeat_pull): in the corpus, the bars after an input that repeats one of its bars repeat several
# times as often as after one that does not. Chosen on valid-split primers with
# ``bench/eval_phrasing.py --defaults``: continuations then repeat their bars about as often as the
# real next 4 and 8 bars, and follow the input's repetition; twice the pull matches the repeats a
# little closer, but fewer asked cadences land after an input that repeats (tests/test_phrasing.py's jig).
REPEAT_PULL = 1.2


def repeated_bar_share(tokens: np.ndarray, pickup_steps: int, bar_steps: int) -> float:
    """The share of the whole bars of ``tokens`` (after a pickup of ``pickup_steps``), among those
    after the first that start a note, equal token for token to an earlier bar (form.repeats)."""
    whole = (len(tokens) - pickup_steps) // bar_steps
    bars = np.asarray(tokens)[pickup_steps:pickup_steps + whole * bar_steps].reshape(whole, bar_steps)
    later = int((bars[1:] >= 2).any(1).sum())
    return sum(r.shift == 0 for r in repeats(bars)) / later if later else 0.0


def repeat_pull(tokens: np.ndarray, pickup_steps: int, bar_steps: int) -> float:
    """The pull (as sampling.stay_close_pull's) added for an input ``tokens`` whose bars repeat:
    REPEAT_PULL times :func:`repeated_bar_share`, so that a tune that repeats its bars goes on
    repeating them."""
    return REPEAT_PULL * repeated_bar_share(tokens, pickup_steps, bar_steps)


# -- ending like real tunes ----------------------------------------------------------------------
# How real tunes end a stretch of 4 bars, by where its last bar line falls: bars from the start of
# the tune, mod 8 (phrases of 4 and 8 bars). Per position, the share whose last note is a cadence
# (ends_on "tonic chord") and the share whose last note is in the tonic triad without landing
# (a passing or lead-in chord tone); the rest end elsewhere. Estimated on the train split, all
# meters: ``bench/eval_phrasing.py --ending-table`` prints it.
REAL_ENDINGS = ((0.20, 0.43), (0.06, 0.49), (0.09, 0.47), (0.05, 0.45),
                (0.14, 0.40), (0.04, 0.51), (0.08, 0.46), (0.05, 0.37))
CADENCE, TRIAD, OTHER = 0, 1, 2  # the kinds of last note that REAL_ENDINGS counts


def ending_targets(melody: Melody, n_new: int, variations: int, gen: torch.Generator) -> np.ndarray:
    """For ``like real tunes``: which kind of last note (CADENCE, TRIAD, OTHER) each of
    ``variations`` continuations of ``melody`` by ``n_new`` steps gets, drawn from ``gen`` with the
    shares real tunes have where the continuation ends (REAL_ENDINGS; the input is taken to start
    its tune). A share rather than a rule: real tunes cadence at the end of most phrases, yet most
    4-bar stretches end on a lead-in to the next bar, and a continuation that always closes sounds
    like the end of the piece."""
    bars = round((melody.total_steps - melody.pickup_steps + n_new) / melody.bar_steps)
    cadence, triad = REAL_ENDINGS[bars % len(REAL_ENDINGS)]
    u = torch.rand(variations, generator=gen).numpy()
    return np.where(u < cadence, CADENCE, np.where(u < cadence + triad, TRIAD, OTHER))


# -- likelihood -----------------------------------------------------------------------------------
@dataclass
class _Scored:
    """A segment's summed log2-probability per row, and where the LSTM stands after it."""

    log2p: np.ndarray  # (N,)
    next_logits: torch.Tensor  # (N, C): the prediction of the step after the segment
    state: tuple[torch.Tensor, torch.Tensor]


def _features(lstm: MelodyLSTM, metric: np.ndarray, hist: np.ndarray, bar_steps: int, positions: np.ndarray):
    """The inputs that ``MelodyService.generate_lstm`` builds for predicting ``positions`` from ``hist``."""
    f = tk.lstm_features(np.broadcast_to(metric[positions], (len(hist), len(positions), 3)), hist, bar_steps,
                         lstm.config.lookback_bars, positions)
    return torch.from_numpy(np.ascontiguousarray(f))


def _primed(lstm: MelodyLSTM, primer: np.ndarray, metric: np.ndarray, bar_steps: int, rows: int) -> _Scored:
    """The LSTM after ``primer`` (run once), as the starting point of ``rows`` rows."""
    logits, (h, c) = lstm(torch.from_numpy(primer).unsqueeze(0),
                          _features(lstm, metric, primer[None], bar_steps, np.arange(1, len(primer) + 1)))
    return _Scored(np.zeros(rows), logits[:, -1].expand(rows, -1),
                   (h.expand(-1, rows, -1).contiguous(), c.expand(-1, rows, -1).contiguous()))


def _score_segment(lstm: MelodyLSTM, hist: np.ndarray, start: int, metric: np.ndarray, bar_steps: int,
                   before: _Scored) -> _Scored:
    """Teacher-force ``hist[:, start:]`` (N rows) from ``before`` (one row per hist row)."""
    seg = hist[:, start:]
    if seg.shape[1] == 0:
        return _Scored(np.zeros(len(hist)), before.next_logits, before.state)
    # every token of the segment is fed, so the last output predicts the step after it (the next segment)
    logits, state = lstm(torch.from_numpy(np.ascontiguousarray(seg)),
                         _features(lstm, metric, hist, bar_steps, np.arange(start + 1, hist.shape[1] + 1)),
                         before.state)
    logits = torch.cat([before.next_logits.unsqueeze(1), logits], 1)
    lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, torch.from_numpy(seg).unsqueeze(-1)).squeeze(-1)
    return _Scored(lp.sum(1).double().numpy() / LN2, logits[:, -1], state)


def _events(rows: np.ndarray) -> np.ndarray:
    # at least one, so a continuation that only holds the primer's last note still gets a finite score
    return np.maximum((rows != tk.HOLD).sum(1), 1)


@torch.inference_mode()
def log_likelihood_per_note(lstm: MelodyLSTM, primer_tokens: np.ndarray, melody_for_features: Melody,
                            continuation_rows: np.ndarray) -> np.ndarray:
    """Each row's log2 P(row | primer) under ``lstm`` divided by its note events -> (N,) float64.

    ``melody_for_features`` gives the meter and pickup (as for ``MelodyService.generate_lstm``);
    ``continuation_rows`` (N, n) follow ``primer_tokens`` (T,).
    """
    primer = np.asarray(primer_tokens, np.int64)
    rows = np.asarray(continuation_rows, np.int64).reshape(len(continuation_rows), -1)
    T, m = len(primer), melody_for_features
    metric = tk.melody_features(m, T + rows.shape[1] + 1)
    hist = np.concatenate([np.broadcast_to(primer, (len(rows), T)), rows], 1)
    before = _primed(lstm, primer, metric, m.bar_steps, len(rows))
    return _score_segment(lstm, hist, T, metric, m.bar_steps, before).log2p / _events(rows)


# -- continuing with an ending --------------------------------------------------------------------
@dataclass(frozen=True)
class PhrasedRows:
    """Continuations, best first: ``tokens`` (V, n_new), the LSTM's log2-likelihood per note event
    of each (V,), whether each ends as asked (V,), and the seed that reproduces them. Rows that end
    as asked come before those that could not, each part in falling likelihood."""

    tokens: np.ndarray
    log2p_per_note: np.ndarray
    satisfied: np.ndarray
    seed: int | None = None


def generate_with_ending(service, primer: np.ndarray, m: Melody, n_new: int, batch: int, temperature: float,
                         gen: torch.Generator, mask: torch.Tensor | None = None, *, ending: str = "free",
                         key: Key | None = None, candidates: int = DEFAULT_CANDIDATES,
                         ending_bars: int = 1, pull: float = 0.0, like: np.ndarray | None = None) -> PhrasedRows:
    """``service.generate_lstm``'s arguments, plus the ending: ``batch`` rows of ``n_new`` tokens
    after ``primer``, each ending as asked where one of ``candidates`` sampled endings of its last
    ``ending_bars`` bars does, best first. ``key`` defaults to ``m.key``.

    ``service`` is what has ``sample_lstm`` (a ``MelodyService``). With one candidate
    there is nothing to choose: the rows are sampled in one pass, the very rows ``generate_lstm``
    gives, only ranked and checked.

    ``like real tunes``: each variation is given a kind of last note (:func:`ending_targets`), and
    the most likely ending of that kind is kept (a cadence serving for a last note in the triad);
    a cadence is searched for as ``tonic chord`` is. Where no candidate of a triad or other kind
    came, the most likely is kept. Every row counts as ending as asked.

    ``pull`` (sampling.stay_close_pull) steers the body toward or away from what the melody played
    1/2/4/8 bars before, more so the more of the input's own bars repeat (:func:`repeat_pull`):
    a tune that repeats its bars is continued by one that does. Candidate endings are drawn without
    it, as a cadence is not a repeat: a pull toward the input's bars makes far fewer of them land
    (bench/eval_phrasing.py measures it at "Stay close" 0 and 1). ``like`` (n_new,) are an earlier
    variation's tokens (:func:`reference_tokens`) that every row is steered toward, ending included.
    """
    check_ending(ending)
    if candidates < 1 or ending_bars < 1:
        raise RequestError(f"candidates ({candidates}) and ending_bars ({ending_bars}) must be at least 1.")
    key = key or m.key
    T = len(primer)
    n_body = 0 if candidates == 1 else max(0, n_new - ending_bars * m.bar_steps)
    pull = pull + repeat_pull(primer, m.pickup_steps, m.bar_steps)
    # The body once per variation, then every variation's candidate endings in one pass, each going
    # on from its own body's LSTM state; the likelihoods come with the samples (no scoring pass).
    body_like, end_like = (None, None) if like is None else (like[:n_body], like[n_body:])
    body = service.sample_lstm(primer, m, n_body, batch, temperature, gen, mask, pull=pull, like=body_like)
    # The last note, if it lands at all, starts inside the ending, so only the ending is decoded.
    grid = m.slice(T + n_body, T + n_body)  # the ending's bar grid, from where it starts in m's meter
    n_end = n_new - n_body
    like_real = ending == LIKE_REAL
    asked = "tonic chord" if like_real else ending
    search = asked != "free" and candidates > 1
    rule = EndingRule.of(grid, n_end, asked, key) if asked != "free" and (search or not like_real) else None
    target = ending_targets(m, n_new, batch, gen) if like_real and search else None
    width = max(candidates, *CADENCE_CANDIDATES) if search else candidates
    rows = np.zeros((batch, width, n_new), np.int64)
    ok, scores = np.zeros((batch, width), bool), np.full((batch, width), -np.inf)

    def endings(which: np.ndarray, k: int, **steering) -> None:
        """``k`` endings for each variation in ``which``, into rows, ok and scores."""
        run = service.sample_lstm(None, m, n_end, len(which) * k, temperature, gen, mask, after=body.take(which)
                                  if len(which) < batch else body, like=end_like, resumable=False, **steering)
        got = run.hist[:, T:]
        rows[which, :k] = got.reshape(len(which), k, n_new)
        ok[which, :k] = _met(rule, rows[which, :k, n_body:]) if target is None else \
            _of_kind(_kinds(rule, rows[which, :k]), target[which, None])
        scores[which, :k] = (run.log2p / _events(got)).reshape(len(which), k)
        ok[which, k:], scores[which, k:] = False, -np.inf

    everyone = np.arange(batch)
    prune = rule.pruner() if search and target is None else None  # other kinds are decided at the last note
    endings(everyone, candidates, pull=pull if candidates == 1 else 0.0, prune=prune)
    if search:
        cadence = rule.cadence()
        wanted = np.ones(batch, bool) if target is None else target == CADENCE
        # Rounds for the variations none of whose endings landed so far, steered to a cadence (most
        # land in the first); where none lands even then, one more ending drawn to the end (a pruned
        # candidate is not finished), kept and flagged.
        for k in CADENCE_CANDIDATES:
            missed = everyone[wanted & ~ok.any(1)]
            if len(missed):
                endings(missed, k, bias=cadence, prune=rule.pruner())
        still = everyone[wanted & ~ok.any(1)]
        if len(still):
            endings(still, 1, bias=cadence)
    scores = np.where(ok | ~ok.any(1, keepdims=True), scores, -np.inf)  # satisfying ones, if a variation has any
    pick = scores.argmax(1)  # the most likely satisfying ending, else the one drawn to the end (flagged)
    v = np.arange(batch)
    satisfied = ok[v, pick] if not like_real else np.ones(batch, bool)
    order = np.lexsort((-scores[v, pick], ~satisfied))  # those ending as asked first, each part best first
    return PhrasedRows(rows[v, pick][order], scores[v, pick][order], satisfied[order])


@dataclass(frozen=True)
class EndingRule:
    """:func:`ends_on` for the token rows of an ending of ``n_end`` steps that starts at ``grid``'s end,
    without decoding them: where a last note lands (steps into the ending) and the tokens it may be."""

    n_end: int
    lands: np.ndarray  # the downbeat first
    tokens: np.ndarray

    @classmethod
    def of(cls, grid: Melody, n_end: int, ending: str, key: Key) -> EndingRule:
        allowed = ending_pitch_classes(ending, key)
        lands = np.array(landing_steps(grid.replace(total_steps=grid.total_steps + n_end))) - grid.total_steps
        return cls(n_end, lands,
                   np.array([t for t in range(2, tk.NUM_CLASSES) if tk.token_to_pitch(t) % 12 in allowed]))

    def cadence(self) -> torch.Tensor:
        """(n_end, C) logits steering an ending toward a cadence: CADENCE_PULL on the ending's
        pitches at its landing steps, CADENCE_HOLD on HOLD after the first of them."""
        out = torch.zeros(self.n_end, tk.NUM_CLASSES)
        for s in self.lands:
            out[s, torch.from_numpy(self.tokens)] += CADENCE_PULL
        out[self.lands[0] + 1:, tk.HOLD] += CADENCE_HOLD
        return out

    def met(self, rows: np.ndarray) -> np.ndarray:
        """(N, n) rows, the ending's first n steps -> (N,) whether each, decoded, ends as asked so far:
        its last note (a pitch token, not HOLD or REST) starts on a landing step, with a pitch of
        the ending."""
        onsets = rows >= 2
        last = rows.shape[1] - 1 - np.argmax(onsets[:, ::-1], 1)
        return onsets.any(1) & np.isin(last, self.lands) & np.isin(rows[np.arange(len(rows)), last], self.tokens)

    def pruner(self):
        """For a round of candidate endings: stop stepping a candidate once it cannot end as asked,
        i.e. from the ending's last landing step on, as soon as its ending so far does not (a later
        note cannot land). Such a candidate is never chosen: its variation keeps one that ends as
        asked, or has none and goes to the next round. In 4/4 this saves most of the ending's
        second half, in 3/4 nearly all but its downbeat."""
        last_land = int(self.lands.max())

        def keep(block, i: int) -> np.ndarray:
            if i < last_land:
                return np.ones(len(block.live), bool)
            return self.met(block.padded[block.live, 1 + block.T:2 + block.T + i])  # steps 0..i of the ending

        return keep


def _kinds(rule: EndingRule, rows: np.ndarray) -> np.ndarray:
    """(V, K, n_new) whole continuations whose ending ``rule`` (tonic chord) judges -> (V, K) the kind
    of each one's last note: CADENCE (ends_on), TRIAD (its pitch in the chord, not landing), OTHER."""
    V, K, n = rows.shape
    flat = rows.reshape(V * K, n)
    onsets = flat >= 2
    last = n - 1 - np.argmax(onsets[:, ::-1], 1)
    triad = onsets.any(1) & np.isin(flat[np.arange(len(flat)), last], rule.tokens)
    kind = np.where(rule.met(flat[:, n - rule.n_end:]), CADENCE, np.where(triad, TRIAD, OTHER))
    return kind.reshape(V, K)


def _of_kind(kinds: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Whether endings of ``kinds`` give a variation the kind of last note ``target`` it drew: a
    cadence also serves TRIAD (its last note is in the triad too), which keeps the triad's share."""
    return (kinds == target) | ((target == TRIAD) & (kinds == CADENCE))


def _met(rule: EndingRule | None, end_rows: np.ndarray) -> np.ndarray:
    """(V, K, n_end) candidate endings -> (V, K) whether each ends as asked (all, without a rule: free)."""
    V, K, n = end_rows.shape
    return np.ones((V, K), bool) if rule is None else rule.met(end_rows.reshape(V * K, n)).reshape(V, K)


# The cadence rounds' steer (cadence_bias): the logit added to the ending's pitches where a final
# note may land, and to HOLD after the first such step, so a note that lands is held to the end.
# Chosen on valid-split primers with bench/eval_phrasing.py: the smallest pulls with which nearly
# every variation lands at temperatures 1.0 and 0.7; the table is in checkpoints/MODEL_CARD.md.
CADENCE_PULL, CADENCE_HOLD = 2.0, 2.0


def cadence_bias(grid: Melody, n_end: int, ending: str, key: Key) -> torch.Tensor:
    """(n_end, C) logits steering an ending of ``n_end`` steps (on ``grid``'s bar lines) toward a
    cadence (:meth:`EndingRule.cadence`). Only for variations whose unsteered endings all missed: in
    3/4 only the downbeat lands, and a continuation in running eighths seldom stops on it by itself."""
    return EndingRule.of(grid, n_end, ending, key).cadence()


def check_like(like, melody: Melody, n_new: int) -> None:
    """That ``like`` can be an earlier variation of ``melody``'s continuation of ``n_new`` steps (the
    new part alone, as ``ContinueResult.continuations[i]``), or :class:`RequestError` saying why not."""
    if not isinstance(like, Melody):
        raise RequestError(f"The variation to write more like must be a melody (a Continue result's "
                           f"continuations[i]), not {type(like).__name__}.")
    if (like.time_signature, like.steps_per_quarter) != (melody.time_signature, melody.steps_per_quarter):
        (a, b), (c, d) = like.time_signature, melody.time_signature
        raise RequestError(f"The variation to write more like is in {a}/{b} ({like.steps_per_quarter} steps per "
                           f"quarter) but the melody is in {c}/{d} ({melody.steps_per_quarter}); choose a variation "
                           "continued from this melody.")
    if like.total_steps != n_new:
        raise RequestError(f"The variation to write more like is {like.total_steps} steps long but this Continue "
                           f"writes {n_new}; ask for as many bars as that variation has.")
    if like.pickup_steps != (melody.pickup_steps - melody.total_steps) % melody.bar_steps:
        raise RequestError(f"The variation to write more like starts {like.pickup_steps} steps before a bar line but "
                           f"this melody's continuation starts "
                           f"{(melody.pickup_steps - melody.total_steps) % melody.bar_steps}; choose a variation "
                           "continued from this melody.")


def reference_tokens(like: Melody) -> np.ndarray:
    """An earlier variation's tokens to steer toward (sampling.steer), -1 at its first step unless a
    note starts there: the variation alone no longer says whether it held the input's last note
    or stopped it."""
    tokens = tk.encode(like).tokens
    if not any(n.start == 0 for n in like.notes):
        tokens[0] = -1
    return tokens


def continue_with_ending(service, request, ending: str, candidates: int = DEFAULT_CANDIDATES) -> PhrasedRows:
    """A ``ContinueRequest``'s continuations with ``ending`` and ``candidates``, best first, and the seed
    used: what ``MelodyService.continue_`` samples (for measuring choices continue_ does not expose)."""
    request = dataclasses.replace(request, ending=ending)
    request.validate()
    seed = draw_seed() if request.seed is None else request.seed
    out = service.continuation_rows(request, torch.Generator().manual_seed(seed), candidates)
    return PhrasedRows(out.tokens, out.log2p_per_note, out.satisfied, seed)
