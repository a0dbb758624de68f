"""music21 streams <-> Melody: the edge for MusicXML, ABC, tinyNotation and the music21 corpus.

Reading: :func:`read_score` (bytes -> music21 score, parser errors wrapped in our exceptions),
:func:`part_candidates` (the parts as :class:`~musicgen_app.quantize.TrackInfo`) and
:func:`stream_to_melody`; :func:`musicxml_to_melody` does all three for MusicXML bytes.

Writing: :func:`melody_to_stream` builds a score with one measure per bar (a pickup is measure 0
with ``paddingLeft``; a short last bar has ``paddingRight``; notes crossing a bar line are split
into tied notes) and :func:`melody_to_musicxml` serialises it. Reading it back with
:func:`musicxml_to_melody` gives the same Melody (the one exception: a melody that ends inside its
pickup bar comes back ``pickup_steps`` long). Velocities are written as the
MusicXML ``dynamics`` attribute of each note, so they survive a round trip.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from xml.parsers.expat import ExpatError

import music21 as m21

from ..errors import (
    CorruptFileError,
    MelodyError,
    MusicXMLExportError,
    NoNotesError,
    TrackChoiceError,
    UnsupportedMeterError,
)
from ..melody import Key, Melody, estimate_key
from .quantize import QuantizeReport, RawNote, TrackInfo, build_melody, describe_track, first_meter, first_tempo

log = logging.getLogger(__name__)

MAJOR_LIKE = {"major", "ionian", "lydian", "mixolydian"}
MIN_SCORE_PITCH = 12  # C0: MusicXML octaves start at 0
MAX_UNZIPPED_BYTES = 50 * 1024 * 1024  # a .mxl that inflates beyond this is refused (zip bomb)


@dataclass
class StreamFacts:
    """What was found besides the notes, for reports and corpus filtering."""

    time_signatures: list[str] = field(default_factory=list)
    tempi: list[float] = field(default_factory=list)
    key_from_file: bool = False
    report: QuantizeReport | None = None
    notices: list[str] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------------------
def read_score(data: bytes | str, fmt: str) -> tuple[m21.stream.Score, list[str]]:
    """Parse MusicXML ('musicxml'), compressed MusicXML ('mxl') or ABC ('abc') into one score.

    Returns the score and notices (an ABC file with several tunes gives its first tune).
    Any failure inside music21 becomes :class:`CorruptFileError`.
    """
    label = {"musicxml": "MusicXML", "mxl": "compressed MusicXML (.mxl)", "abc": "ABC"}[fmt]
    notices = []
    if fmt == "mxl":
        data, fmt = unzip_mxl(data), "musicxml"
    if fmt == "musicxml":
        _check_meters(data)
    try:
        parsed = m21.converter.parseData(data, format=fmt)
    except Exception as exc:  # music21 raises anything from ExpatError to IndexError on bad input
        log.info("music21 could not read a %s file: %s: %s", label, type(exc).__name__, exc)
        where = f" ({exc})" if isinstance(exc, ExpatError) else ""  # line and column of the bad XML
        raise CorruptFileError(
            f"The {label} file cannot be read{where}; it may be damaged or cut short. "
            "Export it again from your notation program.") from exc
    if fmt == "musicxml" and isinstance(parsed, m21.stream.Score):
        _restore_from_xml(parsed, data)
    if isinstance(parsed, m21.stream.Opus):
        scores = list(parsed.scores)
        if not scores:
            raise NoNotesError(f"The {label} file holds no tunes; check that it has notes after the K: line.")
        if len(scores) > 1:
            notices.append(f"The file holds {len(scores)} tunes; took the first.")
        parsed = scores[0]
    if not isinstance(parsed, m21.stream.Stream):
        raise CorruptFileError(f"The {label} file did not parse into a score; export it again.")
    return parsed, notices


def _restore_from_xml(score: m21.stream.Score, xml: bytes | str) -> None:
    """Put back what music21's MusicXML reader drops: MIDI programs and sounding tempi."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except Exception:  # music21 read it, so this should not happen; keep what music21 read
        return
    _restore_midi_programs(score, root)
    _restore_sounding_tempi(score, root)


