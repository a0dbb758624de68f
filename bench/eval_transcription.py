"""How well recordings become melodies: each transcriber on corpus test tunes played and sung.

    PYTHONPATH=. .venv/bin/python bench/eval_transcription.py [--tunes 40] [--bars 8] [--transcribers basic-pitch,pyin]

The set (``musicgen_app.training.audio_set``): ``--tunes`` tunes of the corpus test split, each cut
to ``--bars`` bars at a tempo drawn from 70-140 qpm, rendered through FluidSynth as flute (GM 73),
violin (40), piano (0) and choir "aah" (52), and sung by the synthetic voice (vibrato 5-6 Hz +-30
cents, glides, breath noise at 20 dB SNR). ``--repeated-notes detached`` has the instruments leave a
64th-note gap before a note that repeats the one before (as a player tongues or re-bows it);
"legato", the default, plays it as FluidSynth does, with no new attack. Each clip goes through
``io.audio.audio_to_melody`` as a WAV file, with the tempo given. Printed per transcriber and kind:

    note P/R/F   mir_eval.transcription on the notes in seconds (onset +-50 ms, pitch +-50 cents,
                 offsets ignored)
    grid         share of the source's notes back at the right step with the right pitch, after
                 quantisation at the known tempo (steps counted from where the grid put step 0)
    key          share whose estimated key is the source's ("key ceil": estimate_key on the source's own
                 notes agrees with the source's key that often; "key =est": the key estimated from the
                 transcription is the one estimated from the source's notes)
    tempo        share whose estimated tempo (when none is given) is within 4 % of the true one
    refused      clips refused with one of our errors (they count as no notes)

Then the time for 30 s of audio -> melody: in this process (libraries loaded, model warm) and
through ``load_melody`` (the bounded child process the app uses), median of ``--repeats``.
Targets from issue 20: note F >= 0.95 instruments, >= 0.85 singing; grid >= 90 % / 80 %; key >= 95 %;
30 s in <= 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mir_eval  # noqa: E402
import numpy as np  # noqa: E402

from musicgen_app.errors import MusicgenError  # noqa: E402
from musicgen_app.io import audio  # noqa: E402
from musicgen_app.io.importer import load_melody  # noqa: E402
from musicgen_app.melody import estimate_key  # noqa: E402
from musicgen_app.render import to_wav_bytes  # noqa: E402
from musicgen_app.training import audio_set, corpus  # noqa: E402

INSTRUMENT_KINDS = tuple(audio_set.INSTRUMENTS)


def score_clip(clip: audio_set.Clip, transcriber: str) -> dict:
    wav = to_wav_bytes(clip.audio, clip.sample_rate)
    ref_iv, ref_p = audio_set.reference_notes(clip.melody)
    source_estimate = estimate_key(clip.melody.notes)
    row = {"kind": clip.kind, "refused": 0, "p": 0.0, "r": 0.0, "f": 0.0, "grid": 0.0, "key": 0.0, "tempo": 0.0,
           "key_ceiling": float(source_estimate == clip.melody.key), "key_same": 0.0}
    try:
        result = audio.audio_to_melody(wav, qpm=clip.melody.qpm, transcriber=transcriber, max_bars=None,
                                       filename=f"{clip.name}.wav")
    except MusicgenError as exc:
        row["refused"] = 1
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    heard = result.transcription
    est_iv = np.array([[s, e] for s, e, _ in heard.notes], float).reshape(-1, 2)
    est_p = np.array([p for _, _, p in heard.notes], float)
    if len(est_p):
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref_iv, mir_eval.util.midi_to_hz(ref_p), est_iv, mir_eval.util.midi_to_hz(est_p),
            onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None)
        row.update(p=p, r=r, f=f)
    m = result.melody
    shift = int(round(heard.origin / m.seconds_per_step))
    got = {(n.start + shift, n.pitch) for n in m.notes}
    row["grid"] = sum((n.start, n.pitch) in got for n in clip.melody.notes) / len(clip.melody.notes)
    row["key"] = float(m.key == clip.melody.key)
    row["key_same"] = float(m.key == source_estimate)
    qpm = audio.estimate_tempo([(s, e, p, 0.5) for s, e, p in heard.notes], heard.duration)
    row["tempo"] = float(abs(qpm / clip.melody.qpm - 1) <= 0.04)
    return row


def table(rows: list[dict], transcriber: str) -> str:
    groups = defaultdict(list)
    for r in rows:
        groups[r["kind"]].append(r)
        groups["instruments" if r["kind"] in INSTRUMENT_KINDS else "singing (all)"].append(r)
    lines = [f"transcriber: {transcriber}",
             f"{'kind':<12}{'clips':>6}{'note P':>8}{'note R':>8}{'note F':>8}{'grid':>8}{'key':>8}"
             f"{'key ceil':>9}{'key =est':>9}{'tempo':>8}{'refused':>8}"]
    for kind in [*INSTRUMENT_KINDS, "instruments", "singing"]:
        g = groups.get(kind, [])
        if not g:
            continue

        def mean(k, g=g):
            return statistics.fmean(r[k] for r in g)

        lines.append(f"{kind:<12}{len(g):>6}{mean('p'):>8.3f}{mean('r'):>8.3f}{mean('f'):>8.3f}{mean('grid'):>8.1%}"
                     f"{mean('key'):>8.1%}{mean('key_ceiling'):>9.1%}{mean('key_same'):>9.1%}{mean('tempo'):>8.1%}"
                     f"{sum(r['refused'] for r in g):>8}")
    return "\n".join(lines)


def thirty_seconds(tunes, seed: int) -> bytes:
    """About 30 s of flute: picked tunes one after another."""
    pieces, total = [], 0.0
    for m in audio_set.pick_melodies(tunes, 20, bars=8, seed=seed + 1):
        clip = audio_set.clip_of(m, "flute")
        pieces.append(clip.audio)
        total += len(clip.audio) / clip.sample_rate
        if total >= 30.0:
            break
    y = np.concatenate(pieces)[: 30 * audio_set.SAMPLE_RATE]
    return to_wav_bytes(y, audio_set.SAMPLE_RATE)


def timing(wav: bytes, transcriber: str, repeats: int) -> tuple[float, float | None]:
    audio.audio_to_melody(wav, qpm=100, transcriber=transcriber)  # warm: libraries, model session
    inproc = []
    for _ in range(repeats):
        t = time.perf_counter()
        audio.audio_to_melody(wav, qpm=100, transcriber=transcriber)
        inproc.append(time.perf_counter() - t)
    bounded = None
    if transcriber == audio.TRANSCRIBER:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "thirty.wav")
            Path(path).write_bytes(wav)
            load_melody(path, qpm=100)  # starts the forkserver
            runs = []
            for _ in range(repeats):
                t = time.perf_counter()
                load_melody(path, qpm=100)
                runs.append(time.perf_counter() - t)
            bounded = statistics.median(runs)
    return statistics.median(inproc), bounded


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tunes", type=int, default=40)
    p.add_argument("--bars", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--split", default="test", help="corpus split (tune the transcribers on valid, report test)")
    p.add_argument("--transcribers", default=",".join(audio.TRANSCRIBERS))
    p.add_argument("--kinds", default=",".join(audio_set.KINDS))
    p.add_argument("--repeats", type=int, default=3, help="timing runs")
    p.add_argument("--repeated-notes", choices=audio_set.REPEATS, default="legato",
                   help="how the instruments play a note repeating the one before (audio_set.clip_of)")
    p.add_argument("--show-refusals", action="store_true")
    args = p.parse_args()
    tunes = corpus.load_corpus().split(args.split)
    t = time.perf_counter()
    clips = audio_set.build_set(tunes, args.tunes, bars=args.bars, seed=args.seed, kinds=args.kinds.split(","),
                                repeats=args.repeated_notes)
    seconds = sum(len(c.audio) / c.sample_rate for c in clips)
    print(f"{len(clips)} clips from {args.tunes} {args.split} tunes ({args.bars} bars, 70-140 qpm, repeated notes "
          f"{args.repeated_notes}), "
          f"{seconds / 60:.1f} min of audio, built in {time.perf_counter() - t:.0f} s; {os.cpu_count()} CPUs")
    wav30 = thirty_seconds(tunes, args.seed)
    for name in args.transcribers.split(","):
        t = time.perf_counter()
        rows = [score_clip(c, name) for c in clips]
        took = time.perf_counter() - t
        print()
        print(table(rows, name))
        inproc, bounded = timing(wav30, name, args.repeats)
        print(f"30 s of audio -> melody: {inproc:.2f} s in process"
              + (f", {bounded:.2f} s through load_melody (bounded child)" if bounded is not None else "")
              + f"; the whole set took {took:.0f} s")
        if args.show_refusals:
            for r in rows:
                if r["refused"]:
                    print("  refused:", r["kind"], r["error"][:150])


if __name__ == "__main__":
    main()
