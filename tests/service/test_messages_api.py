"""The Anthropic Messages API against its published shapes, with the official ``anthropic``
SDK as the client: whole, streamed (every event type, the streaming helper), tool use and tool
results, count_tokens, models by the names Claude Code sends, and its error shape.

The local tier is the in-process SmolLM2 (it cannot call tools: a turn with tools goes to the
cloud, reason ``tools``); the cloud is a scripted OpenAI-compatible server on loopback that
answers with tool calls (tests/scripted_cloud.py), reached through litellm. What reached it is
recorded: bad input never does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.bench.scripted_cloud import FIX_NEW as NEW
from router.bench.scripted_cloud import FIX_OLD as OLD
from router.bench.scripted_cloud import FIX_PATH as PATH
from router.bench.scripted_cloud import Recorded
from router.service import turns
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import CLAUDE_EDIT as EDIT
from tests.helpers import CLAUDE_READ as READ
from tests.helpers import serving

SYSTEM = [{"type": "text", "text": "You are a coding agent."},
          {"type": "text", "text": "Working directory: /work/repo",
           "cache_control": {"type": "ephemeral"}}]
ASK = "Fix the bug in calc.py: add must return a + b."


@pytest.fixture
def claude(agent_service: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=agent_service, api_key="unused", max_retries=0) as client:
        yield client


def _first_turn(client: anthropic.Anthropic, **extra: Any) -> Any:
    return client.messages.create(model="claude-sonnet-5-5", max_tokens=512, system=SYSTEM,
                                  tools=[READ, EDIT], messages=[{"role": "user", "content": ASK}],
                                  **extra)


def test_a_claude_turn_with_tools_comes_back_as_a_tool_use_block(
        claude: anthropic.Anthropic, agent_cloud: tuple[str, Recorded]) -> None:
    sent = len(agent_cloud[1].bodies)
    message = _first_turn(claude)
    assert message.stop_reason == "tool_use"
    [block] = [b for b in message.content if b.type == "tool_use"]
    assert block.name == "Read" and block.input == {"file_path": PATH}
    route = message.model_extra["smallcode"]["route"]
    assert route["final"] == "cloud" and route["reason"] == "tools"
    # The tools reached the cloud as function tools, the system blocks as one system message.
    body = agent_cloud[1].bodies[sent]
    assert [t["function"]["name"] for t in body["tools"]] == ["Read", "Edit"]
    assert body["messages"][0]["role"] == "system"
    assert "Working directory: /work/repo" in body["messages"][0]["content"]


def test_the_tool_result_turn_gets_the_edit_then_the_answer(claude: anthropic.Anthropic,
                                                             agent_cloud: tuple[str, Recorded]) -> None:
    first = _first_turn(claude)
    [read] = [b for b in first.content if b.type == "tool_use"]
    history: list[Any] = [{"role": "user", "content": ASK},
                          {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                          {"role": "user", "content": [
                              {"type": "tool_result", "tool_use_id": read.id,
                               "content": "def add(a, b):\n    return a - b\n"}]}]
    second = claude.messages.create(model="claude-sonnet-5-5", max_tokens=512, system=SYSTEM,
                                    tools=[READ, EDIT], messages=history)
    [edit] = [b for b in second.content if b.type == "tool_use"]
    assert edit.name == "Edit"
    assert edit.input == {"file_path": PATH, "old_string": OLD, "new_string": NEW}
    # The cloud saw the call and its result as a structured tool exchange, not as text.
    body = agent_cloud[1].bodies[-1]
    assert body["messages"][-2]["tool_calls"][0]["id"] == read.id
    assert body["messages"][-1] == {"role": "tool", "tool_call_id": read.id,
                                    "content": "def add(a, b):\n    return a - b\n"}
    history += [{"role": "assistant", "content": [b.model_dump() for b in second.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": edit.id,
                                              "content": "edited"}]}]
    third = claude.messages.create(model="claude-sonnet-5-5", max_tokens=512, system=SYSTEM,
                                   tools=[READ, EDIT], messages=history)
    assert third.stop_reason == "end_turn"
    assert third.content[0].type == "text" and "a + b" in third.content[0].text


def test_a_streamed_exchange_stays_pinned_while_it_calls_tools_and_is_closed_by_its_answer(
        claude: anthropic.Anthropic, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn by turn as Claude Code streams them: the read opens the exchange on the cloud, the
    edit continues it there (the pin renewed as the turn ran, not written again), the text
    answer closes it. The pin lasts PIN_S after the turn that renewed it began: shortened here
    so that the exchange outlives the pin its first answer wrote."""
    monkeypatch.setattr(turns, "PIN_S", 3)
    session = {"user_id": json.dumps({"session_id": f"pinned-{time.time_ns()}"})}
    history: list[Any] = [{"role": "user", "content": ASK}]

    def turn() -> tuple[Any, dict[str, Any]]:
        with claude.messages.stream(model="claude-sonnet-5-5", max_tokens=512, system=SYSTEM,
                                    tools=[READ, EDIT], messages=history,
                                    metadata=session) as stream:
            [route] = [event.model_extra["smallcode"]["route"] for event in stream
                       if event.type == "message_delta"]
            message = stream.get_final_message()
        history.append({"role": "assistant", "content": [b.model_dump() for b in message.content]})
        return message, route

    def results(message: Any) -> None:
        [call] = [b for b in message.content if b.type == "tool_use"]
        history.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "ok"}]})

    read, route = turn()
    assert (route["final"], route["reason"]) == ("cloud", "tools")
    results(read)
    time.sleep(2)
    edit, route = turn()
    assert (route["final"], route["reason"]) == ("cloud", "pinned")
    results(edit)
    time.sleep(2)  # past the pin the read wrote: this one was renewed by the edit's turn
    answer, route = turn()
    assert (route["final"], route["reason"]) == ("cloud", "pinned")
    assert answer.stop_reason == "end_turn"
    history.pop()  # the same turn again: the answer closed the exchange, so routed afresh
    _, route = turn()
    assert (route["final"], route["reason"]) == ("cloud", "tools")


