"""Model encoding of a Melody: one token per step, 90 classes (as MusicVAE's melody encoding).

    id   meaning
    0    HOLD   - nothing new happens: the sounding note goes on, or the silence goes on
    1    REST   - note-off: the sounding note stops here (also marks silence at step 0)
    2    pitch 21 (A0)
    ...
    89   pitch 108 (C8)          id = pitch - 19

A melody of ``total_steps`` steps is exactly ``total_steps`` tokens. Velocity is not encoded;
decoding gives every note ``velocity``. Pitches outside 21-108 are folded by octaves into the
range, and the number of folded notes is reported (:class:`Encoding`).

Metrical position (what the LSTM sees beside each token) is derived from the time signature and
pickup by :func:`metric_features`; :data:`ENCODING_VERSION` names this whole table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .errors import TokenError
from .melody import DEFAULT_VELOCITY, PIANO_HIGH, PIANO_LOW, Melody, Note

ENCODING_VERSION = "step90-v1"
HOLD = 0
REST = 1
MIN_PITCH = PIANO_LOW
MAX_PITCH = PIANO_HIGH
NUM_CLASSES = MAX_PITCH - MIN_PITCH + 3  # 90
MAX_BAR_STEPS = 32  # 8/4 at 4 steps per quarter; positions beyond are clipped
MAX_BEAT_STEPS = 8  # steps in one beat the position embedding tells apart; beyond are clipped
MAX_BEATS = 16  # beats in one bar the position embedding tells apart; beyond are clipped


def pitch_to_token(pitch: int) -> int:
    return fold_pitch(pitch) - MIN_PITCH + 2


def token_to_pitch(token: int) -> int:
    if not 2 <= token < NUM_CLASSES:
        raise TokenError(f"Token {token} is not a pitch token (2-{NUM_CLASSES - 1}).")
    return token + MIN_PITCH - 2


def fold_pitch(pitch: int) -> int:
    """Move a pitch by whole octaves into 21-108."""
    while pitch < MIN_PITCH:
        pitch += 12
    while pitch > MAX_PITCH:
        pitch -= 12
    return pitch


@dataclass(frozen=True)
class Encoding:
    tokens: np.ndarray  # int64, one per step
    folded_notes: int  # notes moved by octaves into range


def encode(melody: Melody) -> Encoding:
    tokens = np.full(melody.total_steps, HOLD, dtype=np.int64)
    if melody.total_steps:
        tokens[0] = REST
    folded = 0
    for note in melody.notes:
        token = pitch_to_token(note.pitch)
        folded += token_to_pitch(token) != note.pitch
        tokens[note.start] = token
        if note.end < melody.total_steps and tokens[note.end] == HOLD:
            tokens[note.end] = REST
    return Encoding(tokens, folded)


def decode(tokens, template: Melody | None = None, velocity: int = DEFAULT_VELOCITY) -> Melody:
    """Tokens back to a Melody; metadata (tempo, meter, key, program, pickup) from ``template``."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= NUM_CLASSES):
        bad = tokens[(tokens < 0) | (tokens >= NUM_CLASSES)][0]
        raise TokenError(f"Token {int(bad)} is outside 0-{NUM_CLASSES - 1}.")
    notes = []
    current = None  # (start, pitch)
    for step, tok in enumerate(tokens.tolist()):
        if tok == HOLD:
            continue
        if current is not None:
            notes.append(Note(current[0], current[1], step - current[0], velocity))
            current = None
        if tok >= 2:
            current = (step, tok + MIN_PITCH - 2)
    if current is not None:
        notes.append(Note(current[0], current[1], len(tokens) - current[0], velocity))
    template = template or Melody(notes=())
    return template.replace(notes=tuple(notes), total_steps=len(tokens))


