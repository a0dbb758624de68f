"""Build the shipped example melodies in musicgen_app/examples/ from the music21 corpus.

Run from the project root:  PYTHONPATH=. .venv/bin/python scripts/make_examples.py

Every source is public domain (18th/19th-century tunes and Bach, as shipped in music21's corpus).
The files are written through our own converters, so they are also a small smoke test of them, and
in different formats on purpose: the studio's example picker then exercises every importer.

    folk_tune.abc       "Schlaf, Kindlein, schlaf", Essen folksong collection K0001 (ABC text, 2/4)
    chorale_line.musicxml  Bach, BWV 66.6, the soprano line (MusicXML, a pickup, F# minor)
    waltz_3-4.mid       "Sally in our Alley" from Aird's Airs, book 4 (3/4, MIDI, 8 bars)
    jig_6-8.mid         "Battle the Cash", Ryan's Mammoth Collection (6/8, MIDI, 8 bars)
    multitrack.mid      the jig's melody on track 2 between a bass line and a drum track (mido),
                        so the track picker has something to show
"""

from __future__ import annotations

import re
from pathlib import Path

import mido
import music21 as m21

from musicgen_app.io import midi as midi_io
from musicgen_app.io import score as score_io
from musicgen_app.io.importer import load_melody, parse_text
from musicgen_app.melody import Melody

OUT = Path(__file__).resolve().parent.parent / "musicgen_app" / "examples"
CORPUS = Path(m21.__file__).parent / "corpus"
BARS = 8


def abc_tune(book: Path, number: int) -> str:
    """One tune (from its ``X:`` line to the next) out of an ABC collection."""
    text = book.read_text(encoding="utf-8", errors="replace")
    parts = re.split(r"(?m)^(?=X:)", text)
    for part in parts:
        m = re.match(r"X:\s*0*(\d+)", part)
        if m and int(m.group(1)) == number:
            return part.strip() + "\n"
    raise SystemExit(f"No tune X:{number} in {book}")


def first_bars(m: Melody, bars: int = BARS) -> Melody:
    return m.slice(0, min(m.total_steps, m.pickup_steps + bars * m.bar_steps))


def multitrack(melody: Melody, path: Path) -> None:
    """A three-track file: bass (track 1), the melody (track 2), drums on channel 10 (track 3)."""
    ppq = 480
    tps = ppq // melody.steps_per_quarter
    mid = mido.MidiFile(type=1, ticks_per_beat=ppq)
    meta = mido.MidiTrack([
        mido.MetaMessage("time_signature", numerator=melody.time_signature[0],
                         denominator=melody.time_signature[1]),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(melody.qpm)),
        mido.MetaMessage("key_signature", key="G"),
    ])
    mid.tracks.append(meta)

    def track(name, channel, program, notes):
        t = mido.MidiTrack([mido.MetaMessage("track_name", name=name)])
        if channel != 9:
            t.append(mido.Message("program_change", channel=channel, program=program))
        events = []
        for start, pitch, dur, vel in notes:
            events.append((start * tps, 1, mido.Message("note_on", channel=channel, note=pitch, velocity=vel)))
            events.append(((start + dur) * tps, 0, mido.Message("note_off", channel=channel, note=pitch)))
        now = 0
        for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            t.append(msg.copy(time=tick - now))
            now = tick
        return t

    bar, beat = melody.bar_steps, melody.beat_steps
    bars = melody.whole_bars
    roots = [43, 48, 43, 50] * (bars // 4 + 1)  # G C G D, one per bar
    bass = [(melody.pickup_steps + i * bar + b, roots[i], beat - 1, 80)
            for i in range(bars) for b in range(0, bar, beat)]
    drums = [(melody.pickup_steps + i * bar + b, 36 if b == 0 else 42, 1, 100)
             for i in range(bars) for b in range(0, bar, beat)]
    lead = [(n.start, n.pitch, n.duration, n.velocity) for n in melody.notes]
    mid.tracks.append(track("Bass", 1, 32, bass))
    mid.tracks.append(track("Fiddle", 0, 40, lead))
    mid.tracks.append(track("Drums", 9, 0, drums))
    mid.save(path)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    folk = abc_tune(CORPUS / "essenFolksong" / "kinder0.abc", 1)
    (OUT / "folk_tune.abc").write_text(folk, encoding="utf-8")

    chorale = m21.corpus.parse("bach/bwv66.6")
    soprano = score_io.stream_to_melody(chorale, 0)
    soprano = soprano[0] if isinstance(soprano, tuple) else soprano
    soprano = first_bars(soprano).replace(name="Chorale line (BWV 66.6, soprano)")
    (OUT / "chorale_line.musicxml").write_bytes(score_io.melody_to_musicxml(soprano))

    waltz = parse_text(abc_tune(CORPUS / "airdsAirs" / "book4.abc", 649)).melody
    waltz = first_bars(waltz).replace(name="Sally in our Alley")
    midi_io.melody_to_midi(waltz, OUT / "waltz_3-4.mid")

    jig = parse_text((CORPUS / "ryansMammoth" / "BattleTheCashJig.abc").read_text()).melody
    jig = first_bars(jig).replace(name="Battle the Cash")
    midi_io.melody_to_midi(jig, OUT / "jig_6-8.mid")
    multitrack(jig, OUT / "multitrack.mid")

    for path in sorted(p for p in OUT.iterdir() if p.suffix != ".md"):  # README.md says where each came from
        r = load_melody(path)
        s = r.melody.summary()
        print(f"{path.name:24} {r.format:9} {s['time_signature']:5} {s['key']:9} {s['bars']:5} bars "
              f"{s['notes']:3} notes {s['tempo_qpm']} qpm  tracks={len(r.tracks)} track={r.track} {r.notices}")


if __name__ == "__main__":
    main()
