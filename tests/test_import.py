"""importer.load_melody / parse_text over the named fixtures in tests/data (see its README)."""

from __future__ import annotations

import io
import re

import mido
import pytest

from musicgen_app import errors
from musicgen_app.io import importer
from musicgen_app.io.importer import detect_format, load_melody, parse_text
from musicgen_app.io.midi import melody_to_midi
from musicgen_app.io.quantize import detect_pickup
from musicgen_app.io.score import melody_to_musicxml
from musicgen_app.melody import Key, Melody, Note

# Each file in tests/data/corrupt/ and the error it must raise; the folder and this table must agree.
CORRUPT = {
    "empty.mid": "CorruptFileError",
    "truncated.mid": "CorruptFileError",
    "random-bytes.mid": "CorruptFileError",
    "smpte-division.mid": "CorruptFileError",
    "bad-xml.musicxml": "CorruptFileError",
    "truncated.mxl": "CorruptFileError",
    "not-music.txt": "NotMusicError",
    "random-bytes.bin": "NotMusicError",
    "image.png": "NotMusicError",
    "no-notes.mid": "NoNotesError",
    "no-notes.abc": "NoNotesError",
    "rests-only.musicxml": "NoNotesError",
    "drums-only.mid": "DrumsOnlyError",
}


def notes(melody: Melody) -> list[tuple[int, int, int]]:
    return [(n.start, n.pitch, n.duration) for n in melody.notes]


# -- the corrupt folder ----------------------------------------------------------------------------------
def test_corrupt_folder_and_table_agree(data_dir):
    assert sorted(p.name for p in (data_dir / "corrupt").iterdir() if p.is_file()) == sorted(CORRUPT)


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_corrupt_file_raises_the_named_error(data_dir, name):
    with pytest.raises(errors.ImportFailed) as info:
        load_melody(data_dir / "corrupt" / name)
    assert type(info.value).__name__ == CORRUPT[name]
    assert len(str(info.value)) > 40  # says what went wrong and what to do


# -- MIDI fixtures ---------------------------------------------------------------------------------------
def test_folk_tune(data_dir):
    r = load_melody(data_dir / "folk-tune.mid")
    m = r.melody
    assert r.format == "midi" and r.track == 0 and r.notices == []
    assert (m.name, m.time_signature, m.key, m.qpm, m.program) == (
        "Frere Jacques", (4, 4), Key(5, "major"), 100, 73)
    assert notes(m)[:4] == [(0, 65, 4), (4, 67, 4), (8, 69, 4), (12, 65, 4)]
    assert m.total_steps == 8 * 16 and len(m.notes) == 32
    assert [n.velocity for n in m.notes][:6] == [70, 77, 84, 91, 98, 105]  # kept from the file


def test_waltz_and_jig_meters(data_dir):
    waltz = load_melody(data_dir / "waltz-3-4.mid").melody
    assert waltz.time_signature == (3, 4) and waltz.bar_steps == 12 and waltz.whole_bars == 12
    jig = load_melody(data_dir / "jig-6-8.mid").melody
    assert jig.time_signature == (6, 8) and jig.key == Key(7, "major") and jig.program == 78
    assert notes(jig)[:3] == [(0, 67, 2), (2, 71, 2), (4, 74, 2)]


def test_pickup_from_a_short_first_meter(data_dir):
    m = load_melody(data_dir / "pickup-3-4.mid").melody
    assert m.time_signature == (3, 4) and m.pickup_steps == 4
    assert notes(m)[:3] == [(0, 60, 2), (2, 60, 2), (4, 62, 4)]  # the downbeat falls at step 4
    assert (m.total_steps - m.pickup_steps) % m.bar_steps == 8  # 3 bars and 2 beats after it


def test_multitrack_lists_tracks_and_picks_the_melody(data_dir):
    r = load_melody(data_dir / "multitrack.mid")
    assert [(t.name, t.is_drum, t.notes) for t in r.tracks] == [
        ("Drums", True, 40), ("Bass", False, 8), ("Chords", False, 24), ("Flute", False, 16)]
    assert (r.tracks[1].low, r.tracks[1].high) == (38, 45)
    assert r.track == 3 and r.melody.program == 73 and r.melody.name == "Multitrack test"
    assert r.melody.key == Key(2, "major") and r.melody.qpm == 110