def _restore_sounding_tempi(score: m21.stream.Score, root) -> None:
    """Give each metronome mark the exact tempo of its direction's ``<sound tempo>`` (quarters a
    minute): music21 reads only the printed number, which may be rounded (dotted quarter = 66.67
    for 100 qpm). Marks and directions are paired in document order, and only when they are as many."""
    tempi = []
    for direction in root.iter("direction"):
        if direction.find("direction-type/metronome") is None:
            continue
        sound = direction.find("sound")
        try:
            tempi.append(float(sound.get("tempo")) if sound is not None else None)
        except (TypeError, ValueError):
            tempi.append(None)
    marks = [mm for mm in score.recurse().getElementsByClass(m21.tempo.MetronomeMark) if mm.number is not None]
    if len(marks) != len(tempi):
        return
    for mark, qpm in zip(marks, tempi):
        if qpm and qpm > 0 and mark.referent is not None and mark.referent.quarterLength > 0:
            mark.numberSounding = qpm / float(mark.referent.quarterLength)


def _restore_midi_programs(score: m21.stream.Score, root) -> None:
    """Put back each part's <midi-program>: music21 replaces programs 1-5 (the pianos) by the
    default program of the instrument *name* ("Piano" -> 0) when it reads MusicXML."""
    programs = {}
    for sp in root.iter("score-part"):
        text = sp.findtext("midi-instrument/midi-program")
        if text and text.strip().isdigit() and 1 <= int(text) <= 128:
            programs[sp.get("id")] = int(text) - 1  # MusicXML counts programs from 1
    for inst in score.recurse().getElementsByClass(m21.instrument.Instrument):
        if inst.partId in programs:
            inst.midiProgram = programs[inst.partId]


