import numpy as np

from musicgen_app.training.ngram import KneserNey


def test_probabilities_sum_to_one_for_seen_and_unseen_contexts():
    rng = np.random.default_rng(0)
    kn = KneserNey(5, 90).fit([rng.integers(0, 8, size=300) for _ in range(20)])
    for ctx in ([1, 2, 3, 4], [80, 81, 82, 83]):
        total = sum(2 ** kn.log2_probs(np.array(ctx + [w]))[-1] for w in range(90))
        assert abs(total - 1) < 1e-9


def test_learns_a_repeating_pattern_better_than_uniform():
    seq = np.array([1, 2, 3, 0, 0] * 60)
    kn = KneserNey(5, 90).fit([seq])
    bits = -kn.log2_probs(np.array([1, 2, 3, 0, 0] * 10)).mean()
    assert bits < 0.5 < np.log2(90)
