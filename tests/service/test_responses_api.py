"""The OpenAI Responses API against its published shapes, with the official ``openai`` SDK as
the client (as Codex sends it: instructions, input items with function calls and their
outputs, function tools and a hosted one, ``store: false``): whole, streamed, and the
streaming helper. The service and the scripted cloud are tests/service/conftest.py's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.bench.scripted_cloud import FIX_NEW as NEW
from router.bench.scripted_cloud import FIX_OLD as OLD
from router.bench.scripted_cloud import FIX_PATH as PATH
from router.bench.scripted_cloud import Recorded, fix_one_line, scripted_cloud
from router.service import turns
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

ASK = "Fix the bug in calc.py: add must return a + b."


@pytest.fixture
def oai(agent_service: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{agent_service}/v1", api_key="unused",
                       max_retries=0) as client:
        yield client


CODEX_TOOLS: list[Any] = [
    {"type": "function", "name": "read_file", "description": "Read a file",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                    "required": ["path"]}},
    {"type": "function", "name": "edit_file", "description": "Replace text in a file",
     "parameters": {"type": "object", "required": ["path", "old_string", "new_string"],
                    "properties": {"path": {"type": "string"}, "old_string": {"type": "string"},
                                   "new_string": {"type": "string"}}}},
    {"type": "web_search"},
]


def test_a_codex_turn_comes_back_as_a_function_call_and_hosted_tools_stay_here(
        oai: openai.OpenAI, agent_cloud: tuple[str, Recorded]) -> None:
    sent = len(agent_cloud[1].bodies)
    response = oai.responses.create(model="gpt-5-codex", instructions="You are Codex.",
                                    input=[{"role": "user", "content": [
                                        {"type": "input_text", "text": ASK}]}],
                                    tools=CODEX_TOOLS, store=False,
                                    extra_body={"prompt_cache_key": "session-1"})
    [call] = [item for item in response.output if item.type == "function_call"]
    assert call.name == "read_file" and json.loads(call.arguments) == {"path": PATH}
    assert response.status == "completed"
    body = agent_cloud[1].bodies[sent]
    assert [t["function"]["name"] for t in body["tools"]] == ["read_file", "edit_file"]
    assert body["messages"][0] == {"role": "system", "content": "You are Codex."}


def test_the_function_call_output_turn_and_the_stream_s_events(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="gpt-5-codex", input=ASK, tools=CODEX_TOOLS, store=False)
    [call] = [item for item in first.output if item.type == "function_call"]
    kinds, done = [], None
    stream = oai.responses.create(
        model="gpt-5-codex", tools=CODEX_TOOLS, store=False, stream=True,
        input=[{"role": "user", "content": ASK},
               {"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id,
                "output": "def add(a, b):\n    return a - b\n"}])
    for event in stream:
        kinds.append(event.type)
        if event.type == "response.completed":
            done = event.response
    for kind in ("response.created", "response.output_item.added",
                 "response.function_call_arguments.delta", "response.output_item.done",
                 "response.completed"):
        assert kind in kinds, kinds
    assert done is not None
    [edit] = [item for item in done.output if item.type == "function_call"]
    assert edit.name == "edit_file"
    assert json.loads(edit.arguments) == {"path": PATH, "old_string": OLD, "new_string": NEW}


def test_previous_response_id_is_refused_naming_the_field(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="gpt-5-codex", input="hi", previous_response_id="resp_x")
    assert refused.value.body["param"] == "previous_response_id"


def test_a_text_answer_streams_as_output_text_deltas(oai: openai.OpenAI) -> None:
    text = []
    with oai.responses.stream(model="auto", input="Say hi.", max_output_tokens=16) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                text.append(event.delta)
        final = stream.get_final_response()
    assert "".join(text) == final.output_text


def test_a_bad_streamed_request_is_a_plain_400_not_an_event(oai: openai.OpenAI,
                                                             agent_cloud: tuple[str, Recorded]) -> None:
    sent = len(agent_cloud[1].bodies)
    bad = [{"type": "function", "name": "f", "parameters": {"type": "object",
                                                          "properties": {"x": {"type": 7}}}}]
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="gpt-5-codex", input=ASK, tools=bad, stream=True)
    assert refused.value.body["param"] == "tools[0].function.parameters"
    assert len(agent_cloud[1].bodies) == sent


def test_a_session_s_tool_exchange_stays_on_the_tier_that_serves_it(oai: openai.OpenAI) -> None:
    def turn(session: str, *results: Any) -> Any:
        return oai.responses.create(model="gpt-5-codex", input=[
            {"role": "user", "content": ASK}, *results], tools=CODEX_TOOLS, store=False,
            extra_body={"prompt_cache_key": session})

    first = turn("pinned-session")
    assert first.model_extra["smallcode"]["route"]["reason"] == "tools"
    [call] = [item for item in first.output if item.type == "function_call"]
    results = ({"type": "function_call", "call_id": call.call_id, "name": call.name,
                "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "code"})
    route = turn("pinned-session", *results).model_extra["smallcode"]["route"]
    assert (route["final"], route["reason"]) == ("cloud", "pinned")
    # Another session with the same results has no open exchange here: routed afresh.
    assert turn("other-session", *results).model_extra["smallcode"]["route"]["reason"] == "tools"


def test_the_route_record_names_the_session_the_tools_and_what_was_left_out(
        oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-5-codex", input=ASK, tools=CODEX_TOOLS,
                                    store=False, extra_body={"prompt_cache_key": "s-42"})
    agent = response.model_extra["smallcode"]["route"]["agent"]
    assert agent == {"session": "s-42", "pinned": None,
                     "tools": ["read_file", "edit_file"],
                     "hosted_tools_left_out": ["web_search"], "calls": ["read_file"]}


def test_usage_groups_a_session_s_turns(oai: openai.OpenAI, agent_service: str) -> None:
    for _ in range(2):
        oai.responses.create(model="gpt-5-codex", input=ASK, tools=CODEX_TOOLS, store=False,
                             extra_body={"prompt_cache_key": "usage-session"})
    found = httpx.get(f"{agent_service}/v1/usage", params={"group_by": "session"}, timeout=30)
    assert found.status_code == 200, found.text
    [session] = [g for g in found.json()["data"] if g["session"] == "usage-session"]
    assert session["tasks"] == 2 and session["cloud"] == 2
    assert session["cloud_spend_usd"] > 0 and session["counterfactual_usd"] > 0


def test_client_metadata_that_is_not_an_object_is_a_400_naming_it(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="gpt-5-codex", input="hi",
                             extra_body={"client_metadata": "session-1"})
    assert refused.value.body["param"] == "client_metadata"


def test_a_slow_turn_s_stream_is_kept_alive_with_events_a_client_counts(
        smol: Any, valkey_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a turn runs, the stream sends ``response.in_progress`` events, numbered in order,
    not SSE comments: Codex drops a stream after 300 s without an event, and a local turn on
    a CPU can take that long. The SDK's stream reads them as ordinary events."""
    monkeypatch.setattr(turns, "KEEPALIVE_S", 0.2)

    def slow(body: Any) -> dict[str, Any]:  # a model that thinks for 1.5 s
        time.sleep(1.5)
        return fix_one_line(PATH, OLD, NEW)(body)

    settings = Settings(redis={"url": valkey_server.url, "prefix": "responses-slow"},
                        auth={"enabled": False}, tasks={"embedded_worker": False})
    with scripted_cloud(slow) as (cloud_url, _):
        cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=cloud_url,
                                         num_retries=0))
        app = create_app(settings, local=smol, cloud=cloud, with_retrieval=False)
        with serving(app) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                                max_retries=0) as client, \
                client.responses.stream(model="gpt-5-codex", tools=CODEX_TOOLS[:2], input=ASK,
                                        store=False) as stream:
            seen = list(stream)
            final = stream.get_final_response()
    kinds = [event.type for event in seen]
    numbers = [event.sequence_number for event in seen]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    waiting = kinds[:kinds.index("response.output_item.added")]
    assert waiting.count("response.in_progress") >= 1 + 3, kinds  # the opening one, then kept
    assert final.status == "completed" and numbers == sorted(set(numbers))  # in order, once


def test_a_turn_s_latency_counts_the_router_s_work_before_the_graph(
        oai: openai.OpenAI, agent_service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from router.service import responses_wire

    read = responses_wire.task

    def slow_read(*args: Any, **kwargs: Any) -> dict[str, Any]:  # reading the API's shape
        time.sleep(0.2)
        return read(*args, **kwargs)

    monkeypatch.setattr(responses_wire, "task", slow_read)
    response = oai.responses.create(model="gpt-5-codex", input=ASK, tools=CODEX_TOOLS,
                                    store=False)
    entry = httpx.get(f"{agent_service}/v1/usage/entries/{response.id}", timeout=30)
    assert entry.status_code == 200, entry.text
    assert entry.json()["latency_ms"] >= 200