def unzip_mxl(data: bytes) -> bytes:
    """The MusicXML document inside a .mxl archive (named by META-INF/container.xml)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            root = None
            if "META-INF/container.xml" in names:
                found = re.search(rb'full-path="([^"]+)"', zf.read("META-INF/container.xml"))
                root = found.group(1).decode("utf-8", "replace") if found else None
            if root not in names:
                root = next((n for n in names if not n.startswith("META-INF/")
                             and n.lower().endswith((".xml", ".musicxml"))), None)
            if root is None:
                raise CorruptFileError("The .mxl archive holds no MusicXML document; export it again.")
            if zf.getinfo(root).file_size > MAX_UNZIPPED_BYTES:
                raise CorruptFileError(
                    f"The .mxl archive unpacks to {zf.getinfo(root).file_size / 1e6:.0f} MB, over the "
                    f"{MAX_UNZIPPED_BYTES // 2**20} MB limit; upload a shorter piece.")
            return zf.read(root)
    except CorruptFileError:
        raise
    except Exception as exc:  # zipfile: BadZipFile, EOFError, zlib.error, NotImplementedError, ...
        log.info("could not unpack an .mxl archive: %s: %s", type(exc).__name__, exc)
        raise CorruptFileError(
            "The .mxl archive cannot be unpacked; it may be truncated. "
            "Export it again, or save as uncompressed .musicxml.") from exc


_METER = re.compile(rb"<beats>\s*([^<]*?)\s*</beats>\s*<beat-type>\s*([^<]*?)\s*</beat-type>")


def _check_meters(data: bytes | str) -> None:
    """A time signature with no beats or no beat type (0/0) is a meter problem, not a damaged file."""
    raw = data.encode("utf-8", errors="replace") if isinstance(data, str) else data
    for beats, beat_type in _METER.findall(raw[:MAX_UNZIPPED_BYTES]):
        if not (beats.isdigit() and beat_type.isdigit() and int(beats) > 0 and int(beat_type) > 0):
            shown = f"{beats.decode(errors='replace')[:8]}/{beat_type.decode(errors='replace')[:8]}"
            raise UnsupportedMeterError(
                f"Time signature {shown} is not a meter we can read: it needs a number of beats and a beat "
                "type such as 4 or 8. Fix it in your notation program and export again.")


def _parts(score: m21.stream.Stream) -> list[m21.stream.Stream]:
    return list(score.parts) if isinstance(score, m21.stream.Score) and score.parts else [score]


def part_notes(part: m21.stream.Stream) -> list[RawNote]:
    """Sounding notes of one part (ties merged, chords as their notes, grace and drum notes skipped)."""
    flat = part.stripTies(matchByPitch=True).flatten() if part.hasMeasures() else part.flatten()
    out = []
    for el in flat.notes:
        ql = float(el.duration.quarterLength)
        if ql <= 0:
            continue
        vel = el.volume.velocity if el.volume.velocity is not None else 90
        for p in el.pitches:  # () for unpitched percussion
            midi = int(round(p.ps))
            if 0 <= midi <= 127:
                out.append(RawNote(float(el.offset), ql, midi, int(vel)))
    return out


def part_program(part: m21.stream.Stream) -> int:
    for inst in part.flatten().getElementsByClass(m21.instrument.Instrument):
        if inst.midiProgram is not None and 0 <= inst.midiProgram <= 127:
            return int(inst.midiProgram)
    return 0


def _is_drum_part(part: m21.stream.Stream, notes: list[RawNote]) -> bool:
    flat = part.flatten()
    if any(inst.midiChannel == 9 or isinstance(inst, m21.instrument.UnpitchedPercussion)
           for inst in flat.getElementsByClass(m21.instrument.Instrument)):
        return True
    return not notes and any(not el.pitches for el in flat.notes)


def part_candidates(score: m21.stream.Stream) -> tuple[list[TrackInfo], list[list[RawNote]]]:
    """Every part as a TrackInfo, and its notes (for :func:`quantize.pick_melody_track`)."""
    infos, all_notes = [], []
    for i, part in enumerate(_parts(score)):
        notes = part_notes(part)
        name = part.partName or (part.id if isinstance(part.id, str) else "")
        is_drum = _is_drum_part(part, notes)
        infos.append(describe_track(i, str(name or f"Part {i + 1}"), notes, is_drum=is_drum,
                                    program=part_program(part)))
        all_notes.append(notes)
    return infos, all_notes


def score_title(score: m21.stream.Stream) -> str:
    md = score.metadata
    if md is None:
        return ""
    for title in (md.title, md.movementName):
        # music21 names untitled exports "Music21 Fragment"; that is no one's title.
        if title and str(title).strip() not in ("Music21 Fragment", "Music21"):
            return str(title).strip()
    return ""


def to_key(k: m21.key.Key) -> Key:
    mode = "major" if (k.mode or "major") in MAJOR_LIKE else "minor"
    return Key(k.tonic.pitchClass, mode)


def file_key(stream: m21.stream.Stream) -> tuple[Key | None, list[Key] | None]:
    """The key the file names; else the two keys its key signature allows (major, relative minor).

    (None, None) when it says neither: the caller estimates the key from the notes.
    """
    flat = stream.flatten()
    keys = list(flat.getElementsByClass(m21.key.Key))
    if keys:
        return to_key(keys[0]), None
    sigs = list(flat.getElementsByClass(m21.key.KeySignature))
    if not sigs:
        return None, None
    try:
        return None, [to_key(sigs[0].asKey("major")), to_key(sigs[0].asKey("minor"))]
    except Exception:  # a signature with more than 7 accidentals has no key name
        return None, None


def pickup_quarters(part: m21.stream.Stream, bar_quarters: float) -> float:
    """Length of the anacrusis: a short first measure numbered 0, or followed by more measures.

    (music21 pads every short first measure as a pickup; a lone short "measure 1" is only a
    melody shorter than one bar.)
    """
    measures = list(part.getElementsByClass(m21.stream.Measure))
    if not measures:
        return 0.0
    first = measures[0]
    if first.number != 0 and len(measures) < 2:
        return 0.0
    length = float(first.highestTime)
    if first.paddingLeft:
        return max(0.0, bar_quarters - float(first.paddingLeft))
    if 0 < length < bar_quarters - 1e-6 and len(measures) > 1:
        return length
    return 0.0


def _bar_quarters(ratio: str) -> float:
    num, den = (int(x) for x in ratio.split("/"))
    return num * 4 / den


def stream_to_melody(score: m21.stream.Stream, part_index: int | None = None,
                     steps_per_quarter: int = 4, name: str = "", *,
                     meter_fallback: bool = False) -> tuple[Melody, StreamFacts]:
    """One part of ``score`` as a Melody (the first part when ``part_index`` is None).

    An unsupported time signature raises :class:`MelodyError` (the corpus skips such tunes), or
    with ``meter_fallback`` (uploads) is read as 4/4 with a notice.
    """
    parts = _parts(score)
    index = part_index or 0
    if not 0 <= index < len(parts):
        raise TrackChoiceError(f"Part {part_index} does not exist; the score has parts 0-{len(parts) - 1}.")
    part = parts[index]
    facts = StreamFacts()
    flat = part.flatten()
    sigs = [(float(ts.offset), ts.ratioString) for ts in flat.getElementsByClass(m21.meter.TimeSignature)]
    if not sigs:
        sigs = [(0.0, ts.ratioString) for ts in score.flatten().getElementsByClass(m21.meter.TimeSignature)][:1]
    pickup_from_meter = None
    if len(sigs) > 1 and sigs[0][0] == 0.0 and 0 < sigs[1][0] < _bar_quarters(sigs[1][1]):
        # ABC writes an anacrusis as its own short meter (O'Neill's '1/16' then '2/4'): a pickup.
        pickup_from_meter = sigs[1][0]
        sigs = sigs[1:]
    facts.time_signatures = [r for _, r in sigs]
    for mm in score.flatten().getElementsByClass(m21.tempo.MetronomeMark):
        qpm = mm.getQuarterBPM()
        if qpm:
            facts.tempi.append(float(qpm))
    notes = part_notes(part)
    if not notes:
        raise NoNotesError(f"{name or 'The score'} has no pitched notes in part {index}; "
                           "choose a part that has a melody.")
    meters = [tuple(int(x) for x in r.split("/")) for r in facts.time_signatures]
    (num, den), _ = first_meter(meters, steps_per_quarter, facts.notices, fallback=meter_fallback)
    bar_q = num * 4 / den
    pickup_q = pickup_from_meter if pickup_from_meter is not None else pickup_quarters(part, bar_q)
    pickup_steps = int(round(pickup_q * steps_per_quarter))
    if not 0 <= pickup_steps < bar_q * steps_per_quarter:
        pickup_steps = 0
    qpm = first_tempo(facts.tempi, facts.notices)
    end_q = max(float(part.highestTime), max(n.onset + n.duration for n in notes))
    melody, facts.report = build_melody(
        notes, steps_per_quarter=steps_per_quarter, total_quarters=end_q, qpm=qpm,
        time_signature=(num, den), pickup_steps=pickup_steps, program=part_program(part), name=name,
        part_name="" if part.partName in (None, name, Melody.DEFAULT_PART_NAME) else str(part.partName))
    key, candidates = file_key(part)
    facts.key_from_file = key is not None or candidates is not None
    melody = melody.replace(key=key or estimate_key(melody.notes, candidates))
    return melody, facts


def musicxml_to_melody(data: bytes | str, part: int | None = None) -> tuple[Melody, StreamFacts]:
    """MusicXML bytes (or a .mxl archive) to a Melody named after the score's title."""
    fmt = "mxl" if isinstance(data, bytes) and data[:4] == b"PK\x03\x04" else "musicxml"
    score, notices = read_score(data, fmt)
    melody, facts = stream_to_melody(score, part, name=score_title(score), meter_fallback=True)
    facts.notices[:0] = notices
    return melody, facts


