"""The OpenAI-compatible HTTP API on a real uvicorn server, driven by the official SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
import uvicorn

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from tests.conftest import free_port

PROMPT = [{"role": "user", "content": "Write a Python function that reverses a string."}]


@pytest.fixture(scope="module")
def base_url(smol, standin_url: str, valkey_server) -> Iterator[str]:
    settings = Settings(server={"max_body_bytes": 65_536}, redis={"url": valkey_server.url},
                        auth={"enabled": False}, tasks={"embedded_worker": False})
    app = create_app(settings, local=smol, cloud=CloudBackend(CloudConfig(api_base=standin_url)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           loop="asyncio", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=60)


@pytest.fixture
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_sdk_local_completion_with_logprobs(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="local", messages=PROMPT, max_tokens=24, logprobs=True, top_logprobs=3
    )
    choice = response.choices[0]
    assert choice.message.content
    assert choice.logprobs is not None and len(choice.logprobs.content) == 24
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in choice.logprobs.content)
    assert response.usage is not None and response.usage.completion_tokens == 24


def test_logprobs_only_when_asked(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="local", messages=PROMPT, max_tokens=4)
    assert response.choices[0].logprobs is None


def test_sdk_streaming_matches_non_streaming(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="local", messages=PROMPT, max_tokens=30)
    stream = client.chat.completions.create(
        model="local", messages=PROMPT, max_tokens=30, stream=True, logprobs=True
    )
    parts, logprobs, finish = [], 0, None
    for chunk in stream:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
            logprobs += len(chunk.choices[0].logprobs.content) if chunk.choices[0].logprobs else 0
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(parts) == whole.choices[0].message.content
    assert logprobs == 30 and finish == "length"


def test_sdk_cloud_goes_through_litellm_to_the_stand_in(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model="cloud", messages=PROMPT, max_tokens=24)
    assert response.choices[0].message.content
    extra = response.model_extra or {}
    assert extra["smallcode"]["route"]["final"] == "cloud" and extra["smallcode"]["cost_usd"] > 0
    assert extra["smallcode"]["route"]["reason"] == "requested"


def test_models_and_health(base_url: str, client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"auto", "local", "cloud"}
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}


def test_unknown_model_is_a_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="llama-70b", messages=PROMPT)
    error = info.value.body
    assert error["code"] == "model_not_found" and error["param"] == "model"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "local", "messages": []}, "messages"),
        ({"model": "local", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "local", "messages": PROMPT, "max_tokens": 0}, "max_tokens"),
        ({"model": "local", "messages": PROMPT, "top_logprobs": 3}, "top_logprobs"),
        ({"messages": PROMPT}, "model"),
    ],
)
def test_bad_requests_name_the_field(base_url: str, body: dict, param: str) -> None:
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert param in error["message"]


def test_malformed_json_and_oversized_bodies(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request body is not valid JSON"
    big = {"model": "local", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = httpx.post(f"{base_url}/v1/chat/completions", json=big)
    assert response.status_code == 413 and "error" in response.json()


def test_prompt_over_the_context_is_a_clear_400(client: openai.OpenAI) -> None:
    long = [{"role": "user", "content": "word " * 3000}]  # 3,000 tokens; the window is 2,048
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="local", messages=long, max_tokens=4)
    assert info.value.body["code"] == "context_length_exceeded"


def test_auto_model_routes_and_returns_the_route_record(client: openai.OpenAI) -> None:
    files = [{"path": f"lib/m{i}.py", "content": f"X{i} = {i}\n"} for i in range(3)]
    response = client.chat.completions.create(
        model="auto", messages=PROMPT, max_tokens=24, extra_body={"files": files})
    record = (response.model_extra or {})["smallcode"]["route"]
    assert record["final"] == "cloud" and record["reason"] == "multi_file"
    assert [f["path"] for f in record["files"]] == [f["path"] for f in files]
    assert response.choices[0].message.content


def test_auto_model_names_a_bad_task_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=PROMPT,
                                       extra_body={"type": "poetry"})
    assert info.value.body["param"] == "type"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=PROMPT,
                                       extra_body={"route": "moon"})
    assert info.value.body["param"] == "route"