def test_multitrack_chords_reduce_to_the_top_line(data_dir):
    r = load_melody(data_dir / "multitrack.mid", track=2)
    assert [n.pitch for n in r.melody.notes] == [69, 69, 62, 62, 64, 64, 69, 69]
    assert r.quantize.chord_notes_dropped == 16
    assert any("Chords reduced" in n and "16" in n for n in r.notices)


@pytest.mark.parametrize("track, match", [(0, "drum track"), (4, "does not exist"), (-1, "does not exist")])
def test_bad_track_choice(data_dir, track, match):
    with pytest.raises(errors.TrackChoiceError, match=match) as info:
        load_melody(data_dir / "multitrack.mid", track=track)
    assert "3: Flute" in str(info.value)  # lists the choices


def test_type0_splits_channels(data_dir):
    r = load_melody(data_dir / "type0.mid")
    assert mido.MidiFile(data_dir / "type0.mid").type == 0
    assert [(t.name, t.is_drum) for t in r.tracks] == [
        ("Channel 1 (Violin)", False), ("Channel 2 (Acoustic Bass)", False), ("Channel 10 (Drums)", True)]
    m = r.melody
    assert r.track == 0 and m.program == 40 and m.key == Key(4, "minor") and m.time_signature == (2, 4)
    assert m.qpm == 90 and m.name == "Type 0 tune"
    assert load_melody(data_dir / "type0.mid", track=1).melody.program == 32


def test_ppq96_tempo_change_and_played_timing(data_dir):
    r = load_melody(data_dir / "ppq96-tempo-change.mid")
    assert mido.MidiFile(data_dir / "ppq96-tempo-change.mid").ticks_per_beat == 96
    m = r.melody
    assert m.qpm == 100 and m.name == "ppq96-tempo-change"  # no title: the file name
    assert any("tempo changes to 140" in n for n in r.notices)
    assert any("no key signature" in n for n in r.notices) and m.key == Key(9, "minor")
    assert 0 < r.quantize.max_onset_shift <= 0.5
    assert any("Onsets moved" in n for n in r.notices)
    assert notes(m)[:4] == [(0, 69, 4), (4, 71, 2), (6, 72, 2), (8, 74, 4)]
    assert len({n.velocity for n in m.notes}) > 5


# -- scores ---------------------------------------------------------------------------------------------
def test_musicxml_two_parts(data_dir):
    r = load_melody(data_dir / "two-part.musicxml")
    assert r.format == "musicxml" and [t.name for t in r.tracks] == ["Fiddle", "Cello"] and r.track == 0
    m = r.melody
    assert (m.name, m.time_signature, m.key, m.qpm) == ("Two-part jig", (6, 8), Key(2, "major"), 110)
    assert (18, 74, 12) in notes(m)  # tied across the bar line: one note
    assert load_melody(data_dir / "two-part.musicxml", track=1).melody.pitch_range == (43, 50)
    with pytest.raises(errors.TrackChoiceError, match="Track 2 does not exist"):
        load_melody(data_dir / "two-part.musicxml", track=2)


