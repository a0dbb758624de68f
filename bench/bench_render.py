"""How fast are MIDI import and FluidSynth rendering?  Run: PYTHONPATH=. .venv/bin/python bench/bench_render.py

Prints medians of several runs:
 1. importing a 64-bar MIDI file (built here with mido: 4/4, 16th-note grid, a phrase-shaped melody);
 2. our render() of a 30-second melody, in x real time (synth warmed first: one synth per process
    is the design), with every note new (the note cache emptied before each run) and with its
    notes cached (render.py synthesises each distinct note once);
 3. pretty_midi.PrettyMIDI(file).fluidsynth() on the same 30-second file and SoundFont, and how
    many times faster ours is with every note new. pretty_midi builds a new synth and reloads the
    font on every call;
 4. ``--clicks N``: the audio of a Continue 8 bars x 4 variations (the shipped models) after the
    first 4 bars of N test-split tunes, as a click writes it: the first click on a never-seen input
    (the note and input caches emptied) and the same click again.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import mido

from musicgen_app import render
from musicgen_app.io.importer import load_melody
from musicgen_app.melody import Melody, Note

GOAL_REALTIME = 150.0
GOAL_VS_PRETTY_MIDI = 1.5
QPM = 120.0
SPQ = 4  # steps per quarter: a 16th-note grid
SR = 44100

# One bar of 4/4 as 16th-note durations; each sums to 16.
RHYTHMS = [
    [4, 4, 4, 4], [2, 2, 4, 4, 4], [4, 2, 2, 4, 4], [6, 2, 4, 4], [2, 2, 2, 2, 4, 4],
    [4, 4, 2, 2, 2, 2], [3, 1, 4, 4, 4], [4, 4, 8], [2, 2, 2, 2, 2, 2, 4],
]
SCALE = [0, 2, 4, 5, 7, 9, 11]


def phrase_melody(bars: int, seed: int = 0) -> Melody:
    """A C-major melody in four-bar phrases: stepwise motion with leaps, phrase ends held."""
    rng = random.Random(seed)
    notes, degree = [], 7  # degree 7 = C5
    for bar in range(bars):
        cadence = bar % 4 == 3
        rhythm = [4, 4, 8] if cadence else rng.choice(RHYTHMS)
        step = bar * 16
        for i, dur in enumerate(rhythm):
            degree += rng.choice([-2, -1, -1, 1, 1, 2, 0, 3, -3])
            degree = min(max(degree, 2), 13)
            if cadence and i == len(rhythm) - 1:
                degree = 7 if bar % 8 == 7 else 4  # tonic at the end of a period, else the 5th
            pitch = 60 + 12 * (degree // 7) + SCALE[degree % 7]
            rest = 1 if dur >= 4 and rng.random() < 0.15 else 0  # a little articulation
            notes.append(Note(step, pitch, dur - rest, rng.randint(70, 105)))
            step += dur
    return Melody(tuple(notes), total_steps=bars * 16, qpm=QPM, name=f"bench-{bars}-bars")


def write_midi(melody: Melody, path: Path) -> Path:
    """Plain mido export, independent of our own MIDI writer."""
    ppq = 480
    ticks = ppq // melody.steps_per_quarter
    mid = mido.MidiFile(ticks_per_beat=ppq)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(melody.qpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    track.append(mido.Message("program_change", program=melody.program, time=0))
    events = []
    for n in melody.notes:
        events.append((n.start * ticks, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        events.append((n.end * ticks, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=melody.total_steps * ticks - now))
    mid.save(path)
    return path


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--soundfont", default=None, help="a name from render.list_soundfonts()")
    parser.add_argument("--clicks", type=int, default=10, metavar="N", help="test-split inputs for 4. (0: skip it)")
    args = parser.parse_args()
    font = args.soundfont or render.default_soundfont()
    font_path = render.soundfont_path(font)
    import pretty_midi

    with tempfile.TemporaryDirectory() as tmp:
        long_file = write_midi(phrase_melody(64, seed=1), Path(tmp) / "64_bars.mid")
        short_melody = phrase_melody(15, seed=2)  # 15 bars of 4/4 at 120 qpm = 30 s
        short_file = write_midi(short_melody, Path(tmp) / "30_seconds.mid")
        print(f"SoundFont: {font} ({font_path}); {args.repeats} runs each, medians.\n")

        # 1. import
        def load(path):
            return load_melody(path).melody

        long_melody = load(long_file)
        t = median_time(lambda: load(long_file), args.repeats)
        print(f"1. import 64-bar MIDI with importer.load_melody: {t * 1000:.1f} ms "
              f"({len(long_melody.notes)} notes, {long_melody.num_bars:g} bars)")
        short_melody = load(short_file)

        # 2. our render, warm synth
        seconds = short_melody.duration_seconds
        render.warm_up(font, SR)
        render.render(short_melody, font, SR)
        cached = median_time(lambda: render.render(short_melody, font, SR), args.repeats)
        ours = median_time(lambda: (render._NOTES._items.clear(), render.render(short_melody, font, SR)), args.repeats)
        print(f"2. render() of {seconds:.1f} s, every note new: {ours * 1000:.1f} ms = {seconds / ours:.0f}x real time "
              f"(goal >= {GOAL_REALTIME:.0f}x: {'met' if seconds / ours >= GOAL_REALTIME else 'NOT met'}); "
              f"its notes cached: {cached * 1000:.1f} ms = {seconds / cached:.0f}x")
        if load is not None:
            both = median_time(lambda: (render._NOTES._items.clear(), render.render(load(short_file), font, SR)),
                               args.repeats)
            print(f"   load_melody + render() of the file: {both * 1000:.1f} ms = {seconds / both:.0f}x real time")
        t0 = time.perf_counter()
        render._load_synth(font_path, SR).synth.delete()  # what a cold first render pays once per process
        print(f"   (one-off synth creation + font load: {(time.perf_counter() - t0) * 1000:.0f} ms)")

        # 3. pretty_midi's path: parse + new synth + font load + synthesis, every call
        theirs = median_time(
            lambda: pretty_midi.PrettyMIDI(str(short_file)).fluidsynth(fs=SR, synthesizer=str(font_path)),
            args.repeats)
        ratio = theirs / ours
        print(f"3. pretty_midi.PrettyMIDI(file).fluidsynth(fs, synthesizer=<sf2 path>): {theirs * 1000:.1f} ms = "
              f"{seconds / theirs:.0f}x real time; it reloads the SoundFont on every call")
        print(f"   ours faster by {ratio:.1f}x (goal >= {GOAL_VS_PRETTY_MIDI}x: "
              f"{'met' if ratio >= GOAL_VS_PRETTY_MIDI else 'NOT met'})")
        if load is not None:
            print(f"   end to end (load_melody + render vs parse + fluidsynth): {theirs / both:.1f}x")
        print("   Note: pretty_midi's synth runs FluidSynth's reverb and chorus; ours has them off "
              "(they keep state across renders), so part of the gap is that work.")
    if args.clicks:
        continue_clicks(args.clicks)


def continue_clicks(n: int) -> None:
    from musicgen_app.actions import outputs
    from musicgen_app.service import ContinueRequest, MelodyService
    from musicgen_app.training import corpus

    svc = MelodyService.from_checkpoints()
    inputs = [t.slice(0, 4 * t.bar_steps) for t in corpus.load_corpus().split("test")[:n]]
    results = [svc.continue_(ContinueRequest(m, bars=8, variations=4, seed=1)) for m in inputs]
    first, again = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k, result in enumerate(results):
            render._NOTES._items.clear()
            render._HEADS._items.clear()
            for times, name in ((first, "a"), (again, "b")):
                t0 = time.perf_counter()
                outputs.write_variations_media(result, range(4), Path(tmp) / f"{name}{k}", roll=False)
                times.append(time.perf_counter() - t0)
    print(f"4. a Continue 8 x 4's audio (four WAVs), {n} test-split inputs: first click on a new input "
          f"{statistics.median(first) * 1000:.0f} ms, the same click again {statistics.median(again) * 1000:.0f} ms "
          "(medians)")


if __name__ == "__main__":
    main()
