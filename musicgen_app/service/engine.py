"""One LSTM sampling loop per process that steps every active row of every request together.

Continue's model time is a chain of small steps (one token for a handful of rows), bound by reading
the LSTM's weights and by Python's per-step work, not by arithmetic: one step over 64 rows costs
about what three steps over 4 rows cost. So requests do not each run their own loop. A request's
thread prepares a :class:`Block` (its rows, primed on the input, and what steers them) and hands it
to the :class:`Engine`, whose one thread steps all blocks at once, the way LLM servers batch
decoding: blocks join and leave at step boundaries, and the request thread wakes when its block has
all its steps.

What keeps a request's result independent of what else is in the batch (the seed promise):

- each block draws its uniforms from its own generator, one per row per step, in row order;
- every numeric step is row-wise and gives a row the same bits in any batch: the LSTM cell on packed
  weights, the head on packed weights (``MelodyLSTM.head_rows``; BLAS's head would not), softmax,
  log-softmax and cumulative sums along a row; ``tests/test_engine.py`` runs a request alone and
  among others and compares the tokens and likelihoods bit for bit.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import tokens as tk
from ..errors import RequestError
from ..melody import Melody
from ..models.lstm import MelodyLSTM
from ..models.sampling import distinct_rows, draw_rows, form_pulls, like_bias, steer


@dataclass(frozen=True)
class LSTMRun:
    """Rows sampled by the engine: each row's tokens so far (primer included), the log2-likelihood
    of its sampled steps under the model's own distribution (temperature 1, no mask: what
    phrasing.log_likelihood_per_note computes by teacher forcing), and where the LSTM stands after
    them, so a caller can go on sampling from there."""

    hist: np.ndarray  # (B, T + sampled)
    log2p: np.ndarray  # (B,)
    next_logits: torch.Tensor | None  # (B, C): the prediction of the next step (None: not resumable)
    state: tuple[torch.Tensor, torch.Tensor] | None
    start: int = 0  # the first sampled step of hist, kept by runs that go on from this one

    def take(self, rows: np.ndarray) -> LSTMRun:
        """Only the rows ``rows``, to go on from."""
        idx = torch.from_numpy(np.asarray(rows, np.int64))
        return LSTMRun(self.hist[rows], self.log2p[rows], self.next_logits[idx],
                       (self.state[0][:, idx], self.state[1][:, idx]), self.start)


LN2 = math.log(2)


@dataclass(eq=False)
class Block:
    """One request's rows on their way through the engine (built by :func:`block`)."""

    padded: np.ndarray  # (B, 1 + T + n_new): LOOKBACK_NONE, then each row's history as it grows
    T: int
    n_new: int
    gather: np.ndarray  # per predicted step, the history columns its lookback inputs come from
    ahead_all: np.ndarray  # (n_new + 1, B, n_features): the inputs of each predicted step
    temperature: float
    pull: float
    mask: torch.Tensor | None  # (C,) added to every row's logits
    toward: torch.Tensor | None  # (n_new, C) added at each step, or None
    form: torch.Tensor | None  # (n_new + 1, k) the form pull per lag at each step (sampling.form_pulls), or None
    start: int  # the first sampled step (of this run, or of the run it goes on from)
    gen: torch.Generator
    resumable: bool
    log2p: np.ndarray  # (B,) the likelihood so far: before this block's steps, then adding each step's
    rows_last: torch.Tensor  # (live, C) each live row's next logits
    row: np.ndarray  # (live,) each live row's index among the distinct LSTM states h, c
    h: torch.Tensor
    c: torch.Tensor
    # rows still stepped; ``prune(block, i)`` (after step i's tokens are written) -> which of them go on
    live: np.ndarray | None = None
    prune: Callable[[Block, int], np.ndarray] | None = None
    i: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    result: LSTMRun | None = None
    error: BaseException | None = None

    def __post_init__(self):
        self.live = np.arange(len(self.padded))

    @property
    def rows(self) -> int:
        """The rows still stepped."""
        return len(self.live)

    def ahead(self, i: int) -> torch.Tensor:
        """The inputs for predicting step T + i, from the history so far."""
        k = (self.ahead_all.shape[2] - 3) // 2
        g = self.padded[:, self.gather[i]]
        self.ahead_all[i, :, 3:3 + k] = g[:, :k]
        self.ahead_all[i, :, 3 + k:] = g[:, k:] == self.padded[:, self.T + i:self.T + i + 1]
        return torch.from_numpy(self.ahead_all[i])

    @property
    def pruned(self) -> bool:
        return len(self.live) < len(self.padded)

    def lookback(self, i: int) -> torch.Tensor:
        k = (self.ahead_all.shape[2] - 3) // 2
        return torch.from_numpy(self.ahead_all[i, self.live if self.pruned else slice(None), 3:3 + k])

    def uniforms(self) -> torch.Tensor:
        """One uniform per row, pruned or not, so pruning changes no other row's draw; the live rows'."""
        u = torch.rand(len(self.padded), generator=self.gen)
        return u[torch.from_numpy(self.live)] if self.pruned else u

    def draw_the_rest(self) -> None:
        """The uniforms of the steps after this one, unused: a block whose rows were all pruned
        leaves its generator where stepping them to the end would, so what the request draws next
        (another round of endings) does not depend on the pruning."""
        for _ in range(self.i + 1, self.n_new):
            torch.rand(len(self.padded), generator=self.gen)

    def finish(self) -> None:
        state = None
        if self.h is not None:  # one state per row again, for take() and for going on
            back = torch.from_numpy(self.row)
            state = (self.h[:, back], self.c[:, back])
        self.result = LSTMRun(np.ascontiguousarray(self.padded[:, 1:]), self.log2p, self.rows_last, state, self.start)


