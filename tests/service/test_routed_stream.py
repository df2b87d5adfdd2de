"""Routed chats (model ``auto``) streamed live, on a real uvicorn server: SmolLM2 as the local
tier, and as the cloud a real OpenAI-compatible server on loopback reached through litellm."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.service.routed_stream import KEEPALIVE_S
from router.settings import Settings
from tests.helpers import refusing_provider, serving

TASK = [{"role": "user", "content": "Write a Python function that reverses a string."}]
FILES = [{"path": f"lib/m{i}.py", "content": f"X{i} = {i}\n"} for i in range(3)]
POLICIES = {"teams": {"strict": {"confidence_threshold": 1.0, "repair_rounds": 0,
                                "cloud_unavailable": "refuse"}}}


def _settings(redis_url: str) -> Settings:
    return Settings(redis={"url": redis_url}, auth={"enabled": False},
                    tasks={"embedded_worker": False}, policies=POLICIES)


@pytest.fixture(scope="module")
def base_url(smol, smol_standin_url: str, valkey_server) -> Iterator[str]:
    cloud = CloudBackend(CloudConfig(api_base=smol_standin_url))
    app = create_app(_settings(valkey_server.url), local=smol, cloud=cloud, with_retrieval=False)
    with serving(app) as url:
        yield url


def sse(base_url: str, body: dict[str, Any]) -> list[tuple[float, str]]:
    """Every SSE line of a routed stream (data and comments), with its arrival time (s)."""
    started = time.perf_counter()
    lines = []
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", timeout=120,
                      json={"model": "auto", "stream": True, **body}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line:
                lines.append((time.perf_counter() - started, line))
    return lines


def chunks(lines: list[tuple[float, str]]) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for _, line in lines
            if line.startswith("data: ") and line != "data: [DONE]"]


def content(events: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])


def test_a_task_sent_straight_to_the_cloud_streams_its_tokens_as_they_arrive(base_url: str) -> None:
    lines = sse(base_url, {"messages": TASK, "max_tokens": 48, "files": FILES,
                           "stream_options": {"include_usage": True}})
    events = chunks(lines)
    pieces = [c for c in events if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(pieces) > 3  # token by token, not the whole answer at the end
    finish = next(c for c in events if c["choices"] and c["choices"][0]["finish_reason"])
    record = finish["smallcode"]["route"]
    assert (record["final"], record["reason"]) == ("cloud", "multi_file")
    assert content(events).strip() and record["tokens"]["completion"] > 0
    # include_usage: one more chunk with no choices, carrying the usage
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] > 0
    assert lines[-1][1] == "data: [DONE]"
    # The first token came well before the end of the stream.
    first_piece = next(t for t, line in lines if line.startswith("data: ") and '"content": "' in line
                       and '"content": ""' not in line)
    assert first_piece < lines[-1][0]


def test_a_judged_task_keeps_the_client_alive_then_sends_the_served_answer(base_url: str) -> None:
    lines = sse(base_url, {"messages": TASK, "max_tokens": 96, "route": "local"})
    assert lines[0][1].startswith("data: ")  # the response starts at once with the role chunk
    events = chunks(lines)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    record = next(c for c in events if c["choices"] and c["choices"][0]["finish_reason"]
                  )["smallcode"]["route"]
    assert record["final"] == "local" and content(events).strip()
    # Kept alive: a wait long enough for keep-alives to be due had them (on a fast machine the
    # answer may come before any was due), and the client was never silent for long (proxies
    # drop a stream idle for 30-60 s). The bound is loose on purpose: a shared 2-core machine
    # stalled a healthy stream for 3.7 s once; a stream without keep-alives fails the count.
    started = lines[0][0]
    answered = next(at for at, line in lines[1:] if line.startswith("data: "))
    kept = [at for at, line in lines if line.startswith(":") and at < answered]
    # By the clock: the local model's tokens, which the client does not see, do not put the
    # keep-alives off (they did, and a long local answer left the client in silence).
    if answered - started > 2 * KEEPALIVE_S:
        assert len(kept) >= (answered - started) / (4 * KEEPALIVE_S), (answered - started, kept)
    times = [at for at, _ in lines]
    assert max(b - a for a, b in itertools.pairwise(times)) < 10.0


def test_the_sdk_reads_a_routed_stream(base_url: str) -> None:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as client:
        stream = client.chat.completions.create(model="auto", messages=TASK, max_tokens=32,
                                                stream=True, extra_body={"files": FILES})
        text, record = "", None
        for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            record = (chunk.model_extra or {}).get("smallcode", {}).get("route") or record
    assert text.strip() and record is not None and record["final"] == "cloud"


def test_a_refusal_before_the_stream_starts_is_a_plain_http_error(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/chat/completions", timeout=60, json={
        "model": "auto", "stream": True, "messages": TASK, "type": "poetry"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "type"


def test_a_cloud_failure_after_the_stream_started_arrives_as_an_error_event(
        smol, valkey_server) -> None:
    with refusing_provider(401, "authentication_error") as dead:
        app = create_app(_settings(valkey_server.url), local=smol,
                         cloud=CloudBackend(CloudConfig(api_base=dead, num_retries=0)),
                         with_retrieval=False)
        with serving(app) as url:
            # "strict" escalates every local answer; the cloud then refuses.
            lines = sse(url, {"messages": TASK, "max_tokens": 32, "team": "strict"})
    events = chunks(lines)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    error = events[-1]["error"]
    assert error["type"] and error["message"] and "Traceback" not in error["message"]
    assert lines[-1][1] == "data: [DONE]"


def test_a_client_that_leaves_stops_the_run_and_what_ran_is_recorded(base_url: str) -> None:
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", timeout=120, json={
            "model": "auto", "stream": True, "messages": TASK, "max_tokens": 400,
            "files": FILES}) as response:
        seen = 0
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content": "' in line and '"content": ""' not in line:
                seen += 1
                if seen == 3:
                    break  # hang up mid-answer
    deadline = time.monotonic() + 30
    entry = None
    while time.monotonic() < deadline and entry is None:
        page = httpx.get(f"{base_url}/v1/usage/entries", params={"limit": 50}).json()["data"]
        entry = next((e for e in page if e["reason"] == "client_disconnected"), None)
        time.sleep(0.2)
    assert entry is not None, "the stream the client left was not recorded"
    assert entry["route"] == "cloud" and 3 <= entry["tokens"]["completion"] < 400
    assert entry["cost_usd"] > 0


def test_a_stream_running_when_the_server_stops_ends_with_an_error_event_and_is_recorded(
        smol, smol_standin_url: str, valkey_server) -> None:
    """The server is asked to stop (SIGTERM, Ctrl-C; here its grace period is already over):
    a routed stream still running stops its run, tells its client why in an error event
    (code ``server_stopping``, the SDK's error shape) and is recorded with what it ran."""
    cloud = CloudBackend(CloudConfig(api_base=smol_standin_url))
    app = create_app(_settings(valkey_server.url), local=smol, cloud=cloud, with_retrieval=False)
    with serving(app) as url:
        lines = []
        with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=120, json={
                "model": "auto", "stream": True, "messages": TASK, "max_tokens": 400,
                "files": FILES}) as response:
            for line in response.iter_lines():
                if not line:
                    continue
                lines.append(line)
                if sum('"content": "' in seen and '"content": ""' not in seen
                       for seen in lines) == 3:
                    app.state.stopping.begin(0)  # what `smallcode serve` does on a signal
        errors = [json.loads(line[6:])["error"] for line in lines
                  if line.startswith("data: {") and '"error"' in line]
        assert [e["code"] for e in errors] == ["server_stopping"], lines[-3:]
        assert "shutdown_grace_s" in errors[0]["message"]
        assert lines[-1] == "data: [DONE]"
        page = httpx.get(f"{url}/v1/usage/entries", params={"limit": 50}).json()["data"]
        entry = next(e for e in page if e["reason"] == "server_stopping")
        assert entry["route"] == "cloud" and 3 <= entry["tokens"]["completion"] < 400
        assert entry["cost_usd"] > 0