# -- writing ---------------------------------------------------------------------------------------
def m21_key(key: Key) -> m21.key.Key:
    return m21.key.Key(key.tonic_name.replace("b", "-"), key.mode)


def _instrument(program: int) -> m21.instrument.Instrument:
    import pretty_midi  # for the General MIDI names, which notation programs show

    inst = m21.instrument.Instrument()
    inst.instrumentName = pretty_midi.program_to_instrument_name(program)
    inst.midiProgram = program
    return inst


def _bar_lines(melody: Melody) -> list[tuple[int, int]]:
    """[start, end) of each measure in steps; a pickup is its own (short) first measure."""
    total, bar = melody.total_steps, melody.bar_steps
    bounds = []
    start = 0
    nominal_end = melody.pickup_steps or bar
    while True:
        bounds.append((start, nominal_end))
        if nominal_end >= total:
            break
        start, nominal_end = nominal_end, nominal_end + bar
    return bounds


def melody_to_stream(melody: Melody) -> m21.stream.Score:
    """A one-part music21 score with measures, key, meter, tempo, instrument and tied notes."""
    low = melody.pitch_range[0] if melody.notes else MIN_SCORE_PITCH
    if low < MIN_SCORE_PITCH:
        raise MelodyError(f"Pitch {low} is below C0 ({MIN_SCORE_PITCH}), the lowest note MusicXML can "
                          "write (octave 0); transpose the melody up an octave first.")
    spq = melody.steps_per_quarter
    total = melody.total_steps
    flat_key = m21_key(melody.key).sharps < 0
    score = m21.stream.Score()
    if melody.name:
        score.metadata = m21.metadata.Metadata(title=melody.name)
        score.metadata.movementName = melody.name
    part = m21.stream.Part()
    part.partName = melody.part_label
    for number, (a, nominal_b) in enumerate(_bar_lines(melody), start=0 if melody.pickup_steps else 1):
        # A pickup bar is always written whole: MusicXML readers take a short first measure as the
        # anacrusis, so a melody ending inside its pickup grows to the pickup's length.
        b = min(nominal_b, total) if total and number != 0 else nominal_b
        measure = m21.stream.Measure(number=number)
        if number == (0 if melody.pickup_steps else 1):
            measure.insert(0, _instrument(melody.program))
            measure.insert(0, m21.meter.TimeSignature(f"{melody.time_signature[0]}/{melody.time_signature[1]}"))
            measure.insert(0, m21_key(melody.key))
            measure.insert(0, _metronome_mark(melody))
        if number == 0:
            measure.paddingLeft = Fraction(melody.bar_steps - melody.pickup_steps, spq)
        if b < nominal_b:
            measure.paddingRight = Fraction(nominal_b - b, spq)
        cursor = a
        for n in melody.notes:
            s, e = max(n.start, a), min(n.end, b)
            if s >= e:
                continue
            if s > cursor:
                measure.insert(Fraction(cursor - a, spq), m21.note.Rest(quarterLength=Fraction(s - cursor, spq)))
            note = m21.note.Note(_spell(n.pitch, flat_key), quarterLength=Fraction(e - s, spq))
            note.volume.velocity = n.velocity
            if n.start < a and n.end > b:
                note.tie = m21.tie.Tie("continue")
            elif n.start < a:
                note.tie = m21.tie.Tie("stop")
            elif n.end > b:
                note.tie = m21.tie.Tie("start")
            measure.insert(Fraction(s - a, spq), note)
            cursor = e
        if cursor < b:
            measure.insert(Fraction(cursor - a, spq), m21.note.Rest(quarterLength=Fraction(b - cursor, spq)))
        part.append(measure)
    score.insert(0, part)
    return score


