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
.rolls .grid-wrap {padding-top: var(--size-8) !important; min-height: 0 !important; max-height: none !important}
.variation .block, .heard .block {border-style: none !important}
.gradio-container input[type=range] {min-width: 0 !important}
.secondary-wrap input[role=combobox] {min-width: 0 !important; text-overflow: ellipsis;
                                      padding-right: var(--size-7) !important}
.file-preview td.download {min-width: 0 !important; width: auto !important}
.file-preview .filename .stem {white-space: normal !important; overflow-wrap: anywhere}
.align-inputs .block label.container {display: flex; flex-direction: column; height: 100%}
.align-inputs .block .input-container {margin-top: auto}
"""
# From .rolls .grid-wrap on, each rule mends a Gradio 6.31 default seen at 1280 px:
# - .rolls .grid-wrap: the gallery's floating label covers the first roll's title, and a gallery of
#   height="auto" is still kept to 55vh, scrolling the last rolls (a morph's B) out of sight;
# - .variation / .heard .block: a group's children lose their border with `border: none`, but Gradio's inline
#   `border-style: solid` brings it back, 3 px wide and text-coloured, round the player and the roll;
# - input[type=range]: a slider keeps 112 px however narrow its column, and cuts its maximum ("3" of 32);
# - the combobox: a long choice runs under the dropdown's arrow ("Chorale line (Bach, MusicX▾L)");
# - the file list: its size column keeps 8 rem, which leaves "w.mid" of "waltz_3-4.mid" in a narrow panel;
# - .align-inputs: in a row of text boxes whose help wraps to different heights, the boxes line up.


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
        with gr.Column(visible=False):  # the endpoints' settings inputs are made outside their own hidden column
            api.add_endpoints(studio, heavy)
    return demo
