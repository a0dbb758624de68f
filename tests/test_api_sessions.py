"""API callers' Gradio sessions do not pile up (issue 9: a curl-style call held 0.5 MB for good).

The first test runs our ApiSessions against Gradio's own StateHolder, whose attributes it relies on
(not public API); the second calls the running app over plain HTTP, as curl does.
"""

from __future__ import annotations

import asyncio
import json
import time

import gradio as gr
import gradio.state_holder
import httpx
import pytest
from gradio.blocks import BlocksConfig
from gradio.context import LocalContext
from gradio.state_holder import SessionState, StateHolder

from musicgen_app.web.api_sessions import SESSION_IDLE_SECONDS, ApiSessions, lazy_session_configs

pytest_plugins = ["conftest_app"]


def test_an_api_session_idle_too_long_is_dropped_and_a_page_session_is_kept():
    with gr.Blocks() as demo:
        gr.State([])
    holder = StateHolder()
    holder.set_blocks(demo)
    now = [0.0]
    sessions = ApiSessions(idle_seconds=10, clock=lambda: now[0])
    blocks_token = LocalContext.blocks.set(demo)
    try:
        def call_from(session):
            holder[session]  # what Gradio does when an event starts
            token = LocalContext.request.set(gr.Request(session_hash=session))
            try:
                sessions.touch()
            finally:
                LocalContext.request.reset(token)

        holder["page"]  # a page's session: never an API caller
        call_from("curl-1")
        call_from("client")
        now[0] = 8
        call_from("client")  # a gradio_client calling again keeps its session
        now[0] = 11
        call_from("curl-2")
        assert set(holder.session_data) == {"page", "client", "curl-2"}
        assert "curl-1" not in holder.time_last_used
        now[0] = 30
        call_from("curl-3")
        assert set(holder.session_data) == {"page", "curl-3"}
    finally:
        LocalContext.blocks.reset(blocks_token)


@pytest.fixture
def configs_made(monkeypatch) -> list[int]:
    """The component ids whose config Gradio makes from now on; its own SessionState is put back after."""
    made = []
    real = BlocksConfig.config_for_block
    counted = staticmethod(lambda *a, **k: made.append(a[0]) or real(*a, **k))
    monkeypatch.setattr(BlocksConfig, "config_for_block", counted)
    monkeypatch.setattr(gradio.state_holder, "SessionState", SessionState)
    return made


def eager_and_lazy(demo, made: list[int], session: str):
    """Gradio's own session of ``demo``, and ours as Gradio makes one when an event starts (none made)."""
    eager = SessionState(demo)
    lazy_session_configs()
    holder = StateHolder()
    holder.set_blocks(demo)
    made.clear()
    return eager, holder[session]


def test_a_new_session_makes_its_components_configs_only_when_read(configs_made):
    """Gradio made every component's config for each new session (tens of ms with this page, on the
    event loop, for every curl-style call); now none at opening, and the same ones when read."""
    with gr.Blocks() as demo:
        box = gr.Textbox("typed", label="Notes")
        gr.Slider(1, 16, value=8, label="Bars")
        gr.State([])
    made = configs_made
    made.clear()
    SessionState(demo)
    assert len(made) == len(demo.blocks)
    eager, session = eager_and_lazy(demo, made, "curl-1")
    assert made == []
    assert sorted(vars(session)) == sorted(vars(eager))
    session._update_value_in_config(box._id, "c d e")  # as Gradio does with an event's inputs
    assert made == []
    assert session.config_values[box._id]["props"]["value"] == "c d e" and made == [box._id]
    eager._update_value_in_config(box._id, "c d e")
    assert list(session.components) == list(eager.components)  # every config, in Gradio's order


@pytest.mark.e2e
def test_a_plain_http_callers_session_is_gone_after_the_idle_time(app_server):
    http = httpx.Client(base_url=app_server.url, timeout=120)
    params = http.get("/gradio_api/info").json()["named_endpoints"]["/generate"]["parameters"]
    data = [1 if p["parameter_name"] == "count" else p.get("parameter_default") for p in params]

    def generate() -> str:
        event = http.post("/gradio_api/call/generate", json={"data": data}).json()["event_id"]
        with http.stream("GET", f"/gradio_api/call/generate/{event}") as stream:
            kinds = [line for line in stream.iter_lines() if line.startswith("event: ")]
        assert kinds[-1] == "event: complete", kinds
        return event  # a caller with no session of its own has the event's id as its session

    def held(session: str) -> bool:  # Gradio's deep-link route answers "" for a session it does not hold
        return json.loads(http.get("/gradio_api/deep_link", params={"session_hash": session}).text) != ""

    first = generate()
    assert held(first)
    time.sleep(SESSION_IDLE_SECONDS + 1)
    second = generate()
    assert not held(first) and held(second)


def test_an_events_updates_make_no_config_until_read_and_then_the_same_as_gradios(configs_made):
    """Gradio made a component's config twice for each update an event returns (a player's new
    label, a group shown: 15 ms of a Continue click on the page); now when read, the same configs."""
    with gr.Blocks() as demo:
        box = gr.Textbox("typed", label="Notes")
        player = gr.Audio(label="Variation 1", visible=False)
        run = gr.State([])
        gr.Button().click(lambda: None, None, [box, player, run])
    block_fn = next(iter(demo.fns.values()))
    made = configs_made
    eager, session = eager_and_lazy(demo, made, "page")

    def first():  # fresh update dicts each time: Gradio changes those it is given
        return [gr.update(value="c d e", label="Typed notes"), gr.update(visible=True, label="Variation 1 · best"), [1]]

    def then():
        return [gr.update(visible=False), gr.update(label="Variation 1"), [1, 2]]

    for updates in (first, then):
        made.clear()
        asyncio.run(demo.postprocess_data(block_fn, updates(), session))
        assert made == []
        got = list(session.components)  # the first read makes them all; later ones what changed
        if updates is then:
            assert sorted(made) == sorted([box._id, player._id, run._id])
        asyncio.run(demo.postprocess_data(block_fn, updates(), eager))
        assert got == list(eager.components)  # as Gradio made them, in its order
        assert session.state_data == eager.state_data
    assert "value" not in session.config_values[box._id]["props"]  # the second update dropped it, as in Gradio
