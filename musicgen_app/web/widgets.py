"""What every tab of the page shares: the seed row, the status line, a refusal shown in the status
line, and keeping a shown result's files while the page is open. The settings' widgets are built by
:mod:`.forms`.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import random

import gradio as gr

from ..actions.studio import Studio


def random_seed() -> int:
    return random.randint(0, 99_999_999)


def status_line(seed: int, notices, extra: str = "") -> str:
    lines = [f"Seed used: **{seed}** (type it into the seed box to get the same result again).{extra}"]
    lines += [f"⚠ {html.escape(n)}" for n in notices]
    return "  \n".join(lines)


def refusal_line(exc: gr.Error) -> str:
    """A refusal as a line of Markdown: its title (what kind of problem), then what to change."""
    return f"⚠ **{exc.title}:** {exc.message}"


def refused_in_status(handler, outputs: list, status: gr.Markdown | None = None, said=None):
    """``handler`` (whose refusals are ``gr.Error``, see :func:`.refusals.user_errors`) for an event
    with ``outputs``: a refusal leaves every output as it was but ``status``, which says what to
    change (``said(exc, *args)``, default :func:`refusal_line`); a warning toast says it too (alone
    when ``status`` is None). A raised error would put Gradio's "Error" badge over the status line,
    or over every output when there is none, and a file list shows the badge instead of its files.

    The event then ends as a success, so a ``.success`` step after it must tolerate outputs that
    did not change."""
    at = None if status is None else outputs.index(status)

    @functools.wraps(handler)
    def event(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except gr.Error as exc:
            gr.Warning(exc.message, title=exc.title)
            kept = [gr.skip()] * len(outputs)
            if at is not None:
                kept[at] = said(exc, *args) if said else refusal_line(exc)
            return tuple(kept) if len(kept) > 1 else kept[0]

    return event


FILES_CLEARED = ("The files of this result were cleared to make room on the server; press the button again to "
                 "remake them (the same seed gives the same music).")
KEEP_FILES_EVERY = 120  # seconds between an open page's calls that keep its latest files


def keep_files(studio: Studio, held, status: str):
    """An open page keeps its latest result's files: each call restarts their age clock, so they go
    an hour after the page closes, not while it shows them. When the store cleared them for space,
    the status says so (once)."""
    folder = held if isinstance(held, str) else held.folder  # a folder, or a run that names one
    if not folder or studio.store.keep(folder):
        return gr.skip(), gr.skip()
    cleared = "" if isinstance(held, str) else dataclasses.replace(held, folder="")
    return cleared, f"{status}  \n⚠ {FILES_CLEARED}"


def keep_files_while_open(studio: Studio, held: gr.State, status: gr.Markdown) -> None:
    gr.Timer(KEEP_FILES_EVERY).tick(functools.partial(keep_files, studio), [held, status], [held, status],
                                    api_visibility="private", queue=False, show_progress="hidden")


def seed_row(elem_id: str | None = None):
    with gr.Row(elem_classes="compact-row", equal_height=True):
        seed = gr.Textbox("", label="Seed", placeholder="random", max_length=12, scale=3, min_width=90,
                          elem_id=elem_id)
        dice = gr.Button("New seed", size="sm", scale=2, min_width=70)
    dice.click(lambda: str(random_seed()), None, seed, api_visibility="private", queue=False)
    return seed