def metric_features(n_steps: int, time_signature: tuple[int, int], pickup_steps: int = 0,
                    steps_per_quarter: int = 4, offset: int = 0) -> np.ndarray:
    """Per step: (step in beat, beat in bar, steps per bar), each clipped to its embedding size.

    Step ``t`` (counted from ``offset``) is ``(t - pickup) mod bar`` steps into its bar.
    Returns an int64 array of shape (n_steps, 3).
    """
    probe = Melody(notes=(), time_signature=time_signature, steps_per_quarter=steps_per_quarter)
    bar, beat = probe.bar_steps, probe.beat_steps
    t = np.arange(offset, offset + n_steps)
    pos = (t - pickup_steps) % bar
    out = np.empty((n_steps, 3), dtype=np.int64)
    out[:, 0] = np.minimum(pos % beat, MAX_BEAT_STEPS - 1)
    out[:, 1] = np.minimum(pos // beat, MAX_BEATS - 1)
    out[:, 2] = min(bar, MAX_BAR_STEPS) - 1
    return out


def melody_features(melody: Melody, n_steps: int | None = None, offset: int = 0) -> np.ndarray:
    return metric_features(melody.total_steps if n_steps is None else n_steps, melody.time_signature,
                           melody.pickup_steps, melody.steps_per_quarter, offset)


def vae_window(tokens: np.ndarray, start: int, length: int, window: int) -> np.ndarray:
    """``length`` tokens from ``start`` as one VAE input of ``window`` steps (training and serving).

    The clip is re-encoded as if it began there: a note held over its start is cut (a leading HOLD
    becomes REST, as Melody.slice does). A clip shorter than the window ends with a note-off and
    then silence.
    """
    seg = np.full(window, HOLD, np.int64)
    seg[:length] = tokens[start:start + length]
    if seg[0] == HOLD:
        seg[0] = REST
    if length < window:
        seg[length] = REST
    return seg


def clip_window(melody: Melody) -> np.ndarray:
    """The melody's tokens as a window that starts on its first step (a leading hold is a note-off)."""
    return vae_window(encode(melody).tokens, 0, melody.total_steps, melody.total_steps)


def window_digest(window: np.ndarray) -> bytes:
    """A short digest of a window's tokens, to look copies up in a set of digests."""
    return hashlib.blake2b(np.asarray(window, np.int8).tobytes(), digest_size=16).digest()


def whole_bars_steps(window: int, bar_steps: int) -> int:
    """Steps of the whole bars that fit in ``window`` (a VAE window in 3/4 holds 5 bars of 12)."""
    return (window // bar_steps) * bar_steps


LOOKBACK_NONE = NUM_CLASSES  # "no step that far back": one extra embedding row in the LSTM


def lookback_features(tokens: np.ndarray, bar_steps: int, lags: tuple[int, ...],
                      positions: np.ndarray | None = None) -> np.ndarray:
    """Lookback inputs (Magenta's Lookback RNN) for predicting the steps at ``positions``.

    ``tokens`` (B, N) is each row's history. For a predicted step ``t`` and each lag in bars:
    the token ``lag`` bars before ``t`` (LOOKBACK_NONE before the start), then for each lag
    1 when step ``t-1`` repeats the step ``lag`` bars before it. Folk tunes repeat bars and
    whole 4- and 8-bar phrases, so these let the model copy from far beyond its memory.
    Returns int64 (B, len(positions), 2 * len(lags)); positions default to every step.
    """
    tokens = np.asarray(tokens)
    N = tokens.shape[1]
    t = np.arange(N) if positions is None else np.asarray(positions)
    back = t[:, None] - np.asarray(lags) * bar_steps  # (T, lags); one call per array op: sampling runs this per step
    prev = np.maximum(t - 1, 0)[:, None]
    looked = np.where(back >= 0, tokens[:, np.maximum(back, 0)], LOOKBACK_NONE)
    repeats = (back >= 1) & (tokens[:, prev] == tokens[:, np.maximum(back - 1, 0)])
    return np.concatenate([looked, repeats], axis=2).astype(np.int64)


def lookback_gather(positions: np.ndarray, bar_steps: int, lags: tuple[int, ...]) -> np.ndarray:
    """Where lookback_features' columns come from, for sampling one step at a time: per position
    (n,) -> (n, 2 * len(lags)) column indices into a history padded in front by one column of
    LOOKBACK_NONE (``padded[:, j + 1]`` is step ``j``). Columns ``:k`` give the lookback tokens
    (the pad where the lag reaches before step 0); columns ``k:`` the steps that step ``t - 1``
    is compared with (the pad, which equals no token, where there is none), so with
    ``prev = padded[:, t]``, ``padded[:, idx[:, k:]] == prev`` are the repeat flags."""
    back = np.asarray(positions)[:, None] - np.asarray(lags) * bar_steps
    return np.concatenate([np.maximum(back + 1, 0), np.maximum(back, 0)], axis=1)


def bar_rows(m: Melody) -> np.ndarray:
    """The melody's whole bars from its first bar line as token rows (bars, bar_steps), int64; a
    pickup and a part bar at the end are left out."""
    toks = encode(m).tokens[m.pickup_steps:]
    n = len(toks) // m.bar_steps
    return toks[: n * m.bar_steps].reshape(n, m.bar_steps)


def lstm_features(metric: np.ndarray, tokens: np.ndarray, bar_steps: int, lags: tuple[int, ...],
                  positions: np.ndarray | None = None) -> np.ndarray:
    """What the LSTM sees beside each token: metrical columns (B, T, 3), then the lookback columns
    of the same steps from each row's ``tokens`` (see lookback_features)."""
    if not lags:
        return metric
    return np.concatenate([metric, lookback_features(tokens, bar_steps, lags, positions)], axis=-1)
