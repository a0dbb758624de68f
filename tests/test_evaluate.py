"""Held-out evaluation: bits per note event, the pitch-guard figures and the card blocks they go to."""

import math

import pytest

from musicgen_app import tokens as tk
from musicgen_app.melody import Melody, Note
from musicgen_app.service import MelodyService, pitch_guard
from musicgen_app.training import corpus, evaluate, stats
from musicgen_app.training.ngram import KneserNey


def tune(pitches, durations, rest_after=()):
    """A 4/4 line: each pitch for its duration in steps, a rest of 2 steps after the indices in ``rest_after``."""
    notes, t = [], 0
    for i, (p, d) in enumerate(zip(pitches, durations)):
        notes.append(Note(t, p, d))
        t += d + (2 if i in rest_after else 0)
    return Melody(notes=tuple(notes), total_steps=-(-t // 16) * 16)


@pytest.fixture(scope="module")
def melodies():
    return [tune([60, 62, 64, 65, 67, 65, 64, 62, 60] * 3, [4, 2, 2, 4, 4, 2, 2, 8, 4] * 3, rest_after=(3, 12)),
            tune([67, 69, 71, 72, 74, 72, 71, 69], [8, 4, 4, 2, 2, 4, 4, 4]),
            tune([72, 71, 69, 67], [1, 1, 2, 12], rest_after=(1,))]


def test_bits_per_event_divides_the_same_total_by_the_note_events(melodies):
    lstm = MelodyService.debug().lstm
    ngrams = {"5gram": KneserNey(5, tk.NUM_CLASSES).fit([tk.encode(m).tokens for m in melodies[:2]])}
    out = evaluate.eval_lstm(lstm, melodies, ngrams)
    tokens = [tk.encode(m).tokens for m in melodies]
    # predicted steps: all but each melody's first; events: those that are not HOLD (note-ons and rests)
    assert out["steps"] == sum(len(t) - 1 for t in tokens)
    events = sum(int((t[1:] != tk.HOLD).sum()) for t in tokens)
    assert out["note_events"] == events and 0 < events < out["steps"]
    assert out["bits_per_event"] * events == pytest.approx(out["bits_per_step"] * out["steps"])
    assert out["bits_per_step"] == pytest.approx(stats.lstm_bits_per_step(lstm, melodies))
    ngram_bits = -sum(ngrams["5gram"].log2_probs(t).sum() for t in tokens)
    assert out["5gram_bits_per_event"] == pytest.approx(ngram_bits / events)
    assert out["5gram_bits_per_step"] == pytest.approx(ngram_bits / out["steps"])
    # the same tokens and the same divisor: the gain is one figure in both units
    ratio = out["bits_per_event"] / out["5gram_bits_per_event"]
    assert out["reduction_vs_best_5gram"] == pytest.approx(1 - ratio)
    assert out["best_5gram"] == "5gram"
    # an untrained model is near uniform over the 90 tokens; the 5-gram has seen two of these tunes
    assert out["bits_per_step"] == pytest.approx(math.log2(tk.NUM_CLASSES), abs=0.5)
    assert out["5gram_bits_per_step"] < out["bits_per_step"]


def test_pitch_guard_figures_are_kept_shares_of_real_continuations():
    m = tune(list(range(60, 76)) + [40] + list(range(61, 76)), [4] * 31)  # one far-off note after bar 4
    out = evaluate.eval_pitch_guard({"one tune": [m]})["one tune"]
    windows = pitch_guard.continuation_windows([m])
    assert (out["windows"], out["notes"]) == (len(windows), sum(len(a) for _, a in windows)) == (1, 15)
    assert out["kept_new"] == out["kept_old"] == pytest.approx(14 / 15)


def test_card_blocks_are_filled_and_others_left_alone():
    report = {"date": "2026-01-01", "pitch_guard": {"folk test split": {"windows": 3, "notes": 40, "kept_old": 0.9,
                                                                        "kept_new": 0.975}}}
    for key in ("lstm", "classical"):
        report[key] = {"melodies": 2, "steps": 100, "note_events": 40, "bits_per_step": 1.0, "bits_per_event": 2.5,
                       "5gram_bits_per_step": 2.0, "5gram_bits_per_event": 5.0, "best_5gram": "5gram",
                       "reduction_vs_best_5gram": 0.5 if key == "lstm" else 0.2}
    text = ("a\n<!-- metrics:start -->\nold metrics\n<!-- metrics:end -->\n<!-- bits-per-note:start -->\nold\n"
            "<!-- bits-per-note:end -->\n<!-- pitch-guard:start -->\n<!-- pitch-guard:end -->\nz")
    text = evaluate.replace_block(text, "bits-per-note", evaluate.domains_markdown(report))
    text = evaluate.replace_block(text, "pitch-guard", evaluate.guard_markdown(report))
    assert "old metrics" in text and text.startswith("a\n") and text.endswith("\nz")
    assert "\nold\n" not in text
    assert "| folk test split | 2 | 100 | 40 | **1.000** | 2.000 | **2.500** | 5.000 | 50.0 % | train split |" in text
    assert "**holds** (50.0 %)" in text
    assert "| folk test split | 3 | 40 | 90.00 % | **97.50 %** |" in text
    report["lstm"]["reduction_vs_best_5gram"] = 0.25
    assert "**does not hold** (25.0 %)" in evaluate.domains_markdown(report)


def test_the_model_card_has_the_blocks_the_writer_fills():
    card = evaluate.CARD.read_text()
    for name in ("metrics", "bits-per-note", "pitch-guard", "sha256"):
        assert card.count(f"<!-- {name}:start -->") == 1 and card.count(f"<!-- {name}:end -->") == 1


def test_the_classical_set_is_held_out_of_the_training_corpus():
    classical = corpus.load_corpus(evaluate.CLASSICAL)
    assert len(classical) >= 50 and sum(len(m.notes) for m in classical.melodies) > 15_000
    tunes = corpus.load_corpus()
    assert not {corpus.content_key(n) for n in _note_lists(classical)} & {corpus.content_key(n) for n in
                                                                        _note_lists(tunes)}
    assert not set(classical.collections) & set(corpus.COLLECTIONS)


def _note_lists(tunes):
    a = tunes.arrays
    return [a["notes"][a["offsets"][i]:a["offsets"][i + 1]].tolist() for i in range(len(tunes))]
