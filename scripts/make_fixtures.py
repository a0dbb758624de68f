"""Regenerate the synthetic test fixtures in tests/data/ (see tests/data/README.md for each file).

    .venv/bin/python scripts/make_fixtures.py

MIDI files are written with mido directly, not with musicgen_app.io.midi, so the importer is
tested against files it did not write itself. MusicXML is written by music21; the .mxl chorale is
copied from music21's bundled (public-domain) corpus. Everything is deterministic: running the
script again gives byte-identical files.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import zipfile
from pathlib import Path

import mido
import music21 as m21

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
CORRUPT = DATA / "corrupt"


# -- helpers ---------------------------------------------------------------------------------------
def notes_from(spec: str, start: float = 0.0) -> list[tuple[float, float, int]]:
    """'C4:1 D4:0.5 r:1' -> [(onset, duration, pitch)] in quarter notes; 'r' is a rest."""
    out, t = [], start
    for item in spec.split():
        name, dur = item.split(":")
        if name != "r":
            out.append((t, float(dur), m21.pitch.Pitch(name).midi))
        t += float(dur)
    return out


def track(name: str | None, notes, *, ppq: int = 480, channel: int = 0, program: int | None = None,
          velocity=lambda i: 90, jitter=lambda i: 0, meta=()) -> mido.MidiTrack:
    """A track from (onset, duration, pitch) in quarters; ``meta`` is [(tick, MetaMessage)]."""
    events = [(tick, 0, msg) for tick, msg in meta]
    if name is not None:
        events.append((0, 0, mido.MetaMessage("track_name", name=name)))
    if program is not None:
        events.append((0, 1, mido.Message("program_change", channel=channel, program=program)))
    for i, (onset, dur, pitch) in enumerate(notes):
        on = max(0, int(round(onset * ppq)) + jitter(i))
        off = max(on + 1, int(round((onset + dur) * ppq)) - 1)
        events.append((on, 3, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity(i))))
        # note_on with velocity 0 is the running-status way of saying note_off; use both kinds.
        off_msg = (mido.Message("note_on", channel=channel, note=pitch, velocity=0) if i % 2
                   else mido.Message("note_off", channel=channel, note=pitch, velocity=64))
        events.append((off, 2, off_msg))
    out, now = mido.MidiTrack(), 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        out.append(msg.copy(time=tick - now))
        now = tick
    out.append(mido.MetaMessage("end_of_track", time=0))
    return out


def conductor(title: str | None, *, num=4, den=4, qpm=120.0, key: str | None = "C", ppq=480,
              extra=()) -> mido.MidiTrack:
    meta = [(0, mido.MetaMessage("time_signature", numerator=num, denominator=den)),
            (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(qpm)))]
    if key:
        meta.append((0, mido.MetaMessage("key_signature", key=key)))
    return track(title, [], ppq=ppq, meta=list(meta) + list(extra))


def save(mid: mido.MidiFile, name: str, folder: Path = DATA) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    (folder / name).write_bytes(buf.getvalue())
    return buf.getvalue()


def write_musicxml(score: m21.stream.Score, path: Path) -> None:
    """music21's MusicXML with its random part ids and today's date made deterministic."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    text = GeneralObjectExporter(score).parse().decode("utf-8")
    for i, pid in enumerate(dict.fromkeys(re.findall(r'<score-part id="([^"]+)"', text)), start=1):
        text = text.replace(f'"{pid}"', f'"P{i}"')
    text = re.sub(r"<encoding-date>[^<]*</encoding-date>", "<encoding-date>2024-01-01</encoding-date>", text)
    path.write_text(text, encoding="utf-8")


def midi(tracks, *, type_=1, ppq=480) -> mido.MidiFile:
    mid = mido.MidiFile(type=type_, ticks_per_beat=ppq)
    mid.tracks.extend(tracks)
    return mid


# -- tunes (traditional / public domain, typed in by hand) -----------------------------------------
FRERE_JACQUES = ("F4:1 G4:1 A4:1 F4:1 F4:1 G4:1 A4:1 F4:1 A4:1 Bb4:1 C5:2 A4:1 Bb4:1 C5:2 "
                 "C5:0.5 D5:0.5 C5:0.5 Bb4:0.5 A4:1 F4:1 C5:0.5 D5:0.5 C5:0.5 Bb4:0.5 A4:1 F4:1 "
                 "F4:1 C4:1 F4:2 F4:1 C4:1 F4:2")
WALTZ = ("G4:2 B4:1 D5:2 B4:1 C5:2 A4:1 F#4:3 G4:2 B4:1 D5:1 E5:1 D5:1 C5:1 B4:1 A4:1 G4:3 "
         "E5:2 D5:1 C5:2 B4:1 A4:1 B4:1 C5:1 D5:3")