@torch.inference_mode()
def block(lstm: MelodyLSTM, primer: np.ndarray | None, m: Melody, n_new: int, batch: int, temperature: float,
          gen: torch.Generator, mask: torch.Tensor | None = None, after: LSTMRun | None = None, *,
          pull: float = 0.0, like: np.ndarray | None = None, bias: torch.Tensor | None = None,
          resumable: bool = True, prune: Callable[[Block, int], np.ndarray] | None = None) -> Block:
    """A request's rows, ready for :meth:`Engine.run` (the arguments of MelodyService.sample_lstm).
    ``prune`` (only where ``resumable`` is False): after each step, which of the block's live rows
    go on being stepped (a boolean per live row); the others keep their tokens so far, then HOLD.

    Runs the LSTM over the primer here, in the request's thread: a primer is one row of up to
    hundreds of steps, which nn.LSTM runs as one call, where the engine would need a step for each;
    once per primer (MelodyLSTM.prime remembers the state), as a musician continues one input
    many times.
    """
    lags = lstm.config.lookback_bars
    past = np.atleast_2d(primer) if after is None else after.hist
    P, T = past.shape
    if batch % P:
        raise RequestError(f"{batch} rows cannot share {P} primers evenly.")
    reps = batch // P
    metric = tk.melody_features(m, T + n_new + 1)
    # Each row's history behind one LOOKBACK_NONE column, so that a step's lookback inputs are one
    # gather from it (tokens.lookback_gather) rather than a tokens.lstm_features call per step.
    padded = np.empty((batch, 1 + T + n_new), np.int64)
    padded[:, 0] = tk.LOOKBACK_NONE
    padded[:, 1:T + 1] = np.repeat(past, reps, axis=0)
    gather = tk.lookback_gather(np.arange(T, T + n_new + 1), m.bar_steps, lags)
    ahead_all = np.empty((n_new + 1, batch, 3 + 2 * len(lags)), np.int64)
    ahead_all[:, :, :3] = metric[T:, None, :]
    if after is None:
        f = tk.lstm_features(np.broadcast_to(metric[1:T + 1], (P, T, 3)), past, m.bar_steps, lags, np.arange(1, T + 1))
        last, (h, c) = lstm.prime(torch.from_numpy(np.ascontiguousarray(past)), torch.from_numpy(f))
        log2p = np.zeros(P)
    else:
        last, (h, c), log2p = after.next_logits, after.state, after.log2p
    # Rows with the same history have the same LSTM state, so the LSTM runs once per distinct
    # history: ``row`` maps each row to its state's row. Candidate endings are 40 draws from one
    # state each, and at a step half or more of them still share their history with another.
    row = np.repeat(np.arange(P), reps)
    start = T if after is None else after.start
    form = form_pulls(np.arange(T, T + n_new + 1), m.bar_steps, lags, start)
    toward = None if like is None else like_bias(like)
    if bias is not None:
        toward = bias if toward is None else toward + bias
    b = Block(padded, T, n_new, gather, ahead_all, float(temperature), float(pull), mask, toward,
              None if form is None else torch.from_numpy(form), start, gen, resumable,
              np.repeat(log2p, reps).astype(np.float64), last[torch.from_numpy(row)], row, h, c,
              prune=None if resumable else prune)
    b.ahead(0)  # step 0's lookback tokens, which steer reads
    return b