def test_mxl_chorale_takes_the_soprano_with_its_pickup(data_dir):
    r = load_melody(data_dir / "chorale-bwv66.6.mxl")
    assert r.format == "mxl" and [t.name for t in r.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
    m = r.melody
    assert r.track == 0 and m.pickup_steps == 4 and m.key == Key(6, "minor") and m.time_signature == (4, 4)
    assert m.name == "chorale-bwv66.6" and m.pitch_range == (64, 76)


def test_abc_file(data_dir):
    r = load_melody(data_dir / "jig.abc")
    m = r.melody
    assert r.format == "abc" and m.name == "The Kesh (opening)"
    assert (m.time_signature, m.key, m.pickup_steps, m.qpm) == ((6, 8), Key(7, "major"), 2, 150)
    assert notes(m)[:3] == [(0, 62, 2), (2, 67, 2), (4, 69, 2)]


# -- sources, formats, limits -----------------------------------------------------------------------------
def test_bytes_with_and_without_filename(data_dir):
    data = (data_dir / "ppq96-tempo-change.mid").read_bytes()
    assert load_melody(data, filename="take 3.mid").melody.name == "take 3"
    assert load_melody(data).melody.name == ""
    assert load_melody(bytearray(data)).format == "midi"


@pytest.mark.parametrize("data, filename, fmt", [
    (b"MThd\x00\x00\x00\x06", "x.txt", "midi"),  # content beats the extension
    (b"PK\x03\x04rest", "", "mxl"),
    (b'<?xml version="1.0"?>\n<!DOCTYPE x>\n<score-partwise version="4.0">', "", "musicxml"),
    (b"<score-timewise>", "a.bin", "musicxml"),
    (b"X:1\nT:t\nK:G\nGAB|", "tune.txt", "abc"),
    (b"\xef\xbb\xbfK:D\nDEF|", "", "abc"),
    (b"garbage", "song.mid", "midi"),  # no signature: the extension decides (and parsing says 'damaged')
    (b"garbage", "song.MXL", "mxl"),
    (b"garbage", "song.xml", "musicxml"),
    (b"4/4 c4 d e f", "notes.txt", "tinynotation"),
    (b"4/4 c4 d e f", "", "tinynotation"),
])
def test_detect_format(data, filename, fmt):
    assert detect_format(data, filename) == fmt


def test_detect_format_refuses_binary_without_a_music_extension():
    with pytest.raises(errors.NotMusicError, match="not a music file"):
        detect_format(bytes(range(256)), "photo.jpg")


def test_over_5_mb_is_refused_before_parsing(tmp_path, monkeypatch):
    from musicgen_app.io import midi as midi_io

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed a file over the size limit")

    monkeypatch.setattr(midi_io, "read_midi", no_parsing)
    big = b"MThd" + bytes(importer.MAX_BYTES)
    with pytest.raises(errors.FileTooLargeError, match="over the 5 MB limit"):
        load_melody(big, filename="big.mid")
    path = tmp_path / "big.mid"
    path.write_bytes(big)
    with pytest.raises(errors.FileTooLargeError, match="big.mid is 5.0 MB"):
        load_melody(path)


def test_missing_path_is_an_import_error_that_shows_no_server_path(tmp_path):
    with pytest.raises(errors.ImportFailed, match="'nope.mid' is gone") as err:
        load_melody(tmp_path / "nope.mid")
    assert str(tmp_path) not in str(err.value)


PYTHON_WORDS = re.compile(r"Error\b|Exception|Traceback|b'|\\x[0-9a-f]{2}|/tmp/|site-packages")


@pytest.mark.parametrize("name", sorted(CORRUPT))
def test_messages_speak_to_musicians_not_programmers(data_dir, name):
    with pytest.raises(errors.ImportFailed) as err:
        load_melody(data_dir / "corrupt" / name)
    assert not PYTHON_WORDS.search(str(err.value)), str(err.value)


@pytest.mark.parametrize("head,kind", [(b"\x89PNG\r\n\x1a\n", "PNG image"), (b"%PDF-1.7\n", "PDF"),
                                       (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI video"),
                                       (b"\x00\x00\x00\x18ftypisom", "MP4 video")])
def test_a_common_wrong_file_is_named(head, kind):  # recordings are music now (tests/test_audio_import.py)
    with pytest.raises(errors.NotMusicError, match=kind) as err:
        load_melody(head + bytes(range(256)) * 4, filename="upload.bin")
    assert not PYTHON_WORDS.search(str(err.value)), str(err.value)


def test_a_zero_meter_is_a_meter_problem_not_damage():
    xml = melody_to_musicxml(Melody(notes=(Note(0, 60, 4), Note(4, 62, 4)), total_steps=16)).decode()
    bad = xml.replace("<beats>4</beats>", "<beats>0</beats>").replace("<beat-type>4</beat-type>",
                                                                       "<beat-type>0</beat-type>")
    with pytest.raises(errors.UnsupportedMeterError, match="Time signature 0/0"):
        load_melody(bad.encode(), filename="zero.musicxml")


def test_long_melody_is_trimmed_to_64_bars():
    long = Melody(notes=tuple(Note(i * 8, 60 + i % 12, 8) for i in range(160)), pickup_steps=4, name="Long")
    r = load_melody(melody_to_midi(long))
    assert r.melody.whole_bars == 64 and r.melody.total_steps == 4 + 64 * 16
    assert any("kept the first 64" in n for n in r.notices)
    assert r.melody.notes == long.slice(0, 4 + 64 * 16).notes


def test_out_of_range_pitches_are_reported():
    m = Melody(notes=(Note(0, 15, 4), Note(4, 60, 4), Note(8, 115, 4)))
    r = load_melody(melody_to_musicxml(m))
    assert notes(r.melody) == notes(m)  # kept as written; the models fold them
    assert any("2 note(s) lie outside pitches 21-108" in n for n in r.notices)


def test_program_set_in_another_track_is_found():
    mid = mido.MidiFile(file=io.BytesIO(melody_to_midi(Melody(notes=(Note(0, 60, 4),), program=40))))
    mid.tracks[1][:] = [m for m in mid.tracks[1] if m.type != "program_change"]
    mid.tracks[0].insert(0, mido.Message("program_change", channel=0, program=24))
    buf = io.BytesIO()
    mid.save(file=buf)
    assert load_melody(buf.getvalue()).melody.program == 24


def test_meter_change_is_reported():
    data = melody_to_midi(Melody(notes=(Note(0, 60, 4), Note(16, 62, 4)), time_signature=(4, 4)))
    mid = mido.MidiFile(file=io.BytesIO(data))
    mid.tracks[0].insert(-1, mido.MetaMessage("time_signature", numerator=3, denominator=4, time=16 * 120))
    buf = io.BytesIO()
    mid.save(file=buf)
    r = load_melody(buf.getvalue())
    assert r.melody.time_signature == (4, 4)
    assert any("meter changes to 3/4" in n for n in r.notices)


# -- typed text ------------------------------------------------------------------------------------------
def test_parse_tinynotation():
    r = parse_text("4/4 c4 d e f g2 g")
    assert r.format == "tinynotation" and r.melody.name == "Typed melody"
    assert notes(r.melody) == [(0, 60, 4), (4, 62, 4), (8, 64, 4), (12, 65, 4), (16, 67, 8), (24, 67, 8)]
    assert parse_text("tinyNotation: 3/4 c'8 d' e'4 r4").melody.time_signature == (3, 4)


def test_parse_abc_without_header_lines():
    r = parse_text("K:G\nGABc dedB|")
    assert r.format == "abc" and r.melody.key == Key(7, "major")
    assert [n.pitch for n in r.melody.notes][:4] == [67, 69, 71, 72]
    r = parse_text("M:3/4\nL:1/4\nCDE|")  # no K: line; C major is assumed
    assert r.melody.time_signature == (3, 4) and [n.pitch for n in r.melody.notes] == [60, 62, 64]


def test_parse_abc_with_two_tunes_takes_the_first():
    r = parse_text("X:1\nT:One\nK:C\nCDEF|\n\nX:2\nT:Two\nK:C\nGABc|\n")
    assert r.melody.name == "One" and any("2 tunes" in n for n in r.notices)


@pytest.mark.parametrize("text, error, match", [
    ("", errors.NotMusicError, "Nothing was typed"),
    ("   \n", errors.NotMusicError, "Nothing was typed"),
    ("hello world", errors.NotMusicError, "'hello', 'world'"),
    ("4/4 c4 d x9 e", errors.NotMusicError, "'x9'"),
    ("4/4", errors.NoNotesError, "No notes were typed"),
    ("4/4 r1 r1", errors.NoNotesError, "No notes"),
])
def test_parse_text_errors(text, error, match):
    with pytest.raises(error, match=match):
        parse_text(text)


def _upbeat_waltz() -> bytes:
    """A 3/4 tune that opens with one quarter and marks nothing: 16 bars and a beat of notes."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("time_signature", numerator=3, denominator=4))
    bar = [(67, 2), (64, 1)]  # a half note on the downbeat, a quarter after it
    notes = [(62, 1)] + bar * 16  # the upbeat, then 16 bars
    for pitch, beats in notes:
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=480 * beats))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def test_an_unmarked_upbeat_start_is_found_and_reported():
    r = load_melody(_upbeat_waltz(), filename="waltz.mid")
    assert r.melody.pickup_steps == 4 and r.melody.num_bars == 16  # not "16.33 bars"
    assert any("marks no pickup" in n for n in r.notices)


def test_a_file_of_whole_bars_gets_no_pickup_and_our_export_reads_back_as_written():
    # long notes on the second beat: read alone, the notes would suggest an upbeat start
    on_the_downbeat = Melody(notes=tuple(Note(12 * i + 4 * j, 60 + j, 8 if j == 1 else 4) for i in range(4)
                                         for j in range(2)) + (Note(48, 60, 4),),
                             total_steps=52, time_signature=(3, 4))  # 4.33 bars, no pickup
    assert detect_pickup(on_the_downbeat) == 4  # what an unmarked file of these notes would get
    assert load_melody(melody_to_midi(on_the_downbeat), filename="x.mid").melody == on_the_downbeat.replace(name="x")
