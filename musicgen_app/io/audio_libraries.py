"""Loads the transcription libraries (librosa, basic-pitch, onnxruntime) when imported.

The sandbox's forkserver preloads this module, so the child process that reads each recording
starts with them in memory instead of importing them (seconds) on every upload. Nothing else
imports it: the rest of the package loads them on first use.
"""

from .audio import load_libraries

load_libraries()
