"""The model-service layer: request objects in, Melodies out.

    requests        one request dataclass per action, its settings declared once; the results
    melody_service  MelodyService: loads the checkpoints once; continue_, interpolate, sample
    phrasing        Continue's endings: candidate last bars, the cadence round
    pitch_guard     the pitch range a continuation keeps to
    decoding        VAE codes -> melodies; the morph's pacing
"""

from .decoding import bank_melodies, melodies_from_codes, paced_ts, style_melodies
from .melody_service import MelodyService
from .requests import (
    GENERATE_KEYS,
    KEEP_PROGRAM,
    KEY_LOCKS,
    PACINGS,
    SAMPLERS,
    TIME_SIGNATURES,
    ContinueRequest,
    ContinueResult,
    InterpolateRequest,
    InterpolateResult,
    SampleRequest,
    SampleResult,
    continuation_steps,
)

__all__ = ["GENERATE_KEYS", "KEEP_PROGRAM", "KEY_LOCKS", "PACINGS", "SAMPLERS", "TIME_SIGNATURES", "ContinueRequest",
           "ContinueResult", "InterpolateRequest", "InterpolateResult", "MelodyService", "SampleRequest",
           "SampleResult", "bank_melodies", "continuation_steps", "melodies_from_codes", "paced_ts",
           "style_melodies"]