def test_the_streamed_turn_carries_every_event_type_and_the_helper_assembles_it(
        claude: anthropic.Anthropic) -> None:
    kinds = []
    with claude.messages.stream(model="claude-haiku-5-5", max_tokens=512, system=SYSTEM,
                                tools=[READ, EDIT],
                                messages=[{"role": "user", "content": ASK}]) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_message()
    for kind in ("message_start", "content_block_start", "content_block_delta",
                 "content_block_stop", "message_delta", "message_stop"):
        assert kind in kinds, kinds
    assert final.stop_reason == "tool_use"
    [block] = [b for b in final.content if b.type == "tool_use"]
    assert block.name == "Read" and block.input == {"file_path": PATH}


def test_the_raw_stream_opens_with_message_start_and_a_ping(agent_service: str) -> None:
    # Claude Code asks for up to 64,000 tokens: a ceiling, taken as the router's own cap.
    body = {"model": "claude-sonnet-5-5", "max_tokens": 64_000, "stream": True,
            "messages": [{"role": "user", "content": "Say hi."}]}
    with httpx.stream("POST", f"{agent_service}/v1/messages", json=body, timeout=120,
                      headers={"anthropic-version": "2023-06-01",
                               "anthropic-beta": "prompt-caching-2024-07-31"}) as response:
        assert response.status_code == 200
        events = [line.removeprefix("event: ") for line in response.iter_lines()
                  if line.startswith("event: ")]
    assert events[:2] == ["message_start", "ping"]
    assert events[-2:] == ["message_delta", "message_stop"]


def test_count_tokens_counts_the_system_the_messages_and_the_tools(
        claude: anthropic.Anthropic) -> None:
    bare = claude.messages.count_tokens(model="claude-sonnet-5-5",
                                        messages=[{"role": "user", "content": ASK}])
    full = claude.messages.count_tokens(model="claude-sonnet-5-5", system=SYSTEM,
                                        tools=[READ, EDIT],
                                        messages=[{"role": "user", "content": ASK}])
    assert 0 < bare.input_tokens < full.input_tokens