JIG = ("G4:0.5 B4:0.5 D5:0.5 G5:1 D5:0.5 E5:0.5 C5:0.5 A4:0.5 B4:1 G4:0.5 "
       "A4:0.5 B4:0.5 C5:0.5 D5:1 B4:0.5 A4:1.5 D4:1.5")
HAPPY_BIRTHDAY_PICKUP = "C4:0.5 C4:0.5"
HAPPY_BIRTHDAY = "D4:1 C4:1 F4:1 E4:2 C4:0.5 C4:0.5 D4:1 C4:1 G4:1 F4:2"


def make_midi() -> None:
    folk = notes_from(FRERE_JACQUES)
    save(midi([conductor("Frere Jacques", qpm=100, key="F"),
               track("Flute", folk, program=73, velocity=lambda i: 70 + (i * 7) % 40)]), "folk-tune.mid")

    save(midi([conductor("Little Waltz", num=3, den=4, qpm=150, key="G"),
               track("Piano", notes_from(WALTZ), program=0)]), "waltz-3-4.mid")

    save(midi([conductor("Jig", num=6, den=8, qpm=100, key="G"),
               track("Whistle", notes_from(JIG), program=78)]), "jig-6-8.mid")

    # The pickup is a bar of its own short meter (1/4), then 3/4: the convention midi_io reads.
    pickup = notes_from(HAPPY_BIRTHDAY_PICKUP) + notes_from(HAPPY_BIRTHDAY, start=1.0)
    save(midi([conductor("Happy Birthday", num=1, den=4, qpm=120, key="F",
                         extra=[(480, mido.MetaMessage("time_signature", numerator=3, denominator=4))]),
               track("Voice", pickup, program=52)]), "pickup-3-4.mid")

    # Multitrack: the melody is the last track and is not named "melody", so the heuristic decides.
    melody = notes_from("D5:1 F#5:0.5 E5:0.5 D5:1 A4:1 B4:1 D5:1 A4:2 "
                        "G4:1 B4:0.5 A4:0.5 G4:1 E4:1 F#4:1 E4:1 D4:2")
    bass = notes_from("D2:2 A2:2 G2:2 D2:2 G2:2 E2:2 A2:2 D2:2")
    chords = []
    for bar, triad in enumerate(["D4 F#4 A4", "G3 B3 D4", "A3 C#4 E4", "D4 F#4 A4"]):
        for beat in (0, 2):
            for p in triad.split():
                chords.append((bar * 4 + beat, 2, m21.pitch.Pitch(p).midi))
    drums = [(b * 0.5, 0.25, 42) for b in range(32)] + [(b, 0.25, 36) for b in range(0, 16, 2)]
    save(midi([conductor("Multitrack test", qpm=110, key="D"),
               track("Drums", sorted(drums), channel=9),
               track("Bass", bass, channel=1, program=33),
               track("Chords", chords, channel=2, program=0),
               track("Flute", melody, channel=3, program=73)]), "multitrack.mid")

    # Type 0: everything in one track, told apart by channel.
    one = mido.MidiTrack()
    events = [(0, -1, mido.MetaMessage("track_name", name="Type 0 tune")),
              (0, -1, mido.MetaMessage("time_signature", numerator=2, denominator=4)),
              (0, -1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90))),
              (0, -1, mido.MetaMessage("key_signature", key="Em")),
              (0, 0, mido.Message("program_change", channel=0, program=40)),
              (0, 0, mido.Message("program_change", channel=1, program=32))]
    for ch, spec in ((0, "E5:0.5 B4:0.5 G4:0.5 B4:0.5 E5:1 F#5:1 G5:0.5 F#5:0.5 E5:0.5 D#5:0.5 E5:2"),
                     (1, "E2:2 B2:2 E2:2 B2:1 E2:1")):
        for onset, dur, pitch in notes_from(spec):
            events.append((int(onset * 480), 2, mido.Message("note_on", channel=ch, note=pitch, velocity=80)))
            events.append((int((onset + dur) * 480), 1, mido.Message("note_off", channel=ch, note=pitch)))
    for b in range(12):
        events.append((b * 240, 2, mido.Message("note_on", channel=9, note=42, velocity=60)))
        events.append((b * 240 + 60, 1, mido.Message("note_off", channel=9, note=42)))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        one.append(msg.copy(time=tick - now))
        now = tick
    one.append(mido.MetaMessage("end_of_track", time=0))
    save(midi([one], type_=0), "type0.mid")

    # PPQ 96, tempo change at bar 3, played (not quantised) onsets, no key signature.
    rng = random.Random(96)
    jitter = [rng.randint(-4, 4) for _ in range(64)]
    played = notes_from("A4:1 B4:0.5 C5:0.5 D5:1 E5:1 D5:0.5 C5:0.5 B4:1 A4:2 "
                        "E5:1 D5:0.5 C5:0.5 B4:1 G#4:1 A4:4")
    save(midi([conductor(None, qpm=100, key=None, ppq=96,
                         extra=[(96 * 8, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(140)))]),
               track("Played", played, ppq=96, program=0, velocity=lambda i: 40 + (i * 13) % 80,
                     jitter=lambda i: jitter[i])], ppq=96), "ppq96-tempo-change.mid")


