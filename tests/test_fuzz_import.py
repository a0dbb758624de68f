"""Mutated, truncated and random files through load_melody: an ImportResult or one of our errors.

Over 200 cases, generated from the fixtures with a seeded random.Random per case, so every run (and
every failure) is reproducible by its id. Anything other than a MusicgenError escaping (IndexError,
KeyError, EOFError, a music21 exception, ...) fails the test with the case's id.
"""

from __future__ import annotations

import contextlib
import io
import random
import struct
import traceback
import zipfile

import mido
import pytest
from conftest import DATA

from musicgen_app.errors import MusicgenError
from musicgen_app.io.importer import ImportResult, load_melody, parse_text
from musicgen_app.melody import Melody

SEEDS = {  # fixture -> number of mutated cases
    "folk-tune.mid": 30, "multitrack.mid": 30, "type0.mid": 20, "ppq96-tempo-change.mid": 20,
    "pickup-3-4.mid": 20, "jig-6-8.mid": 10, "waltz-3-4.mid": 10,
    "two-part.musicxml": 30, "chorale-bwv66.6.mxl": 20, "jig.abc": 30,
}
RANDOM_CASES = 40  # random bytes behind each format's signature, and plain noise


def _mutate(data: bytes, rng: random.Random, is_midi: bool) -> bytes:
    buf = bytearray(data)
    op = rng.choice(["truncate", "flip", "insert", "delete", "duplicate", "header", "splice"])
    if op == "truncate":
        del buf[rng.randrange(1, len(buf)):]
    elif op == "flip":
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif op == "insert":
        at = rng.randrange(len(buf))
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == "delete":
        at = rng.randrange(len(buf))
        del buf[at:at + rng.randint(1, 32)]
    elif op == "duplicate":
        at = rng.randrange(len(buf))
        buf[at:at] = buf[at:at + rng.randint(1, 64)] * rng.randint(1, 4)
    elif op == "header" and is_midi:
        # Header fields: format, track count, division; or a track chunk's length.
        field = rng.choice([8, 10, 12, 18])
        struct.pack_into(">H" if field < 18 else ">I", buf, field,
                         rng.choice([0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFF, rng.randrange(1 << 16)]))
    else:  # splice text-ish garbage into the middle (or the header op for non-MIDI files)
        at = rng.randrange(len(buf))
        buf[at:at] = rng.choice([b"<note>", b"</measure>", b"K:", b"M:0/0\n", b"|:", b"&#0;", b"\x00", b"L:1/0\n"])
    return bytes(buf)


KEYS = ["C", "G", "F#", "Cb", "Am", "Ebm", "A#m", "Bb"]


