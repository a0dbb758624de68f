"""Melody, Note and Key validate on construction and say what was wrong; estimate_key finds keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from musicgen_app.errors import MelodyError
from musicgen_app.melody import Key, Melody, Note, estimate_key


def test_notes_are_sorted_and_total_defaults_to_the_last_end():
    m = Melody(notes=(Note(4, 62, 4), Note(0, 60, 2)))
    assert [n.start for n in m.notes] == [0, 4]
    assert m.total_steps == 8
    assert m.pitch_range == (60, 62)


def test_overlapping_notes_raise_and_name_both():
    with pytest.raises(MelodyError, match=r"pitch 60 at step 0 lasts until step 4.*pitch 64 starts at step 2"):
        Melody(notes=(Note(0, 60, 4), Note(2, 64, 2)))


def test_chord_raises():
    with pytest.raises(MelodyError, match="overlap"):
        Melody(notes=(Note(0, 60, 4), Note(0, 64, 4)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(start=0, pitch=128, duration=1), "128 is outside"),
    (dict(start=0, pitch=-1, duration=1), "-1 is outside"),
    (dict(start=-2, pitch=60, duration=1), "before the melody"),
    (dict(start=0, pitch=60, duration=0), "at least one step"),
    (dict(start=0, pitch=60, duration=1, velocity=0), "velocity 0"),
    (dict(start=0, pitch=60, duration=1, velocity=128), "velocity 128"),
    (dict(start=0, pitch="C4", duration=1), "pitch must be an integer"),
])
def test_bad_note_fields_raise(kwargs, message):
    with pytest.raises(MelodyError, match=message):
        Note(**kwargs)


def test_numpy_integers_are_normalised():
    n = Note(np.int64(2), np.int32(60), np.int16(3), np.uint8(100))
    assert type(n.start) is int and type(n.pitch) is int and n.velocity == 100


@pytest.mark.parametrize("kwargs, message", [
    (dict(time_signature=(5, 7)), "5/7 is not supported"),
    (dict(time_signature=(3, 32)), "3/32 is not supported"),
    (dict(time_signature=(0, 4)), "0/4 is not supported"),
    (dict(qpm=5), "Tempo 5"),
    (dict(qpm=500), "Tempo 500"),
    (dict(program=128), "program 128"),
    (dict(pickup_steps=16), "Pickup of 16 steps"),
    (dict(pickup_steps=-1), "Pickup of -1 steps"),
    (dict(time_signature=(3, 16), steps_per_quarter=2), "not a whole number of steps"),
    (dict(notes=(Note(0, 60, 8),), total_steps=4), "shorter than the last note"),
])
def test_bad_melody_fields_raise(kwargs, message):
    with pytest.raises(MelodyError, match=message):
        Melody(**{"notes": (), **kwargs})


def test_melody_is_frozen():
    m = Melody(notes=())
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.qpm = 90


@pytest.mark.parametrize("ts, bar, beat", [((4, 4), 16, 4), ((3, 4), 12, 4), ((2, 4), 8, 4),
                                           ((6, 8), 12, 6), ((12, 8), 24, 6), ((3, 8), 6, 2),
                                           ((2, 2), 16, 8)])
def test_bar_and_beat_steps(ts, bar, beat):
    m = Melody(notes=(), time_signature=ts)
    assert (m.bar_steps, m.beat_steps) == (bar, beat)


def test_bars_count_after_the_pickup():
    m = Melody(notes=(Note(0, 60, 4), Note(4, 62, 16)), pickup_steps=4)
    assert m.num_bars == 1.0 and m.whole_bars == 1
    assert m.summary()["pickup_steps"] == 4


@pytest.mark.parametrize("text, tonic, mode", [("D minor", 2, "minor"), ("Eb major", 3, "major"),
                                               ("f# minor", 6, "minor"), ("C", 0, "major"),
                                               ("Db major", 1, "major"), ("B- minor", 10, "minor")])
def test_key_parse(text, tonic, mode):
    assert Key.parse(text) == Key(tonic, mode)


@pytest.mark.parametrize("text", ["H major", "", "C major extra", "C dorian"])
def test_key_parse_rejects(text):
    with pytest.raises(MelodyError):
        Key.parse(text)


def test_key_rejects_bad_tonic():
    with pytest.raises(MelodyError, match="pitch class"):
        Key(12)


def test_minor_scale_includes_raised_sixth_and_seventh():
    assert Key(9, "minor").scale_pitch_classes() == frozenset({9, 11, 0, 2, 4, 5, 7, 6, 8})


@pytest.mark.parametrize("name", ["jig.abc", "jig-6-8.mid", "pickup-3-4.mid", "folk-tune.mid", "waltz-3-4.mid",
                                  "type0.mid", "chorale-bwv66.6.mxl", "two-part.musicxml"])
def test_estimate_key_finds_the_key_the_fixture_files_name(data_dir, name):
    # Krumhansl-Kessler profiles call the two jigs and "Happy Birthday" a fifth up, in their dominant
    from musicgen_app.io.importer import load_melody

    m = load_melody(data_dir / name).melody
    assert estimate_key(m.notes) == m.key


def test_estimate_key_takes_the_last_note_as_tonic_evidence():
    # the same line over C major / A minor's notes, ending on A or on C
    body = [69, 72, 76, 74, 72, 71, 72, 74, 76, 77, 76, 74, 72, 71]
    line = [Note(2 * i, p, 2) for i, p in enumerate(body)]
    assert estimate_key(line + [Note(28, 69, 2)]) == Key(9, "minor")
    assert estimate_key(line + [Note(28, 72, 2)]) == Key(0, "major")
    # the note that starts last counts, not the last one given
    assert estimate_key([Note(28, 69, 2)] + line) == Key(9, "minor")


def test_estimate_key_chooses_among_the_candidates_and_defaults_to_c_major():
    scale = [Note(2 * i, p, 2) for i, p in enumerate([62, 64, 66, 67, 69, 71, 73, 74])]  # D major
    assert estimate_key(scale) == Key(2, "major")
    assert estimate_key(scale, [Key(7, "major"), Key(4, "minor")]) == Key(7, "major")
    assert estimate_key([]) == Key(0, "major")
    assert estimate_key([], [Key(9, "minor")]) == Key(9, "minor")


def test_transpose_moves_notes_and_key():
    m = Melody(notes=(Note(0, 60, 4),), key=Key(0, "major")).transpose(3)
    assert m.notes[0].pitch == 63 and m.key == Key(3, "major")
    with pytest.raises(MelodyError):
        Melody(notes=(Note(0, 126, 4),)).transpose(5)


def test_slice_and_concat_keep_the_bar_grid():
    m = Melody(notes=(Note(0, 60, 4), Note(4, 62, 8), Note(12, 64, 8)), pickup_steps=4)
    head = m.slice(0, 12)
    assert [(n.start, n.duration) for n in head.notes] == [(0, 4), (4, 8)]
    tail = m.slice(4, 20)
    assert tail.pickup_steps == 0 and tail.notes[0] == Note(0, 62, 8)
    both = head.concat(tail)
    assert both.total_steps == 28 and len(both.notes) == 4


def test_snap_to_key_moves_only_the_notes_outside_the_scale_and_counts_them():
    from musicgen_app.melody import Key, snap_to_key

    # C major: C D Eb E F# G, then G# after A (a tie between G and A goes toward the previous note)
    notes = (Note(0, 60, 2), Note(2, 62, 2), Note(4, 63, 2), Note(6, 64, 2), Note(8, 66, 2), Note(10, 67, 2),
             Note(12, 69, 2), Note(14, 68, 2))
    melody = Melody(notes, key=Key(0, "major"), total_steps=16)
    snapped, moved = snap_to_key(melody)
    assert [n.pitch for n in snapped.notes] == [60, 62, 62, 64, 65, 67, 69, 69]
    assert moved == 3
    assert [(n.start, n.duration) for n in snapped.notes] == [(n.start, n.duration) for n in notes]
    assert snap_to_key(snapped) == (snapped, 0)
    # A minor allows the raised 6th and 7th (F#, G#); Bb after B goes back up to B
    minor = Melody((Note(0, 68, 2), Note(2, 71, 2), Note(4, 70, 2)), key=Key(9, "minor"), total_steps=8)
    out, moved = snap_to_key(minor)
    assert [n.pitch for n in out.notes] == [68, 71, 71] and moved == 1
    # another key than the melody's (D major): the first note's tie goes toward the next note
    assert [n.pitch for n in snap_to_key(melody, Key(2, "major"))[0].notes][:3] == [61, 62, 62]
