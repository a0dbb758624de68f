"""Our exceptions as the page shows them: a titled message that says what to change, with every
input and every result on screen left as it was."""

from __future__ import annotations

import functools
import html
import logging

import gradio as gr

from ..actions.tempfiles import StoreFull
from ..errors import ImportFailed, MusicgenError, RenderError, RequestError
from ..io.sandbox import ShuttingDown
from .lifecycle import handling

log = logging.getLogger(__name__)


def error_title(exc: MusicgenError) -> str:
    if isinstance(exc, ImportFailed):
        return "Could not use this melody"
    if isinstance(exc, RequestError):
        return "Check the settings"
    if isinstance(exc, RenderError):
        return "Could not make the audio"
    if isinstance(exc, StoreFull | ShuttingDown):
        return "The studio is busy"
    return "Error"


def user_errors(fn):
    """Our exceptions -> gr.Error with their message (shown in the page; inputs stay as they are).
    The call runs as one request (:func:`.lifecycle.handling`: one parse deadline, its temp room)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with handling():
                return fn(*args, **kwargs)
        except MusicgenError as exc:
            log.info("%s refused: %s: %s", fn.__name__, type(exc).__name__, exc)  # one line, no traceback
            raise gr.Error(html.escape(str(exc), quote=False), title=error_title(exc),
                           print_exception=False) from exc

    return wrapper