@pytest.mark.parametrize(("content", "field"), [
    ([{"type": "video", "url": "x"}], "messages[0].content[0].type"),
    ([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}],
     "messages[0].content[0]"),
    ([{"type": "tool_result", "tool_use_id": "toolu_nothing", "content": "x"}], "messages"),
])
def test_bad_blocks_are_refused_in_anthropic_s_error_shape_naming_the_field(
        agent_service: str, agent_cloud: tuple[str, Recorded], content: Any, field: str) -> None:
    sent = len(agent_cloud[1].bodies)
    response = httpx.post(f"{agent_service}/v1/messages", timeout=60, json={
        "model": "claude-sonnet-5-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": content}]})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(field), body
    assert len(agent_cloud[1].bodies) == sent  # nothing reached a model


def test_a_tool_schema_that_is_not_json_schema_is_refused(claude: anthropic.Anthropic,
                                                          agent_cloud: tuple[str, Recorded]) -> None:
    sent = len(agent_cloud[1].bodies)
    bad = {**READ, "input_schema": {"type": "object", "properties": {"x": {"type": 12}}}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        claude.messages.create(model="claude-sonnet-5-5", max_tokens=64, tools=[bad],
                               messages=[{"role": "user", "content": ASK}])
    assert "tools[0].function.parameters" in refused.value.message
    assert len(agent_cloud[1].bodies) == sent


def test_an_unknown_model_name_is_a_404_naming_the_setting(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="llama-70b", max_tokens=64,
                               messages=[{"role": "user", "content": ASK}])
    assert "models.aliases" in missing.value.message


def test_metadata_that_is_not_an_object_is_a_400_naming_it(agent_service: str) -> None:
    response = httpx.post(f"{agent_service}/v1/messages", timeout=60, json={
        "model": "claude-sonnet-5-5", "max_tokens": 64, "metadata": "user-1",
        "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("metadata")


def test_a_turn_streamed_while_the_server_stops_ends_with_an_error_event_and_is_recorded(
        smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded]) -> None:
    """The server was asked to stop and its grace period is over: a Messages stream still
    running ends with Anthropic's ``error`` event naming the stop, and what ran is recorded
    (one ledger entry)."""
    settings = Settings(redis={"url": valkey_server.url, "prefix": "agent-stopping"},
                        auth={"enabled": False}, tasks={"embedded_worker": False})
    cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=agent_cloud[0],
                                     num_retries=0))
    app = create_app(settings, local=smol, cloud=cloud, with_retrieval=False)
    app.state.stopping.begin(0)  # what `smallcode serve` does on SIGTERM, grace over
    body = {"model": "claude-sonnet-5-5", "max_tokens": 512, "stream": True, "tools": [READ],
            "messages": [{"role": "user", "content": ASK}]}
    with serving(app) as url:
        with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=120,
                          headers={"anthropic-version": "2023-06-01"}) as response:
            assert response.status_code == 200  # the stream had begun
            lines = [line for line in response.iter_lines() if line]
        events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
        assert events[0] == "message_start" and events[-1] == "error", events
        error = json.loads(lines[-1].removeprefix("data: "))["error"]
        assert "stopping" in error["message"] and "shutdown_grace_s" in error["message"]
        page = httpx.get(f"{url}/v1/usage/entries", params={"limit": 10}).json()["data"]
        assert len(page) == 1, page  # recorded once, whatever it ran before the stop


