"""Standard MIDI files <-> Melody (via mido): ``midi_to_melody`` / ``melody_to_midi``.

Export layout (what DAWs expect): type 1, 480 ticks per quarter; track 0 is the conductor track
(song name, time signature, key signature, tempo), track 1 holds the melody (track name, GM program
on channel 1, note on/off with the melody's velocities). Every note starts and ends on a grid tick
(480 / steps_per_quarter ticks per step). The file ends (end_of_track) at ``total_steps``.
``sections_to_midi`` writes several melodies one after another (a morph's steps) in one such file,
with a time signature, key signature or tempo event where a section changes them.

Pickups: the file starts with the pickup at tick 0, written as a short bar of its own meter
(a one-beat pickup in 3/4 is a 1/4 bar, then 3/4 from the first downbeat), so bar lines in a DAW
fall where the melody's do. A melody without a pickup whose length is not whole bars gets a text
event "no pickup" in the conductor track, because on import such a file is otherwise checked for
an unmarked upbeat start (see ``quantize.detect_pickup``). On import, a first bar whose meter
lasts exactly until a second time signature, and is shorter than that meter's bar, is read back as
a pickup (music21 reads ABC anacruses the same way). When the pickup is not a whole number of
1/2^n notes (odd steps_per_quarter), the export falls back on a leading rest that fills the first
bar.

Import: type 0, 1 and 2, any PPQ (SMPTE time division is refused). Type 1/2 tracks are the
candidates (drum-channel notes split off as their own drum candidate); a type 0 file's channels are.
The first tempo is used and later changes are reported; so are meter changes.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import mido

from ..errors import CorruptFileError, MelodyError
from ..melody import Key, Melody, estimate_key
from .quantize import (
    QuantizeReport,
    RawNote,
    TrackInfo,
    build_melody,
    choose_track,
    describe_track,
    detect_pickup,
    first_meter,
    first_tempo,
)

log = logging.getLogger(__name__)

PPQ = 480
NO_PICKUP = "no pickup"  # a text event in the conductor track: the first bar is a whole bar
MAX_NOTES = 50_000  # read at most this many notes of a file: bounds the work of the track listing
DRUM_CHANNEL = 9  # channel 10 as musicians count
MELODY_CHANNEL = 0


@dataclass
class MidiReport:
    """What the MIDI import found besides the melody."""

    tracks: list[TrackInfo]
    track: int  # index into ``tracks`` of the track that became the melody
    notices: list[str] = field(default_factory=list)
    quantize: QuantizeReport | None = None
    tempi: list[float] = field(default_factory=list)  # qpm, in file order
    title: str = ""
    key_from_file: bool = False


# -- export ----------------------------------------------------------------------------------------
def _pickup_meter(pickup_steps: int, steps_per_quarter: int) -> tuple[int, int] | None:
    """The pickup as a time signature (num, 2^k), or None when no power-of-two note fits."""
    frac = Fraction(pickup_steps, 4 * steps_per_quarter)  # in whole notes
    den = frac.denominator
    if den & (den - 1) or den > 64:
        return None
    return frac.numerator, den


def _time_signature(num: int, den: int, tick: int) -> mido.MetaMessage:
    compound = den == 8 and num % 3 == 0 and num > 3
    clocks = 24 * 4 // den * (3 if compound else 1)  # MIDI clocks per felt beat
    return mido.MetaMessage("time_signature", numerator=num, denominator=den,
                            clocks_per_click=max(1, min(255, clocks)), notated_32nd_notes_per_beat=8, time=tick)


def _with_deltas(events: list[tuple[int, int, mido.Message]], end_tick: int) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(skip_checks=True, time=tick - now))  # checked when made
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return track


def melody_to_midi(melody: Melody, path: str | Path | None = None) -> bytes:
    """The melody as a type-1 MIDI file (see the module docstring); also written to ``path`` if given."""
    return sections_to_midi([melody], path)


def sections_to_midi(sections: Sequence[Melody], path: str | Path | None = None, *, name: str | None = None) -> bytes:
    """Melodies one after another as one type-1 MIDI file; also written to ``path`` if given.

    Each section starts where the one before ends (its ``total_steps``, plus a leading rest for a
    pickup that no time signature can hold). The conductor track sets the first section's meter,
    key and tempo at tick 0 and again at the first tick of each later section whose meter, key or
    tempo differs from the one before, so a DAW follows every section's own; a section with a
    pickup opens with its pickup meter. A change of GM program goes into the melody track the same
    way. The song name is ``name`` (default: the first section's name); the melody track is named
    after the first section's part. With one section this is :func:`melody_to_midi`.
    """
    if not sections:
        raise MelodyError("There is no melody to write: pass at least one section.")
    first = sections[0] if name is None else sections[0].replace(name=name)
    meta: list[tuple[int, int, mido.Message]] = []
    if first.name:
        meta.append((0, 0, mido.MetaMessage("track_name", name=first.name)))
    notes: list[tuple[int, int, mido.Message]] = [
        (0, 0, mido.MetaMessage("track_name", name=first.part_label)),
        (0, 1, mido.Message("program_change", channel=MELODY_CHANNEL, program=first.program)),
    ]
    tick = 0
    before: Melody | None = None
    for melody in sections:
        spq = melody.steps_per_quarter
        if PPQ % spq:
            raise MelodyError(f"{spq} steps per quarter do not divide MIDI's {PPQ} ticks; use 1, 2, 3, 4, 6, 8 or 12.")
        tps = PPQ // spq
        num, den = melody.time_signature
        shift = 0
        pickup_meter = _pickup_meter(melody.pickup_steps, spq) if melody.pickup_steps else None
        if pickup_meter:
            meta.append((tick, 1, _time_signature(*pickup_meter, 0)))
            meta.append((tick + melody.pickup_steps * tps, 1, _time_signature(num, den, 0)))
        else:
            if melody.pickup_steps:
                shift = melody.bar_steps - melody.pickup_steps  # leading rest so bar lines still line up
            if before is None or before.time_signature != melody.time_signature:
                meta.append((tick, 1, _time_signature(num, den, 0)))
        if before is None or before.key != melody.key:
            keyname = melody.key.tonic_name + ("m" if melody.key.mode == "minor" else "")
            meta.append((tick, 2, mido.MetaMessage("key_signature", key=keyname)))
        if before is None or before.qpm != melody.qpm:
            meta.append((tick, 3, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(melody.qpm))))
        if before is not None and before.program != melody.program:
            # order 2 with the note-offs, appended after the last section's: they end its notes first
            notes.append((tick, 2, mido.Message("program_change", channel=MELODY_CHANNEL, program=melody.program)))
        for n in melody.notes:
            # At a shared tick the previous note's off sorts before the next note's on (order 2 < 3).
            # Note already holds pitch and velocity to MIDI's ranges: mido's own checks of every
            # message were most of the time a Continue spent writing its files.
            notes.append((tick + (n.start + shift) * tps, 3, mido.Message(
                "note_on", skip_checks=True, channel=MELODY_CHANNEL, note=n.pitch, velocity=n.velocity)))
            notes.append((tick + (n.end + shift) * tps, 2, mido.Message(
                "note_off", skip_checks=True, channel=MELODY_CHANNEL, note=n.pitch, velocity=64)))
        tick += (melody.total_steps + shift) * tps
        before = melody
    total_steps = sum(m.total_steps for m in sections)
    if not first.pickup_steps and total_steps % first.bar_steps:
        # Read in its first meter, such a file looks like one that opens on the upbeat (see
        # detect_pickup): say it does not.
        meta.append((0, 4, mido.MetaMessage("text", text=NO_PICKUP)))

    mid = mido.MidiFile(type=1, ticks_per_beat=PPQ)
    mid.tracks.append(_with_deltas(meta, tick))
    mid.tracks.append(_with_deltas(notes, tick))
    buf = io.BytesIO()
    mid.save(file=buf)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


# -- import ----------------------------------------------------------------------------------------
def read_midi(data: bytes) -> mido.MidiFile:
    """Parse with mido; anything mido cannot read is a :class:`CorruptFileError`."""
    if data[:4] != b"MThd":
        raise CorruptFileError(
            "The file does not start with a MIDI header; it is not a MIDI file or is damaged. "
            "Export it again as a Standard MIDI File (.mid).")
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises EOFError, OSError, ValueError, KeyError, ... on bad bytes
        log.info("mido could not read a MIDI file: %s: %s", type(exc).__name__, exc)
        why = "it ends in the middle of its data" if isinstance(exc, EOFError) else "its data is damaged"
        raise CorruptFileError(
            f"The MIDI file cannot be read: {why}. Export it again from your DAW or notation program.") from exc
    if mid.ticks_per_beat <= 0:
        raise CorruptFileError(
            f"The MIDI file's time division ({mid.ticks_per_beat}) is SMPTE or zero, not ticks per "
            "quarter note; export it again with musical (PPQ) timing.")
    return mid


@dataclass
class _Group:
    """Notes of one candidate track, in ticks."""

    name: str
    track: int
    channels: set[int] = field(default_factory=set)
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (start, end, pitch, velocity)
    is_drum: bool = False


@dataclass
class _Scan:
    tempos: list[tuple[int, int]] = field(default_factory=list)  # (tick, microseconds per quarter)
    meters: list[tuple[int, int, int]] = field(default_factory=list)  # (tick, num, den)
    keys: list[tuple[int, str]] = field(default_factory=list)
    programs: dict[tuple[int, int], list[tuple[int, int]]] = field(default_factory=dict)  # (track, ch)
    names: dict[int, str] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    groups: dict[tuple, _Group] = field(default_factory=dict)
    notes: int = 0  # note-ons read; stops at MAX_NOTES
    no_pickup: bool = False  # the file says its first bar is whole (NO_PICKUP)


def _scan(mid: mido.MidiFile) -> _Scan:
    scan = _Scan()
    by_channel = mid.type == 0 or len(mid.tracks) == 1

    def close(ti: int, sounding: dict, ch: int, pitch: int, at: int) -> None:
        start, vel = sounding.pop((ch, pitch))
        if at > start:
            key = (ti, ch) if by_channel else (ti, ch == DRUM_CHANNEL)
            group = scan.groups.get(key)
            if group is None:
                group = scan.groups[key] = _Group("", ti, is_drum=ch == DRUM_CHANNEL)
            group.channels.add(ch)
            group.notes.append((start, at, pitch, vel))

    for ti, track in enumerate(mid.tracks):
        tick = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (channel, pitch) -> (start, velocity)
        for msg in track:
            tick += msg.time
            kind = msg.type
            if kind == "note_on" and msg.velocity > 0:
                if scan.notes >= MAX_NOTES:
                    continue  # the rest of such a file is never music we can use; its meta still counts
                scan.notes += 1
                if (msg.channel, msg.note) in sounding:  # re-struck without a note-off
                    close(ti, sounding, msg.channel, msg.note, tick)
                sounding[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif kind in ("note_off", "note_on"):
                if (msg.channel, msg.note) in sounding:
                    close(ti, sounding, msg.channel, msg.note, tick)
            elif kind == "program_change":
                scan.programs.setdefault((ti, msg.channel), []).append((tick, msg.program))
            elif kind == "set_tempo":
                scan.tempos.append((tick, msg.tempo))
            elif kind == "time_signature":
                scan.meters.append((tick, msg.numerator, msg.denominator))
            elif kind == "key_signature":
                scan.keys.append((tick, msg.key))
            elif kind == "text" and tick == 0 and msg.text == NO_PICKUP:
                scan.no_pickup = True
            elif kind == "track_name" and ti not in scan.names and msg.name.strip():
                scan.names[ti] = msg.name.strip()
        for ch, pitch in list(sounding):  # notes left hanging end with their track
            close(ti, sounding, ch, pitch, tick)
        scan.ends[ti] = tick
    return scan


def _part_name(track_name: str, title: str) -> str:
    """A track's own name worth keeping: not the title again, not our placeholder."""
    return "" if track_name in (title, Melody.DEFAULT_PART_NAME) else track_name


def _gm_name(program: int) -> str:
    import pretty_midi  # only for the General MIDI instrument names

    return pretty_midi.program_to_instrument_name(program)


def _program_for(scan: _Scan, group: _Group) -> int:
    first_note = min((n[0] for n in group.notes), default=0)
    changes = sorted(p for ch in group.channels for p in scan.programs.get((group.track, ch), []))
    if not changes:  # some files set every channel's program in the conductor track
        changes = sorted(p for (_, ch), ps in scan.programs.items() if ch in group.channels for p in ps)
    before = [p for t, p in changes if t <= first_note]
    if before:
        return before[-1]
    return changes[0][1] if changes else 0


def _candidates(mid: mido.MidiFile, scan: _Scan) -> tuple[list[_Group], list[TrackInfo], list[list[RawNote]]]:
    groups = [g for _, g in sorted(scan.groups.items(), key=lambda kv: (kv[0][0], kv[0][1]))]
    infos, raw = [], []
    for i, g in enumerate(groups):
        program = _program_for(scan, g)
        track_name = scan.names.get(g.track, "")
        if mid.type == 0 or len(mid.tracks) == 1:
            ch = min(g.channels)
            g.name = f"Channel {ch + 1} ({'Drums' if g.is_drum else _gm_name(program)})"
        else:
            g.name = track_name or f"Track {g.track}"
        notes = [RawNote(s / mid.ticks_per_beat, (e - s) / mid.ticks_per_beat, p, v) for s, e, p, v in g.notes]
        raw.append(notes)
        infos.append(describe_track(i, g.name, notes, is_drum=g.is_drum, program=program))
    # Two groups from one track (melodic + drums) need different names.
    seen: dict[str, int] = {}
    for i, info in enumerate(infos):
        if info.name in seen:
            infos[i] = TrackInfo(info.index, f"{info.name} ({'drums' if info.is_drum else 'pitched'})",
                                 info.notes, info.low, info.high, info.is_drum, info.program,
                                 info.chord_fraction)
        seen[info.name] = i
    return groups, infos, raw


def _meter_and_pickup(scan: _Scan, ppq: int, spq: int, notices: list[str]) -> tuple[tuple[int, int], int]:
    meters = []
    for tick, num, den in sorted(scan.meters):
        if meters and meters[-1][0] == tick:
            meters[-1] = (tick, num, den)  # a later event at the same tick wins
        elif not meters or meters[-1][1:] != (num, den):
            meters.append((tick, num, den))
    pickup_ticks = 0
    if len(meters) > 1 and meters[0][0] == 0:
        first_bar = meters[0][1] * 4 * ppq // meters[0][2]
        second_bar = meters[1][1] * 4 * ppq // meters[1][2]
        if meters[1][0] == first_bar and first_bar < second_bar:
            pickup_ticks = first_bar
            meters = meters[1:]
    (num, den), own = first_meter([m[1:] for m in meters], spq, notices)
    pickup = int(round(pickup_ticks * spq / ppq)) if own else 0
    if not 0 <= pickup < num * spq * 4 // den:
        pickup = 0
    return (num, den), pickup


def _tempi(scan: _Scan) -> list[float]:
    # 0.01 qpm precision undoes the microsecond rounding of set_tempo
    return [round(60_000_000 / tempo, 2) for _, tempo in sorted(scan.tempos, key=lambda t: t[0]) if tempo > 0]


def _key(scan: _Scan) -> Key | None:
    for _, name in sorted(scan.keys, key=lambda k: k[0]):
        try:
            minor = name.endswith("m")
            return Key.parse(f"{name[:-1] if minor else name} {'minor' if minor else 'major'}")
        except MelodyError:
            continue
    return None


def midi_to_melody(data: bytes, track: int | None = None, *, name: str = "", steps_per_quarter: int = 4,
                   max_bars: int | None = None) -> tuple[Melody, MidiReport]:
    """Parse a Standard MIDI File and take one candidate track (the most melody-like by default).

    ``track`` indexes ``report.tracks``. The melody is named after the song title (the first
    track's name in a type-1 file whose first track has no notes) or else ``name``.
    """
    mid = read_midi(data)
    scan = _scan(mid)
    groups, infos, raw = _candidates(mid, scan)
    track = choose_track(infos, raw, track, "the MIDI file")

    notices: list[str] = []
    if mid.type == 2:
        notices.append("Type-2 MIDI (independent patterns): each track is read from its own start.")
    ppq = mid.ticks_per_beat
    tempi = _tempi(scan)
    qpm = first_tempo(tempi, notices)
    meter, pickup = _meter_and_pickup(scan, ppq, steps_per_quarter, notices)
    key = _key(scan)
    # The song's title: the only track's name, or in a type-1/2 file the first track's when it has no notes.
    single = mid.type == 0 or len(mid.tracks) == 1
    conductor = not any(g.track == 0 for g in groups)
    title = scan.names.get(0, "") if single or conductor else ""
    group = groups[track]
    notes = raw[track]
    if max_bars is not None:  # trimmed before quantising, so a long file costs no more than 64 bars
        bar_q = meter[0] * 4 / meter[1]
        limit_q = pickup / steps_per_quarter + max_bars * bar_q
        kept = [n for n in notes if n.onset < limit_q]
        if len(kept) < len(notes):
            bars = math.ceil((max(n.onset + n.duration for n in notes) - pickup / steps_per_quarter) / bar_q)
            notices.append(f"The melody has {bars} bars; kept the first {max_bars}.")
            notes = kept
    if scan.notes >= MAX_NOTES:
        notices.append(f"The file has more than {MAX_NOTES:,} notes; read the first {MAX_NOTES:,}.")
    melody, qreport = build_melody(
        notes, steps_per_quarter=steps_per_quarter, qpm=qpm, time_signature=meter,
        key=key or Key(), program=infos[track].program, pickup_steps=pickup, name=title or name,
        part_name=_part_name(scan.names.get(group.track, "") if not single else "", title or name))
    end_steps = int(round(scan.ends.get(group.track, 0) * steps_per_quarter / ppq))
    if not pickup and not scan.no_pickup:
        last_end = melody.notes[-1].end
        file_end = end_steps if last_end <= end_steps < last_end + melody.bar_steps else last_end
        found = detect_pickup(melody.replace(total_steps=file_end))
        if found:
            melody = melody.replace(pickup_steps=found)
            notices.append(f"The file marks no pickup, but the melody starts {found / steps_per_quarter:g} quarter "
                           "note(s) before its first downbeat (found from where its long notes fall); bar lines "
                           "follow from there.")
    # Keep trailing rest up to the track's end, but not past the bar line after the last note:
    # files often end long after the music (and our own export ends exactly at total_steps).
    last_end = melody.notes[-1].end
    bar, offset = melody.bar_steps, melody.pickup_steps
    next_bar = offset + max(0, math.ceil((last_end - offset) / bar)) * bar
    if max_bars is not None:
        end_steps = min(end_steps, pickup + max_bars * bar)
    melody = melody.replace(total_steps=max(last_end, min(end_steps, next_bar)))
    if key is None:
        melody = melody.replace(key=estimate_key(melody.notes))
        notices.append(f"The file has no key signature; detected {melody.key.name}.")
    report = MidiReport(infos, track, notices + qreport.notices, qreport, tempi, title, key is not None)
    return melody, report
