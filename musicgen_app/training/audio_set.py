"""An audio test set for transcription: corpus melodies played by General MIDI instruments and sung.

    clips = build_set(load_corpus().split("test"), tunes=40, seed=0)

Each tune is cut to its first ``bars`` bars, given a tempo drawn from ``TEMPO_RANGE`` and heard once
per kind: rendered through FluidSynth with each program of ``INSTRUMENTS``, and as synthetic singing
(:func:`sing`). A :class:`Clip` keeps the source melody at its tempo, so its notes in seconds are the
reference (:func:`reference_notes`). The instruments play a note that repeats the one before
either as FluidSynth does ("legato": no new attack) or "detached" (:func:`detached`).

The synthetic voice (:func:`sing`) is a harmonic source (partials falling 6 dB per octave, shaped by
the formants of an "ah" vowel) whose pitch follows the notes with

* vibrato of ``vibrato_cents`` (peak, default +-30 cents) at a rate drawn from 5-6 Hz, fading in
  over the first 0.2 s of each note;
* a glide from the previous note's pitch when a note follows another without a rest (40-80 ms);
* a slow random drift of a few cents;
* an amplitude dip where a note follows another without a rest (a consonant: deep for a repeated
  pitch, shallow otherwise), a 30 ms attack after a rest and a 60 ms release before one;
* breath noise (white noise above 1 kHz, following the voice's loudness) at ``snr_db`` below the
  voice (default 20 dB).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..melody import Melody
from ..render import render

INSTRUMENTS = {"flute": 73, "violin": 40, "piano": 0, "choir": 52}  # General MIDI programs
KINDS = (*INSTRUMENTS, "singing")
TEMPO_RANGE = (70.0, 140.0)  # qpm
SAMPLE_RATE = 22050
REPEATS = ("legato", "detached")  # how the instruments play a note repeating the one before (clip_of)
DETACH_SPLIT = 4  # a detached repeat's gap: a quarter of a step (a 64th note, 27-54 ms at 140-70 qpm)
FORMANTS = ((730.0, 90.0, 1.0), (1090.0, 110.0, 0.5), (2440.0, 170.0, 0.25))  # "ah": Hz, bandwidth Hz, gain


@dataclass
class Clip:
    """One recording of the set: ``melody`` (at the clip's tempo) heard as ``audio`` (mono float32)."""

    name: str
    kind: str  # a key of INSTRUMENTS, or "singing"
    melody: Melody
    audio: np.ndarray
    sample_rate: int


def reference_notes(melody: Melody) -> tuple[np.ndarray, np.ndarray]:
    """The melody's notes as (intervals in seconds, shape (n, 2); MIDI pitches, shape (n,))."""
    sec = melody.seconds_per_step
    intervals = np.array([[n.start * sec, n.end * sec] for n in melody.notes], dtype=float).reshape(-1, 2)
    return intervals, np.array([n.pitch for n in melody.notes], dtype=float)


def _formant_gain(freq: np.ndarray) -> np.ndarray:
    gain = np.full(freq.shape, 0.05)
    for centre, width, level in FORMANTS:
        gain += level / (1.0 + ((freq - centre) / width) ** 2)
    return gain


def sing(melody: Melody, sample_rate: int = SAMPLE_RATE, *, seed: int = 0, vibrato_cents: float = 30.0,
         snr_db: float = 20.0, tail_seconds: float = 0.5) -> np.ndarray:
    """The melody sung by the synthetic voice described in the module docstring; peak at -3 dBFS."""
    rng = np.random.default_rng(seed)
    sec = melody.seconds_per_step
    n = int(round((melody.duration_seconds + tail_seconds) * sample_rate))
    pitch = np.zeros(n)  # MIDI pitch per sample (0 where silent)
    env = np.zeros(n)
    t = np.arange(n) / sample_rate
    notes = melody.notes
    for i, note in enumerate(notes):
        a, b = int(round(note.start * sec * sample_rate)), int(round(note.end * sec * sample_rate))
        if b <= a:
            continue
        prev = notes[i - 1] if i and notes[i - 1].end == note.start else None
        nxt = notes[i + 1] if i + 1 < len(notes) and notes[i + 1].start == note.end else None
        local = t[a:b] - t[a]
        p = np.full(b - a, float(note.pitch))
        rate = rng.uniform(5.0, 6.0)
        depth = vibrato_cents / 100.0 * np.clip(local / 0.2, 0.0, 1.0)
        p += depth * np.sin(2 * math.pi * rate * local + rng.uniform(0, 2 * math.pi))
        if prev is not None and prev.pitch != note.pitch:
            glide = rng.uniform(0.04, 0.08)
            g = np.clip(local / glide, 0.0, 1.0)
            p += (prev.pitch - note.pitch) * 0.5 * (1 + np.cos(math.pi * g))
        pitch[a:b] = p
        e = np.full(b - a, note.velocity / 127.0)
        if prev is None:
            e *= np.clip(local / 0.03, 0.0, 1.0)
        else:
            floor = 0.15 if prev.pitch == note.pitch else 0.7
            e *= floor + (1 - floor) * np.clip(np.abs(local - 0.03) / 0.03, 0.0, 1.0)
        if nxt is None:
            e *= np.clip((t[b - 1] - t[a:b] + 1 / sample_rate) / 0.06, 0.0, 1.0)
        env[a:b] = e
    # hold the pitch through rests so the phase stays continuous; the envelope is 0 there
    voiced = env > 0
    if voiced.any():
        idx = np.where(voiced, np.arange(n), 0)
        np.maximum.accumulate(idx, out=idx)
        first = np.argmax(voiced)
        idx[:first] = first
        pitch = pitch[idx]
    drift = np.cumsum(rng.normal(0.0, 1.0, n // 512 + 2))
    drift = np.interp(np.arange(n) / 512, np.arange(drift.size), 0.04 * drift / max(1.0, np.abs(drift).max()))
    f0 = 440.0 * 2.0 ** ((pitch + drift - 69.0) / 12.0)
    phase = 2 * math.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros(n)
    nyquist = 0.45 * sample_rate
    for k in range(1, 60):
        fk = k * f0
        if fk.min() >= nyquist:
            break
        voice += np.where(fk < nyquist, _formant_gain(fk) / k, 0.0) * np.sin(k * phase)
    voice *= env
    noise = rng.normal(0.0, 1.0, n)
    spectrum = np.fft.rfft(noise)
    spectrum[: int(1000.0 * n / sample_rate)] = 0  # breath: above 1 kHz
    noise = np.fft.irfft(spectrum, n) * (0.3 + 0.7 * env / max(env.max(), 1e-9))
    p_voice = np.mean(voice[voiced] ** 2) if voiced.any() else 1.0
    noise *= math.sqrt(p_voice / 10 ** (snr_db / 10) / max(np.mean(noise ** 2), 1e-20))
    out = voice + noise
    return (out * 10 ** (-3 / 20) / max(np.abs(out).max(), 1e-9)).astype(np.float32)


def detached(melody: Melody, split: int = DETACH_SPLIT) -> Melody:
    """``melody`` with each note that the same pitch follows without a rest cut short by 1/``split``
    of a step (a 64th note at 4 steps a quarter), as a player tongues or re-bows a repeated note.

    FluidSynth plays such a repeat legato: the new note-on comes with the old note-off and the
    flute's or violin's level rises by under 1 dB, so nothing in the sound marks the new note. The
    melody comes back at ``split`` times the steps per quarter; every other note keeps its length.
    """
    notes = []
    for i, n in enumerate(melody.notes):
        nxt = melody.notes[i + 1] if i + 1 < len(melody.notes) else None
        gap = int(nxt is not None and nxt.pitch == n.pitch and nxt.start == n.end)
        notes.append(dataclasses.replace(n, start=n.start * split, duration=n.duration * split - gap))
    return melody.replace(notes=tuple(notes), steps_per_quarter=melody.steps_per_quarter * split,
                          total_steps=melody.total_steps * split, pickup_steps=melody.pickup_steps * split)


def clip_of(melody: Melody, kind: str, *, sample_rate: int = SAMPLE_RATE, seed: int = 0, name: str = "",
            repeats: str = "legato") -> Clip:
    """``melody`` heard as ``kind`` (an instrument of INSTRUMENTS, or "singing").

    ``repeats`` (instruments only): "legato" plays a repeated note as FluidSynth does, with no new
    attack; "detached" leaves a short gap before it (:func:`detached`).
    """
    if repeats not in REPEATS:
        raise ValueError(f"repeats {repeats!r} is not one of {', '.join(REPEATS)}")
    if kind == "singing":
        audio = sing(melody, sample_rate, seed=seed)
    else:
        played = detached(melody) if repeats == "detached" else melody
        audio = render(played, sample_rate=sample_rate, program=INSTRUMENTS[kind])
    return Clip(name or melody.name, kind, melody, audio, sample_rate)


def pick_melodies(tunes: list[Melody], count: int, *, bars: int = 8, seed: int = 0) -> list[Melody]:
    """``count`` tunes drawn with ``seed``, each cut to its first ``bars`` bars and set to a tempo in TEMPO_RANGE."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(tunes))[:count]
    picked = []
    for i in order:
        m = tunes[int(i)]
        stop = min(m.total_steps, m.pickup_steps + bars * m.bar_steps)
        m = m.slice(0, stop)
        last = m.notes[-1].end if m.notes else 0
        m = m.replace(total_steps=max(last, 1), qpm=float(round(rng.uniform(*TEMPO_RANGE))),
                      name=m.name or f"test tune {int(i)}")
        picked.append(m)
    return picked


def build_set(tunes: list[Melody], count: int = 40, *, bars: int = 8, seed: int = 0, kinds=KINDS,
              sample_rate: int = SAMPLE_RATE, repeats: str = "legato") -> list[Clip]:
    """Every picked tune (:func:`pick_melodies`) heard as every kind in ``kinds`` (``repeats``: see
    :func:`clip_of`)."""
    clips = []
    for j, m in enumerate(pick_melodies(tunes, count, bars=bars, seed=seed)):
        for kind in kinds:
            clips.append(clip_of(m, kind, sample_rate=sample_rate, seed=seed * 1000 + j, name=m.name,
                                 repeats=repeats))
    return clips