def _metronome_mark(melody: Melody) -> m21.tempo.MetronomeMark:
    """The tempo on the beat a musician counts: a quarter, or in compound meters (6/8, 9/8, 12/8) a
    dotted quarter at two thirds of the qpm (120 qpm in 6/8 is dotted quarter = 80).

    The printed number is rounded to hundredths; the sounding tempo (MusicXML's ``<sound tempo>``,
    in quarters a minute) stays exact, and :func:`read_score` reads it back.
    """
    if Fraction(melody.beat_steps, melody.steps_per_quarter) == Fraction(3, 2):
        beats = melody.qpm / 1.5
        mark = m21.tempo.MetronomeMark(number=_shown_number(beats), referent=m21.duration.Duration(1.5))
        mark.numberSounding = beats
        return mark
    return m21.tempo.MetronomeMark(number=melody.qpm, referent=m21.note.Note(type="quarter"))


def _shown_number(x: float) -> int | float:
    rounded = round(x, 2)
    return int(rounded) if rounded.is_integer() else rounded


def _spell(midi: int, flat_key: bool) -> m21.pitch.Pitch:
    """A pitch spelled for the key (flats in flat keys), its natural sign not printed.

    music21 marks a pitch made from a MIDI number with an explicit natural, which the score would
    print on every D or A.
    """
    pitch = m21.pitch.Pitch(midi)
    if flat_key and pitch.accidental is not None and pitch.accidental.name == "sharp":
        pitch = pitch.getEnharmonic()
    if pitch.accidental is not None and pitch.accidental.name == "natural":
        pitch.accidental.displayType = "never"
    return pitch


