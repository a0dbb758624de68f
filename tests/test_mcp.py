"""The MCP face: the running app (app.py, MCP on by default) serves Gradio's MCP server at
/gradio_api/mcp/; a client over streamable HTTP sees exactly the three actions as tools, with their
parameters described, and a call returns its result files as URLs (web/mcp_adapter.py).

Runs with the real models or the debug one, whichever the shared app has: it checks the face, not
the music.
"""

from __future__ import annotations

import asyncio
import io
import json
import urllib.request
from datetime import timedelta

import httpx
import mido
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from musicgen_app.web.api import CONTINUE_SETTINGS, GENERATE_SETTINGS, INTERPOLATE_SETTINGS

pytest_plugins = ["conftest_app"]
pytestmark = pytest.mark.e2e

TIMEOUT_S = 60


def mcp(server, action):
    """``await action(session)`` in one MCP session with the app; its answer."""

    async def run():
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as http, \
                streamable_http_client(server.url + "gradio_api/mcp/", http_client=http) as (read, write, _), \
                ClientSession(read, write, read_timeout_seconds=timedelta(seconds=TIMEOUT_S)) as session:
            await session.initialize()
            return await action(session)

    return asyncio.run(run())


def call(server, tool: str, arguments: dict):
    return mcp(server, lambda s: s.call_tool(tool, arguments))


def answer(result) -> dict:
    """A tool's answer: one text, the JSON object of its outputs by name."""
    assert not result.isError, result.content
    assert [c.type for c in result.content] == ["text"]
    return json.loads(result.content[0].text)


def download(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as r:
        return r.read()


@pytest.fixture(scope="module")
def generated(app_server) -> dict:
    return answer(call(app_server, "generate", {"count": 2, "seed": 7}))


def test_the_tools_are_the_three_actions_with_their_parameters_described(app_server):
    tools = {t.name: t for t in mcp(app_server, lambda s: s.list_tools()).tools}
    assert set(tools) == {"continue", "interpolate", "generate"}  # none of the page's own handlers
    expected = {
        "continue": {"melody_file", "notes", "example", "track", "audio_qpm", "render_audio", "audio_meter",
                     "audio_downbeat", *CONTINUE_SETTINGS},
        "interpolate": {f"{c}_{k}" for c in "ab"
                        for k in ("file", "notes", "example", "audio_qpm", "audio_meter", "audio_downbeat")}
        | {"render_audio", *INTERPOLATE_SETTINGS},
        "generate": {"clips", "render_audio", *GENERATE_SETTINGS},
    }
    for name, tool in tools.items():
        props = tool.inputSchema["properties"]
        assert set(props) == expected[name]
        assert all(p.get("description") for p in props.values()), name
        assert "Returns:" in tool.description and "URL" in tool.description

    props = tools["continue"].inputSchema["properties"]
    bars = props["bars"]
    assert bars["type"] == "integer" and bars["default"] == 8 and "1-32" in bars["description"]
    assert props["temperature"]["type"] == "number"
    assert "one of: free, tonic, tonic chord, dominant" in props["ending"]["description"]
    assert "B minor" in props["key_lock"]["description"]  # a long choice is listed in full
    assert "Jig (6/8, MIDI)" in props["example"]["description"]
    assert "data: URL" in props["melody_file"]["description"]
    assert props["audio_qpm"]["type"] == "number" and "estimated" in props["audio_qpm"]["description"]
    assert "midi" in tools["continue"].description and "seed" in tools["continue"].description
    props = tools["generate"].inputSchema["properties"]
    assert props["count"]["type"] == "integer" and "1-16" in props["count"]["description"]
    assert props["render_audio"]["type"] == "boolean" and props["render_audio"]["default"] is True
    assert props["ends_on_tonic"]["type"] == "boolean"


def test_generate_returns_the_midi_files_as_urls_and_the_seed(generated):
    assert set(generated) == {"midi", "zip", "audio", "info"}
    assert generated["info"]["seed"] == 7 and len(generated["info"]["melodies"]) == 2
    assert len(generated["midi"]) == len(generated["audio"]) == 2
    for url in generated["midi"]:
        assert url.endswith(".mid")
        midi = mido.MidiFile(file=io.BytesIO(download(url)))
        assert any(m.type == "note_on" and m.velocity > 0 for t in midi.tracks for m in t)
    assert download(generated["audio"][0])[:4] == b"RIFF"


def test_a_result_url_is_an_input_and_a_refusal_is_an_error(app_server, generated, data_dir):
    cont = answer(call(app_server, "continue", {"melody_file": generated["midi"][1], "bars": 1, "variations": 1,
                                                "seed": 3}))
    assert cont["info"]["seed"] == 3 and len(cont["midi"]) == 1
    assert cont["info"]["input"]["notes"] == generated["info"]["melodies"][1]["notes"]

    refused = call(app_server, "generate", {"count": 99})
    assert refused.isError and "out of range" in refused.content[0].text
    # Only our results are read from disk; any other file URL on this host is Gradio's to refuse.
    outside = f"{app_server.url}gradio_api/file={data_dir / 'folk-tune.mid'}"
    assert call(app_server, "continue", {"melody_file": outside, "bars": 1}).isError
