"""Tool calls in the OpenAI chat API, with the official ``openai`` SDK as the client (as
opencode, Cline and Continue's agent mode send them): ``tools``, assistant ``tool_calls``,
``tool`` messages, streamed tool-call deltas, ``finish_reason: tool_calls``. The service and
the scripted cloud are tests/service/conftest.py's (the local SmolLM2 cannot call tools)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from router.bench.scripted_cloud import FIX_NEW as NEW
from router.bench.scripted_cloud import FIX_OLD as OLD
from router.bench.scripted_cloud import FIX_PATH as PATH
from router.bench.scripted_cloud import Recorded

ASK = [{"role": "system", "content": "You are opencode."},
       {"role": "user", "content": "Fix the bug in calc.py: add must return a + b."}]
TOOLS: list[Any] = [
    {"type": "function", "function": {
        "name": "read", "description": "Read a file",
        "parameters": {"type": "object", "properties": {"filePath": {"type": "string"}},
                       "required": ["filePath"]}}},
    {"type": "function", "function": {
        "name": "edit", "description": "Replace text in a file",
        "parameters": {"type": "object", "required": ["filePath", "oldString", "newString"],
                       "properties": {"filePath": {"type": "string"},
                                      "oldString": {"type": "string"},
                                      "newString": {"type": "string"}}}}},
]


@pytest.fixture
def oai(agent_service: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{agent_service}/v1", api_key="unused",
                       max_retries=0) as client:
        yield client


def test_a_chat_with_tools_comes_back_with_tool_calls(oai: openai.OpenAI,
                                                      agent_cloud: tuple[str, Recorded]) -> None:
    sent = len(agent_cloud[1].bodies)
    done = oai.chat.completions.create(model="auto", messages=ASK, tools=TOOLS)
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "read" and json.loads(call.function.arguments) == {
        "filePath": PATH}
    assert done.model_extra["smallcode"]["route"]["reason"] == "tools"
    assert [t["function"]["name"] for t in agent_cloud[1].bodies[sent]["tools"]] == [
        "read", "edit"]


def test_the_tool_turn_streams_its_call_and_the_sdk_assembles_it(oai: openai.OpenAI) -> None:
    first = oai.chat.completions.create(model="auto", messages=ASK, tools=TOOLS)
    [call] = first.choices[0].message.tool_calls
    messages: list[Any] = [*ASK, first.choices[0].message.model_dump(exclude_none=True),
                           {"role": "tool", "tool_call_id": call.id,
                            "content": f"def add(a, b):\n{OLD}\n"}]
    with oai.chat.completions.stream(model="auto", messages=messages, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [edit] = choice.message.tool_calls
    assert edit.function.name == "edit"
    assert json.loads(edit.function.arguments) == {"filePath": PATH, "oldString": OLD,
                                                   "newString": NEW}


def test_a_chat_without_tools_is_unchanged(oai: openai.OpenAI) -> None:
    done = oai.chat.completions.create(model="local", max_tokens=4,
                                       messages=[{"role": "user", "content": "Say hi."}])
    assert done.choices[0].message.tool_calls is None
    assert done.model_extra["smallcode"]["route"]["reason"] == "requested"


def test_a_tool_result_that_answers_no_call_is_a_400_naming_the_message(
        oai: openai.OpenAI, agent_cloud: tuple[str, Recorded]) -> None:
    """Counted as the client counts its messages (the system message included), and refused
    before anything reaches a model."""
    _, recorded = agent_cloud
    before = len(recorded.bodies)
    with pytest.raises(openai.BadRequestError) as refused:
        oai.chat.completions.create(model="auto", tools=TOOLS, messages=[
            *ASK, {"role": "tool", "tool_call_id": "call_nobody_made", "content": "x = 1"}])
    body = refused.value.body
    assert isinstance(body, dict)
    error = body.get("error", body)
    assert error["param"] == "messages[2].tool_call_id", error
    assert "matches no tool call" in error["message"]
    assert len(recorded.bodies) == before
