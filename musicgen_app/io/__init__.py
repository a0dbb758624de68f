"""The input and output edge: files and typed notes <-> :class:`~musicgen_app.melody.Melody`.

    importer  what a user hands in (a file's bytes or typed notes) -> ImportResult
    midi      Standard MIDI files <-> Melody (mido)
    score     MusicXML / ABC / tinyNotation <-> Melody (music21)
    audio     recordings (WAV, FLAC, OGG, MP3) -> Melody: basic-pitch and librosa, then the shared grid
    quantize  timed notes -> Melody: track choice, skyline, grid, and the notices every reader shares
    sandbox   bounded parsing in a child process (audio_libraries: what its forkserver preloads)

Nothing here knows about the models: the edge speaks Melody only.
"""