class Engine:
    """The one loop that steps every submitted :class:`Block` together (see the module docstring).
    Its thread starts with the first block; ``run`` is safe to call from any number of threads."""

    def __init__(self, lstm: MelodyLSTM):
        self.lstm = lstm
        self._pending: list[Block] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._advanced = 0  # the LSTM rows of the last step (rows sharing a history share one)
        self.stats = EngineStats()

    def run(self, b: Block) -> LSTMRun:
        if b.n_new == 0:
            b.finish()
            return b.result
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="lstm-engine", daemon=True)
                self._thread.start()
            self._pending.append(b)
            self._cv.notify()
        b.done.wait()
        if b.error is not None:
            raise b.error
        return b.result

    def _loop(self) -> None:
        _name_os_thread(b"lstm-engine")
        active: list[Block] = []
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not active and not self._pending:
                        self._cv.wait()
                    active += self._pending
                    self._pending.clear()
                cpu = time.thread_time()
                try:
                    finished = self.step(active)
                except Exception as exc:  # a bug: every request in the step is told, the loop goes on
                    for b in active:
                        b.error = exc
                        b.done.set()
                    active = []
                    continue
                finally:
                    self.stats.add(time.thread_time() - cpu, sum(b.rows for b in active), len(active), self._advanced)
                for b in finished:
                    b.finish()
                    active.remove(b)
                    b.done.set()

    def step(self, blocks: list[Block]) -> list[Block]:
        """One token for every live row of ``blocks`` -> the blocks that have all their steps now."""
        sizes = [b.rows for b in blocks]
        self._advanced = 0

        def cat(parts, dim: int = 0):
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim)

        def per_row(value, default: float):
            """A block's number as a column, one per live row; the plain default where no block
            has another (sampling.steer then skips that step: it would add exact zeros)."""
            if all(getattr(b, value) == default for b in blocks):
                return default
            return cat([torch.full((n, 1), getattr(b, value)) for b, n in zip(blocks, sizes)])

        def rows_of(tensors):
            """Each block's (C,) tensor (or None: zeros) for every live row, stacked; None if all are None."""
            if all(t is None for t in tensors):
                return None
            return cat([torch.zeros(n, tk.NUM_CLASSES) if t is None else t.expand(n, -1)
                        for t, n in zip(tensors, sizes)])

        logits = cat([b.rows_last for b in blocks])
        forms, k = None, next((b.form.shape[1] for b in blocks if b.form is not None), 0)
        if k:
            forms = cat([torch.zeros(n, k) if b.form is None else b.form[b.i].expand(n, -1)
                         for b, n in zip(blocks, sizes)])
        steered = steer(logits, per_row("temperature", 1.0), rows_of([b.mask for b in blocks]),
                        cat([b.lookback(b.i) for b in blocks]), per_row("pull", 0.0),
                        rows_of([None if b.toward is None else b.toward[b.i] for b in blocks]), forms)
        tok = draw_rows(steered, cat([b.uniforms() for b in blocks]))
        # the model's own likelihood (temperature 1, no mask), as phrasing.log_likelihood_per_note
        lp = (torch.log_softmax(logits, -1).gather(1, tok[:, None]).squeeze(1).double() / LN2).numpy()
        toks = tok.numpy()
        going, firsts, afters, inputs, prevs, o = [], [], [], [], [], 0
        finished = []
        for b, n in zip(blocks, sizes):
            bt, col = toks[o:o + n], b.T + b.i + 1
            o += n
            rows = b.live if b.pruned else slice(None)
            b.padded[rows, col] = bt
            b.log2p[rows] += lp[o - n:o]  # summed in step order
            if b.i == b.n_new - 1 and not b.resumable:
                b.rows_last = b.h = b.c = None
                b.i += 1
                finished.append(b)
                continue
            row = b.row
            if b.prune is not None:
                keep = b.prune(b, b.i)
                if not keep.all():
                    b.padded[b.live[~keep], col + 1:] = tk.HOLD
                    b.live, bt, row = b.live[keep], bt[keep], row[keep]
                    if not len(b.live):
                        b.draw_the_rest()
                        b.rows_last = b.h = b.c = None
                        b.i = b.n_new
                        finished.append(b)
                        continue
            # one step past the last token too, so the run can be gone on from
            x = b.ahead(b.i + 1)
            x = x[torch.from_numpy(b.live)] if b.pruned else x
            first, after_row = distinct_rows(row, bt)
            pick = torch.from_numpy(first)
            going.append(b)
            firsts.append(len(first))
            afters.append(after_row)
            inputs.append((torch.from_numpy(bt[first]), x[pick]))
            prev = torch.from_numpy(row[first])
            prevs.append((b.h[:, prev], b.c[:, prev]))
        if not going:
            return finished
        state = (cat([h for h, _ in prevs], 1), cat([c for _, c in prevs], 1))
        top, (h, c) = self.lstm.advance(cat([t for t, _ in inputs]), cat([x for _, x in inputs]), state)
        self._advanced = len(top)
        head = self.lstm.head_rows(top)
        d = 0
        for b, n_first, after_row in zip(going, firsts, afters):
            b.h, b.c = h[:, d:d + n_first], c[:, d:d + n_first]
            b.row = after_row
            b.rows_last = head[d:d + n_first][torch.from_numpy(after_row)]
            d += n_first
            b.i += 1
            if b.i == b.n_new:
                finished.append(b)
        return finished


def _name_os_thread(name: bytes) -> None:
    """The thread's name as top -H and /proc/PID/task/TID/comm show it (Linux; elsewhere nothing):
    bench/bench_app.py reads the engine's CPU time there."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME


class EngineStats:
    """The engine thread's CPU time and what it stepped, for the benchmarks."""

    def __init__(self):
        self._lock = threading.Lock()
        self.cpu_s = 0.0
        self.steps = 0
        self.row_steps = 0
        self.block_steps = 0
        self.lstm_rows = 0

    def add(self, cpu_s: float, rows: int, blocks: int, lstm_rows: int) -> None:
        with self._lock:
            self.cpu_s += cpu_s
            self.steps += 1
            self.row_steps += rows
            self.block_steps += blocks
            self.lstm_rows += lstm_rows

    def snapshot(self) -> dict:
        with self._lock:
            return {"cpu_s": self.cpu_s, "steps": self.steps, "row_steps": self.row_steps,
                    "block_steps": self.block_steps, "lstm_rows": self.lstm_rows}
