"""Rebuild tests/data/audio/speech.ogg: a spoken sentence, for the "sounds like speech" refusal.

    python -m venv /tmp/espeak && /tmp/espeak/bin/pip install espeakng-loader==0.2.4 soundfile numpy
    /tmp/espeak/bin/python scripts/make_speech_fixture.py

eSpeak NG (1.52, the library and voice data inside the espeakng-loader wheel) says the sentence in
its English voice at 160 words a minute; the result is written as 16 kHz mono Ogg Vorbis. The
project does not depend on eSpeak: only this script, run by hand, does.
"""

import ctypes
from pathlib import Path

import espeakng_loader
import numpy as np
import soundfile

TEXT = b"Please send the score to me by Friday, and bring the violin parts to the rehearsal on Monday morning."
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio" / "speech.ogg"
RETRIEVAL = 1  # espeak_AUDIO_OUTPUT: samples go to the callback
RATE = 1  # espeak_PARAMETER espeakRATE, words a minute


def main() -> None:
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    sample_rate = lib.espeak_Initialize(RETRIEVAL, 500, espeakng_loader.get_data_path().encode(), 0)
    chunks = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    @callback_type
    def collect(wav, count, events):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    lib.espeak_SetSynthCallback(collect)
    lib.espeak_SetVoiceByName(b"en")
    lib.espeak_SetParameter(RATE, 160, 0)
    lib.espeak_Synth(TEXT, len(TEXT) + 1, 0, 0, 0, 0, None, None)
    lib.espeak_Synchronize()
    speech = np.concatenate(chunks).astype(np.float32) / 32768.0
    n = int(len(speech) * 16000 / sample_rate)
    resampled = np.interp(np.arange(n) * sample_rate / 16000, np.arange(len(speech)), speech).astype(np.float32)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(OUT, resampled, 16000, format="OGG", subtype="VORBIS")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {n / 16000:.1f} s)")


if __name__ == "__main__":
    main()
