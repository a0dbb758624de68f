"""Every failure a musician or an operator can cause has its own exception.

Messages quote the bad value and say how to fix it; the UI shows them verbatim.
"""


class MusicgenError(Exception):
    """Base of all errors the app raises on purpose."""


class MelodyError(MusicgenError, ValueError):
    """A Melody could not be built: overlapping notes, bad pitch, bad grid, ..."""


class ImportFailed(MusicgenError):
    """Base for problems with a file or text handed in by the user."""


class NotMusicError(ImportFailed):
    """The bytes are not MIDI, MusicXML, ABC or tinyNotation."""


class CorruptFileError(ImportFailed):
    """The file has a music format's signature but cannot be read (truncated, damaged)."""


class NoNotesError(ImportFailed):
    """The file parsed but holds no pitched notes."""


class DrumsOnlyError(NoNotesError):
    """Every note is on the drum channel, so there is no melody to take."""


class FileTooLargeError(ImportFailed):
    """The upload is over the size limit."""


class UnsupportedMeterError(ImportFailed):
    """The file's time signature is not one a melody can have (0/0, 5/0 ...)."""


class ParseBudgetError(ImportFailed):
    """Reading the file took more time or memory than one upload may use."""


class TrackChoiceError(ImportFailed):
    """The requested track does not exist."""


class RecordingError(ImportFailed):
    """Base for a recording (WAV, FLAC, OGG, MP3) that cannot become a melody: the take, not the file's syntax."""


class CorruptRecordingError(RecordingError, CorruptFileError):
    """An audio file that is damaged or ends before its data does (truncated)."""


class RecordingFormatError(RecordingError, NotMusicError):
    """Sound we cannot decode (AAC/M4A, WebM, ...): the musician should export WAV, FLAC, OGG or MP3."""


class VideoFileError(RecordingFormatError):
    """A video file (MP4, QuickTime, AVI, WebM/Matroska, MPEG), often renamed .wav."""


class RecordingTooLongError(RecordingError, FileTooLargeError):
    """A recording over the length limit (5 minutes)."""


class ClippedRecordingError(RecordingError):
    """The recording is distorted: much of it sits at full scale (input gain too high)."""


class NoPitchError(RecordingError, NoNotesError):
    """No pitched sound was found in the recording."""


class SilentRecordingError(NoPitchError):
    """The recording is silent or nearly so (microphone off, muted or not chosen)."""


class NoisyRecordingError(NoPitchError):
    """The recording holds noise (hiss, wind, traffic) and no pitched sound."""


class SpeechRecordingError(NoPitchError):
    """The recording sounds like speech: the pitch glides instead of settling on notes."""


class TokenError(MusicgenError, ValueError):
    """A token sequence is not a valid encoding."""


class RenderError(MusicgenError):
    """FluidSynth or the SoundFont is missing or failed."""


class MusicXMLExportError(MusicgenError):
    """The installed music21 no longer writes MusicXML the way io/score.py calls it."""


class CheckpointError(MusicgenError):
    """A checkpoint file is missing, tampered, truncated or does not match the code."""


class RequestError(MusicgenError, ValueError):
    """A service request has an out-of-range or inconsistent parameter."""


class ClientGone(MusicgenError):
    """The page or client that asked has gone; the rest of the work is not done."""