def _mutate_midi_messages(data: bytes, rng: random.Random) -> bytes:
    """A file mido can still read, with odd values: what a buggy exporter (not a bad disk) writes."""
    mid = mido.MidiFile(file=io.BytesIO(data))
    if rng.random() < 0.3:
        mid.ticks_per_beat = rng.choice([1, 3, 7, 96, 960, 32767])
    for _ in range(rng.randint(1, 6)):
        track = rng.choice(mid.tracks)
        at = rng.randrange(len(track))  # before end_of_track
        op = rng.randrange(8)
        if op == 0:
            track[at] = track[at].copy(time=rng.choice([0, 1, 479, 10_000, 1 << 20, (1 << 28) - 1]))
        elif op == 1:
            track.insert(at, mido.MetaMessage("time_signature", numerator=rng.randint(1, 255),
                                              denominator=rng.choice([1, 2, 4, 8, 16, 32, 64, 128]),
                                              time=rng.choice([0, 0, 480, 240, 7])))
        elif op == 2:
            track.insert(at, mido.MetaMessage("set_tempo", tempo=rng.randint(1, 0xFFFFFF),
                                              time=rng.randint(0, 960)))
        elif op == 3:
            track.insert(at, mido.MetaMessage("key_signature", key=rng.choice(KEYS), time=rng.randint(0, 960)))
        elif op == 4:
            msg = track[at]
            if msg.type in ("note_on", "note_off"):
                track[at] = msg.copy(note=rng.randrange(128), velocity=rng.randrange(128),
                                     channel=rng.choice([msg.channel, 9, 15]))
        elif op == 5:  # lose every note-off of one track (notes then last until the track ends)
            track[:] = [m for m in track if m.type != "note_off"]
        elif op == 6 and mid.type != 0:
            mid.tracks.append(mido.MidiTrack(list(track)))
        else:
            track.insert(at, mido.Message("note_on", note=rng.randrange(128), velocity=rng.randint(1, 127),
                                          channel=rng.randrange(16), time=rng.randint(0, 2000)))
    for track in mid.tracks:  # end_of_track must stay last for mido to save the track
        eot = [m for m in track if m.type == "end_of_track"]
        track[:] = [m for m in track if m.type != "end_of_track"] + (eot or [mido.MetaMessage("end_of_track")])
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def _mutate_mxl_inside(data: bytes, rng: random.Random) -> bytes:
    """Mutate the MusicXML inside a .mxl and zip it again, so the archive itself stays valid."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    root = next(n for n in files if n.endswith(".xml") and not n.startswith("META-INF"))
    files[root] = _mutate(files[root], rng, False)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def _cases() -> list[tuple[str, bytes, str]]:
    cases = []
    for name, count in SEEDS.items():
        original = (DATA / name).read_bytes()
        for i in range(count):
            rng = random.Random(f"{name}-{i}")
            if name.endswith(".mid") and i % 2:
                mutated = _mutate_midi_messages(original, rng)
            elif name.endswith(".mxl") and i % 2:
                mutated = _mutate_mxl_inside(original, rng)
            else:
                mutated = _mutate(original, rng, name.endswith(".mid"))
            cases.append((f"{name}-{i}", mutated, name))
    prefixes = [b"MThd", b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk", b"PK\x03\x04",
                b"<?xml version='1.0'?><score-partwise>", b"X:1\nK:C\n", b"", b"4/4 "]
    for i in range(RANDOM_CASES):
        rng = random.Random(f"random-{i}")
        prefix = prefixes[i % len(prefixes)]
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 600)))
        if i % 3 == 0:  # printable noise, so the text paths (ABC, tinyNotation) are reached too
            alphabet = b"abcdefgABCDEFG,'^_=|:/[]()0123456789 \nKLMX"
            body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        filename = rng.choice(["x.mid", "x.musicxml", "x.mxl", "x.abc", "x.txt", ""])
        cases.append((f"random-{i}", prefix + body, filename))
    return cases


CASES = _cases()


def test_enough_cases():
    assert len(CASES) >= 200


@pytest.mark.parametrize("case_id, data, filename", CASES, ids=[c[0] for c in CASES])
def test_mutated_file_gives_a_result_or_our_error(case_id, data, filename):
    try:
        result = load_melody(data, filename=filename)
    except MusicgenError as exc:
        assert str(exc), f"{case_id}: {type(exc).__name__} without a message"
        return
    except Exception:  # anything else is a leak at the edge
        pytest.fail(f"{case_id}: leaked {traceback.format_exc(limit=-3)}")
    assert isinstance(result, ImportResult) and isinstance(result.melody, Melody)
    assert result.melody.notes and result.melody.whole_bars <= 64
    assert 0 <= result.track < len(result.tracks) and not result.tracks[result.track].is_drum


@pytest.mark.parametrize("seed", range(20))
def test_random_typed_text(seed):
    rng = random.Random(f"text-{seed}")
    text = "".join(rng.choice("abcdefgABCDEFGr#-.~'24816/ \n{}tripK:M:|") for _ in range(rng.randint(0, 80)))
    with contextlib.suppress(MusicgenError):
        parse_text(text)