def test_a_client_that_leaves_once_it_has_the_answer_still_has_its_turn_recorded(
        smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded]) -> None:
    """A streamed turn's ledger entry is written after the answer's last event (the client
    does not wait for it): a client that closes the stream at ``message_stop`` has its turn
    recorded once, as it was routed."""
    settings = Settings(redis={"url": valkey_server.url, "prefix": "agent-leaves"},
                        auth={"enabled": False}, tasks={"embedded_worker": False})
    cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=agent_cloud[0],
                                     num_retries=0))
    app = create_app(settings, local=smol, cloud=cloud, with_retrieval=False)
    body = {"model": "claude-sonnet-5-5", "max_tokens": 512, "stream": True, "tools": [READ],
            "messages": [{"role": "user", "content": ASK}]}
    with serving(app) as url:
        with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=120,
                          headers={"anthropic-version": "2023-06-01"}) as response:
            for line in response.iter_lines():
                if line == "event: message_stop":
                    break  # the answer is whole: the client leaves
        page: list[dict[str, Any]] = []
        for _ in range(300):  # written as the client left, or just after
            page = httpx.get(f"{url}/v1/usage/entries", params={"limit": 10}).json()["data"]
            if page:
                break
            time.sleep(0.05)
        assert [(e["route"], e["reason"]) for e in page] == [("cloud", "tools")], page


def _app(smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded], prefix: str) -> Any:
    settings = Settings(redis={"url": valkey_server.url, "prefix": prefix},
                        auth={"enabled": False}, tasks={"embedded_worker": False})
    cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=agent_cloud[0],
                                     num_retries=0))
    return create_app(settings, local=smol, cloud=cloud, with_retrieval=False)


def _fail_session_keys(app: Any, command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The running app's store fails ``command`` on the session pins' keys, as a store that
    went away would, and only there."""
    import redis.exceptions

    store = app.state.redis
    run = getattr(store, command)

    async def failing(name: Any, *args: Any, **kwargs: Any) -> Any:
        if "session" in str(name):
            raise redis.exceptions.ConnectionError("connection refused")
        return await run(name, *args, **kwargs)

    monkeypatch.setattr(store, command, failing)


def test_a_turn_whose_session_pin_cannot_be_read_is_a_503_and_reaches_no_model(
        smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A turn that continues a tool exchange reads its session's pin first: a store that
    fails that read fails the turn with the store's 503 (streamed: before the stream's 200),
    and the turn never reaches a model."""
    app = _app(smol, valkey_server, agent_cloud, "agent-pin-read")
    messages = [{"role": "user", "content": ASK},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                   "name": "Read", "input": {"file_path": PATH}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                              "content": "def add(a, b):\n    return a - b\n"}]}]
    with serving(app) as url:
        _fail_session_keys(app, "get", monkeypatch)
        sent = len(agent_cloud[1].bodies)
        for stream in (False, True):
            body = {"model": "claude-sonnet-5-5", "max_tokens": 512, "stream": stream,
                    "tools": [READ, EDIT], "messages": messages,
                    "metadata": {"user_id": json.dumps({"session_id": f"s-{stream}"})}}
            answer = httpx.post(f"{url}/v1/messages", json=body, timeout=60,
                                headers={"anthropic-version": "2023-06-01"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["type"] == "error" and answer.headers.get("retry-after")
        assert len(agent_cloud[1].bodies) == sent


def test_a_streamed_answer_whose_session_pin_cannot_be_written_is_still_sent_and_recorded(
        smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pin's write goes out before the answer and its reply is awaited after it: a store
    that fails the write costs the session its pin (the next turn is routed afresh), not the
    client its answer, and the turn is recorded."""
    app = _app(smol, valkey_server, agent_cloud, "agent-pin-write")
    body = {"model": "claude-sonnet-5-5", "max_tokens": 512, "stream": True,
            "tools": [READ, EDIT], "messages": [{"role": "user", "content": ASK}],
            "metadata": {"user_id": json.dumps({"session_id": "pin-write-fails"})}}
    with serving(app) as url:
        _fail_session_keys(app, "set", monkeypatch)
        with httpx.stream("POST", f"{url}/v1/messages", json=body, timeout=60,
                          headers={"anthropic-version": "2023-06-01"}) as response:
            assert response.status_code == 200
            lines = [line for line in response.iter_lines() if line]
        events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
        assert "error" not in events and events[-1] == "message_stop", events
        assert any('"tool_use"' in line for line in lines)
        page = httpx.get(f"{url}/v1/usage/entries", params={"limit": 10}).json()["data"]
        assert [e["reason"] for e in page] == ["tools"]