def make_scores() -> None:
    # MusicXML: two parts (melody over a bass), 6/8 in D major, a tie across the bar line, a title.
    score = m21.stream.Score()
    score.metadata = m21.metadata.Metadata(title="Two-part jig")
    tune = m21.converter.parse("tinyNotation: 6/8 d'8 f'# a' a'4 f'#8 e'4. d'4.~ d'4. a8 b c'# d'4. r4.")
    bass = m21.converter.parse("tinyNotation: 6/8 D4. AA4. GG4. AA4. D4. AA4. D2.")
    for part, name, key in ((tune, "Fiddle", "D"), (bass, "Cello", "D")):
        p = m21.stream.Part(id=name)
        p.partName = name
        p.insert(0, m21.key.Key(key))
        for el in part.flatten().notesAndRests:
            p.insert(el.offset, el)
        p.insert(0, m21.meter.TimeSignature("6/8"))
        p.insert(0, m21.tempo.MetronomeMark(number=110, referent=m21.note.Note(type="quarter")))
        measured = p.makeMeasures()
        measured.partName = name
        score.insert(0, measured)
    write_musicxml(score, DATA / "two-part.musicxml")

    corpus = Path(m21.__file__).parent / "corpus" / "bach" / "bwv66.6.mxl"
    shutil.copyfile(corpus, DATA / "chorale-bwv66.6.mxl")

    (DATA / "jig.abc").write_text(
        "X:1\nT:The Kesh (opening)\nR:jig\nM:6/8\nL:1/8\nQ:3/8=100\nK:G\n"
        "D|GAG GAB|ABA ABd|edd gdd|edB dBA|\nGAG GAB|ABA ABd|edd gdB|AGF G2:|\n")


def make_corrupt() -> None:
    CORRUPT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1234)
    folk = (DATA / "folk-tune.mid").read_bytes()
    (CORRUPT / "empty.mid").write_bytes(b"")
    (CORRUPT / "truncated.mid").write_bytes(folk[: len(folk) * 6 // 10])
    (CORRUPT / "random-bytes.mid").write_bytes(bytes(rng.randrange(256) for _ in range(2048)))
    (CORRUPT / "random-bytes.bin").write_bytes(bytes(rng.randrange(256) for _ in range(512)))
    # Header claims SMPTE time division (top bit set): not ticks per quarter note.
    (CORRUPT / "smpte-division.mid").write_bytes(
        b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\xe7\x28MTrk\x00\x00\x00\x04\x00\xff\x2f\x00")
    (CORRUPT / "not-music.txt").write_text(
        "Dear team,\nplease find the minutes of Tuesday's meeting below.\nThanks!\n")
    (CORRUPT / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(200)))
    drums = [(b * 0.5, 0.25, 42) for b in range(16)] + [(b, 0.25, 36) for b in range(8)]
    save(midi([conductor("Drums only"), track("Drums", sorted(drums), channel=9)]), "drums-only.mid", CORRUPT)
    save(midi([conductor("Silence"), track("Piano", [], program=0)]), "no-notes.mid", CORRUPT)
    xml = (DATA / "two-part.musicxml").read_bytes()
    (CORRUPT / "bad-xml.musicxml").write_bytes(xml[: len(xml) // 2])
    mxl = (DATA / "chorale-bwv66.6.mxl").read_bytes()
    (CORRUPT / "truncated.mxl").write_bytes(mxl[: len(mxl) // 2])
    (CORRUPT / "no-notes.abc").write_text("X:1\nT:Only a header\nM:4/4\nK:C\n")
    rests = m21.stream.Score()
    part = m21.stream.Part()
    part.append(m21.note.Rest(quarterLength=4))
    rests.insert(0, part.makeMeasures())
    write_musicxml(rests, CORRUPT / "rests-only.musicxml")
    assert zipfile.is_zipfile(io.BytesIO(mxl))


if __name__ == "__main__":
    DATA.mkdir(parents=True, exist_ok=True)
    make_midi()
    make_scores()
    make_corrupt()
    print("wrote", sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()))
