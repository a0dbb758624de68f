"""Gradio's MCP server (``launch(mcp_server=True)``), adapted in one place: results by name, and our
own result URLs accepted as file inputs. Not public API: ``GradioMCPServer._prepare_tool_call_args``
(the tool's name and arguments in, its endpoint out) and ``postprocess_output_data``; a Gradio that
changes them stops the app at start, and tests/test_mcp.py checks both against the real server."""

from __future__ import annotations

import base64
import json
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import unquote, urlsplit

import gradio as gr
from gradio import processing_utils
from gradio_client import utils as client_utils

# The outputs' names of the tool being called, set and read within one MCP call (one asyncio task).
_TOOL_OUTPUTS: ContextVar[list[str] | None] = ContextVar("mcp_tool_outputs", default=None)
FILE_ROUTE = "/gradio_api/file="  # Gradio's route for the files it serves, our results among them


def adapt_mcp_server(demo: gr.Blocks, files_root: Path) -> None:
    """Gradio's MCP server, two things changed. Call it after ``launch``: Gradio makes the server there.

    - Each tool's result is one JSON object of its outputs by name, every file as its URL::

          {"midi": ["http://127.0.0.1:7860/gradio_api/file=.../melody-01.mid", ...], "zip": "...",
           "audio": [...], "info": {"seed": 7, ...}}

      instead of Gradio's Python repr of its file records, which hold the server's paths.
    - A file input may be the URL of one of our results (a file under ``files_root``), so a client can
      continue a melody it generated: Gradio refuses to download from 127.0.0.1 (its guard against
      server-side request forgery), so such a URL is read here, as a data: URL, from the file itself.
    """
    server = getattr(demo, "mcp_server_obj", None)
    if server is None:  # MCP off
        return
    needed = ("_prepare_tool_call_args", "postprocess_output_data", "get_input_schema", "types")
    if not all(hasattr(server, a) for a in needed):
        raise RuntimeError(f"Gradio's MCP server no longer has all of {', '.join(needed)}; update web/mcp_adapter.py.")
    prepare, postprocess = server._prepare_tool_call_args, server.postprocess_output_data
    root = Path(files_root).resolve()

    def prepare_with_own_files(name, arguments):
        files = {position[0] for position in server.get_input_schema(name)[1]}  # the file inputs' names
        arguments = {k: _own_file_as_data_url(v, root) if k in files else v for k, v in arguments.items()}
        prepared = prepare(name, arguments)
        block_fn = prepared[-1]
        _TOOL_OUTPUTS.set([getattr(c, "label", None) or f"output_{i}" for i, c in enumerate(block_fn.outputs)])
        return prepared

    def by_name(data, root_url):
        names = _TOOL_OUTPUTS.get()
        # Gradio passes [the client's result tuple] without progress, the list of outputs with it.
        values = list(data[0]) if len(data) == 1 and isinstance(data[0], tuple | list) else list(data)
        if names is None or len(values) != len(names):
            return postprocess(data, root_url)
        values = processing_utils.add_root_url(values, root_url, None)
        values = client_utils.traverse(values, lambda f: f.get("url") or f.get("path"),
                                       client_utils.is_file_obj_with_meta)
        text = json.dumps(dict(zip(names, values)), indent=1, default=str)
        return [server.types.TextContent(type="text", text=text)]

    server._prepare_tool_call_args = prepare_with_own_files
    server.postprocess_output_data = by_name


def _own_file_as_data_url(value, root: Path):
    """A URL of a file under ``root`` (one of our results) -> a data: URL of its bytes; else as given."""
    if isinstance(value, list):
        return [_own_file_as_data_url(v, root) for v in value]
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return value
    route = urlsplit(value).path.partition(FILE_ROUTE)
    if not route[1]:
        return value
    path = Path(unquote(route[2])).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return value  # not ours: Gradio's own rules apply
    return "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
