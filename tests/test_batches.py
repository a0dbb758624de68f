"""Training batches: transposition moves lookback tokens with the melody and keeps pitches in range."""

import numpy as np

from musicgen_app import tokens as tk
from musicgen_app.melody import Melody, Note
from musicgen_app.training.batches import IGNORE, lstm_batch, lstm_chunks


def high_tune():
    """Four bars of 4/4 whose top note is near the top of the model's range (named fixture)."""
    pitches = [96, 100, 103, 105, 96, 100, 103, 105, 98, 101, 105, 107, 96, 100, 103, 105]
    return Melody(notes=tuple(Note(4 * i, p, 4) for i, p in enumerate(pitches)), total_steps=64)


def test_lookback_tokens_move_with_the_transposed_melody():
    m = high_tune()
    data = lstm_chunks([m], 24, lookback_bars=(1,))  # rows shorter than the melody: lookback reaches before a row
    rng = np.random.default_rng(0)
    shifts = set()
    for _ in range(20):
        inp, feats, target = lstm_batch(data, np.arange(len(data)), rng)
        for r in range(len(inp)):
            start = r * 24
            row = tk.encode(m).tokens[start:start + 25]
            shift = int(target[r, 3] - row[4])  # step 4 of the tune is a note-on
            shifts.add(shift)
            steps = np.arange(1, data.lengths[r])
            back = feats[r, steps - 1, 3].numpy()
            original_back = np.where(start + steps - 16 >= 0, tk.encode(m).tokens[np.maximum(start + steps - 16, 0)],
                                     tk.LOOKBACK_NONE)
            moved = np.where((original_back >= 2) & (original_back < tk.NUM_CLASSES), original_back + shift,
                             original_back)
            assert np.array_equal(back, moved)
            # the row and what it looks back to bound the shift: no pitch leaves the range
            was_pitch = (original_back >= 2) & (original_back < tk.NUM_CLASSES)
            assert (moved[was_pitch] < tk.NUM_CLASSES).all() and (inp[r].numpy() < tk.NUM_CLASSES).all()
        assert (target[target != IGNORE] < tk.NUM_CLASSES).all()
    assert len(shifts) > 3 and max(shifts) <= tk.MAX_PITCH - 105
