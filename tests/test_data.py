"""The corpus cache: dedupe, deterministic split, and the committed cache itself."""

import pytest

from musicgen_app.training import corpus
from musicgen_app.training.corpus import content_key, split_of


def rec(ident, notes):
    return {"coll": "t", "id": ident, "notes": notes, "total": notes[-1][0] + notes[-1][2], "ts": (4, 4),
            "key": (0, "major"), "pickup": 0, "qpm": 120.0}


TUNE = [(0, 60, 4), (4, 62, 4), (8, 64, 8)]


def test_transposed_copies_are_duplicates():
    up = [(s, p + 5, d) for s, p, d in TUNE]
    assert content_key(TUNE) == content_key(up)
    assert content_key(TUNE) != content_key([(0, 60, 4), (4, 62, 4), (8, 65, 8)])


def test_build_drops_duplicates_and_split_is_a_function_of_content():
    arrays, dupes = corpus.build([rec("a", TUNE), rec("b", [(s, p + 2, d) for s, p, d in TUNE]),
                                rec("c", [(0, 60, 2), (2, 67, 2)])])
    assert dupes == 1 and len(arrays["total"]) == 2
    assert corpus.SPLITS[arrays["split"][0]] == split_of(content_key(TUNE))


def test_split_proportions():
    import hashlib

    keys = [hashlib.sha1(str(i).encode()).hexdigest() for i in range(20000)]
    share = {s: sum(split_of(k) == s for k in keys) / len(keys) for s in corpus.SPLITS}
    assert 0.88 < share["train"] < 0.92 and 0.04 < share["test"] < 0.06


@pytest.mark.skipif(not corpus.DEFAULT_CACHE.exists(), reason="run `make data` to build the corpus cache")
def test_committed_corpus_cache():
    tunes = corpus.load_corpus()
    assert len(tunes) > 10000
    assert set(tunes.collections) >= {"essenFolksong", "oneills1850", "ryansMammoth", "bach"}
    test_ids = corpus.DEFAULT_CACHE.with_suffix(".test.txt").read_text().split()
    assert sorted(i for i, s in zip(tunes.ids, tunes.splits) if s == "test") == test_ids
