"""The browser page: three tabs (Continue, Interpolate, Generate) over one service.

Each tab is a module with its layout and handlers (:mod:`.tab_continue`, :mod:`.tab_interpolate`,
:mod:`.tab_generate`). Its setting widgets come from the request's declarations (:mod:`.forms`); a
handler gets all its inputs as one dict, builds the request in one call, runs the action of
:mod:`musicgen_app.actions.studio` and shapes the files for the page. The input panels are
:mod:`.panels`, the HTTP API and MCP tools :mod:`.api`. Our exceptions become ``gr.Error`` with
their message (:mod:`.refusals`); a handler that fails returns nothing, so every input and every
piece of per-user state stays as it was.

Per-user state lives in ``gr.State`` (an :class:`~musicgen_app.actions.inputs.InputHistory` per
input panel, the last Continue run, each tab's result folder); the service and the temp store are
shared and read-only.
"""

from __future__ import annotations

import gradio as gr

from ..actions.studio import Studio
from ..actions.tempfiles import TempStore
from ..service.melody_service import MelodyService
from . import api, tab_continue, tab_generate, tab_interpolate

CSS = """
.gradio-container {max-width: 1280px !important}
.score {background: white; border-radius: 4px}
.score svg {max-width: 100%; height: auto}
.variation {padding: 6px !important}
.compact-row {gap: 6px !important}
#title h3 {margin: 0 !important}
.rolls .grid-container {grid-template-rows: none !important; grid-auto-rows: auto !important}
.rolls .thumbnail-item {aspect-ratio: 3 / 1 !important; height: auto !important}
"""


def build_ui(service: MelodyService, store: TempStore | None = None, *, concurrency_limit: int = 2) -> gr.Blocks:
    """The whole page; ``app.py`` queues and launches it."""
    studio = Studio.create(service, store)
    heavy = {"concurrency_id": "model", "concurrency_limit": concurrency_limit}
    with gr.Blocks(title="Melody studio", delete_cache=(600, 3600)) as demo:
        gr.Markdown("### Melody studio · continue a melody, morph one into another, or generate new ones",
                    elem_id="title")
        with gr.Tabs():
            with gr.Tab("Continue", id="continue"):
                liked = tab_continue.build(studio, heavy)
            with gr.Tab("Interpolate", id="interpolate"):
                tab_interpolate.build(studio, heavy)
            with gr.Tab("Generate", id="generate"):
                tab_generate.build(studio, heavy, clip_sources=liked)
        api.add_endpoints(studio, heavy)
    return demo