def melody_to_musicxml(melody: Melody) -> bytes:
    """MusicXML 4.0 (uncompressed, UTF-8) for the melody; see :func:`melody_to_stream`. The title is
    the melody's name (none without one); no composer or software is named."""
    return score_to_musicxml(melody_to_stream(melody))


def score_to_musicxml(score: m21.stream.Stream) -> bytes:
    """A music21 score (or any stream, which music21 wraps in one) as MusicXML bytes, without the
    metadata music21 fills in on its own.

    The one use of music21's MusicXML exporter (``music21.musicxml.m21ToXml.GeneralObjectExporter``,
    which music21 does not document as public API): a music21 without it raises
    :class:`MusicXMLExportError` saying so. music21 names a score without contributors "composer:
    Music21", one without a title "Music21 Fragment" and itself as the encoding software, which
    notation programs print or show as if the musician had written them; those are left out.
    """
    try:
        from music21.musicxml.m21ToXml import GeneralObjectExporter
    except ImportError as exc:
        raise MusicXMLExportError(
            f"music21 {m21.__version__} has no music21.musicxml.m21ToXml.GeneralObjectExporter, which writes "
            "MusicXML here; install the music21 in requirements.txt or port io/score.py's score_to_musicxml "
            "to its replacement.") from exc
    data = GeneralObjectExporter(score).parse()
    if not isinstance(data, bytes) or b"<score-partwise" not in data:
        raise MusicXMLExportError(
            f"music21 {m21.__version__}'s GeneralObjectExporter.parse() returned {type(data).__name__} without a "
            "<score-partwise> element, not MusicXML bytes; port io/score.py's score_to_musicxml to what it "
            "returns now.")
    return _without_library_defaults(data, score.metadata)


def _without_library_defaults(data: bytes, md: m21.metadata.Metadata | None) -> bytes:
    """``data`` without the creators, movement title and software music21 wrote of its own accord
    (``md``, the score's metadata, says what the score itself names)."""
    import xml.etree.ElementTree as ET

    head, tag, body = data.partition(b"<score-partwise")
    root = ET.fromstring(tag + body, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    has_contributors = md is not None and any(True for _ in md.contributors)
    has_title = md is not None and bool(md.title or md.movementName)
    drop = []
    if not has_contributors:
        drop += [(ident, c) for ident in root.findall("identification") for c in ident.findall("creator")]
    if not has_title:
        drop += [(root, t) for t in root.findall("movement-title")]
    drop += [(enc, sw) for enc in root.iterfind("identification/encoding") for sw in enc.findall("software")
             if "music21" in (sw.text or "").lower()]
    for parent, child in drop:
        parent.remove(child)
    return head + ET.tostring(root, encoding="unicode").encode("utf-8")
