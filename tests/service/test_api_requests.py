"""What the API does with odd, hostile or unsupported requests, on a real uvicorn server:
SmolLM2-135M as the local tier and a SmolLM2 stand-in (1,024-token window) as the cloud,
behind a recording proxy that shows what reached the cloud."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import refusing_provider, serving, silent_provider
from tests.recording_proxy import Recorder, recording_proxy

CAP = 65_536
ASK = [{"role": "user", "content": "Write a Python function that reverses a string."}]
CHAT = "/v1/chat/completions"


def settings(redis_url: str) -> Settings:
    return Settings(server={"max_body_bytes": CAP}, local={"n_ctx": 2048},
                    redis={"url": redis_url}, auth={"enabled": False},
                    tasks={"embedded_worker": False})


@pytest.fixture(scope="module")
def proxy(smol_standin_url: str) -> Iterator[tuple[str, Recorder]]:
    with recording_proxy(smol_standin_url) as pair:
        yield pair


@pytest.fixture(scope="module")
def base_url(smol, proxy: tuple[str, Recorder], valkey_server) -> Iterator[str]:
    cloud = CloudBackend(CloudConfig(api_base=proxy[0], n_ctx=1024, num_retries=0))
    with serving(create_app(settings(valkey_server.url), local=smol, cloud=cloud,
                            with_retrieval=False)) as url:
        yield url


def post(base_url: str, body: dict | bytes, **kwargs) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(f"{base_url}{CHAT}", content=body, timeout=120,
                          headers={"content-type": "application/json"}, **kwargs)
    return httpx.post(f"{base_url}{CHAT}", json=body, timeout=120, **kwargs)


def refused(response: httpx.Response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


# --- text that is not Unicode --------------------------------------------------------------

@pytest.mark.parametrize(
    ("model", "messages", "extra", "param"),
    [
        ("local", '[{"role": "user", "content": "hi \\ud800"}]', "", "messages[0].content"),
        ("cloud", '[{"role": "system", "content": "\\udfff"}, {"role": "user", "content": "x"}]',
         "", "messages[0].content"),
        ("auto", '[{"role": "user", "content": [{"type": "text", "text": "a\\ud800b"}]}]', "",
         "messages[0].content[0].text"),
        ("auto", '[{"role": "user", "content": "fix it"}]',
         ', "files": [{"path": "a.py", "content": "x = \\"\\ud83d\\""}]', "files[0].content"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_the_field(base_url: str, model: str, messages: str,
                                                    extra: str, param: str) -> None:
    body = f'{{"model": "{model}", "max_tokens": 4, "messages": {messages}{extra}}}'.encode()
    error = refused(post(base_url, body))
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{param}: ") and "UTF-8" in error["message"]


# --- the body cap, whatever the transfer encoding --------------------------------------------

@pytest.mark.parametrize("http", ["h11", "httptools"])  # uvicorn's two HTTP/1.1 parsers
def test_a_chunked_body_over_the_cap_is_refused_while_reading(smol, valkey_server,
                                                              http: str) -> None:
    sent = 0
    total = 20_000_000

    def body() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        nonlocal sent
        yield b'{"model": "local", "messages": [{"role": "user", "content": "'
        while sent < total:
            sent += 65_536
            yield b"x" * 65_536
        yield b'"}]}'

    cloud = CloudBackend(CloudConfig(api_base="http://127.0.0.1:9/v1"))  # never called
    app = create_app(settings(valkey_server.url), local=smol, cloud=cloud, with_retrieval=False)
    with serving(app, http=http) as base_url:
        response = httpx.post(f"{base_url}{CHAT}", content=body(), timeout=60,
                              headers={"content-type": "application/json"})
        error = refused(response, 413)
        assert f"over {CAP} bytes" in error["message"]
        assert sent < total // 4, f"the server read {sent} bytes of a body capped at {CAP}"
        assert httpx.get(f"{base_url}/healthz").status_code == 200


def test_a_chunked_body_under_the_cap_is_served(base_url: str) -> None:
    def body() -> Iterator[bytes]:
        yield json.dumps({"model": "local", "max_tokens": 2, "messages": ASK}).encode()

    response = httpx.post(f"{base_url}{CHAT}", content=body(), timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


# --- invalid JSON, unsupported fields, one rule for every model -----------------------------

def test_invalid_json_has_no_byte_offset_for_a_param(base_url: str) -> None:
    error = refused(post(base_url, b'{"model": "local", "messages": [{"role": "user", x}]}'))
    assert error["param"] is None and error["message"] == "request body is not valid JSON"


@pytest.mark.parametrize("model", ["local", "cloud", "auto"])
@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 1}}}]},
         "tools[0].function.parameters"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"messages": [*ASK, {"role": "tool", "tool_call_id": "call_x", "content": "x"}]},
         "messages[1].tool_call_id"),
    ],
)
def test_bad_function_calling_is_refused_naming_the_field(base_url: str, model: str,
                                                          extra: dict, param: str) -> None:
    error = refused(post(base_url, {"model": model, "messages": ASK, **extra}))
    assert error["param"] == param, error


@pytest.mark.parametrize("model", ["cloud", "auto"])
@pytest.mark.parametrize("extra", [{"logprobs": True}, {"logprobs": True, "top_logprobs": 2}])
def test_logprobs_are_refused_where_they_cannot_be_honoured(base_url: str, model: str,
                                                            extra: dict) -> None:
    error = refused(post(base_url, {"model": model, "messages": ASK, "max_tokens": 2, **extra}))
    assert error["param"] == "logprobs" and "'local'" in error["message"]


@pytest.mark.parametrize("model", ["local", "cloud", "auto"])
def test_a_system_message_alone_is_refused_by_every_model(base_url: str, model: str) -> None:
    body = {"model": model, "max_tokens": 4,
            "messages": [{"role": "system", "content": "You are a helpful assistant."}]}
    error = refused(post(base_url, body))
    assert error["param"] == "messages" and "user message" in error["message"]


@pytest.mark.parametrize("model", ["local", "auto"])
@pytest.mark.parametrize("repo", ["../../etc", "a/b", ".hidden", "has space"])
def test_a_bad_repo_name_says_what_a_valid_one_is(base_url: str, model: str, repo: str) -> None:
    error = refused(post(base_url, {"model": model, "messages": ASK, "repo": repo}))
    assert error["param"] == "repo"
    assert "letters, digits" in error["message"] and "smallcode index" not in error["message"]


def test_validation_errors_name_the_field_as_sent(base_url: str) -> None:
    body = {"model": "local", "messages": [ASK[0], {"role": "robot", "content": "x"}]}
    assert refused(post(base_url, body))["param"] == "messages[1].role"


# --- finish reasons ------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "route"), [("local", None), ("cloud", None), ("auto", None),
                                              ("auto", "local"), ("auto", "cloud")])
def test_a_cut_answer_finishes_with_length_on_every_model(base_url: str, model: str,
                                                          route: str | None) -> None:
    body: dict = {"model": model, "messages": ASK, "max_tokens": 10}
    if route:
        body["route"] = route
    response = post(base_url, body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 10
    assert response.json()["choices"][0]["finish_reason"] == "length"
    with httpx.stream("POST", f"{base_url}{CHAT}", json={**body, "stream": True},
                      timeout=120) as stream:
        finishes = [json.loads(line[6:])["choices"][0]["finish_reason"]
                    for line in stream.iter_lines()
                    if line.startswith("data: {")]
    assert [f for f in finishes if f] == ["length"]


# --- larger than both windows --------------------------------------------------------------

def test_a_task_larger_than_both_windows_is_refused_before_any_call(
        base_url: str, proxy: tuple[str, Recorder]) -> None:
    recorder = proxy[1]
    before = recorder.count
    body = {"model": "auto", "max_tokens": 16,
            "messages": [{"role": "user", "content": "word " * 2500}]}  # 2,500+ tokens
    error = refused(post(base_url, body))
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    message = error["message"]
    assert "local context window (2048 tokens" in message and "(1024 tokens)" in message
    size = int(message.split("the task is ")[1].split(" tokens")[0])
    assert size > 2500
    assert recorder.count == before, "the task reached the cloud"


def test_a_prompt_over_the_cloud_window_on_model_cloud_is_a_clear_400(base_url: str) -> None:
    body = {"model": "cloud", "max_tokens": 4,
            "messages": [{"role": "user", "content": "word " * 1500}]}
    error = refused(post(base_url, body))
    assert error["code"] == "context_length_exceeded"
    assert "cloud model's context window" in error["message"]
    assert "api_base" not in error["message"]


@pytest.mark.parametrize(
    ("status", "kind", "expected", "code"),
    [
        (401, "invalid_api_key", 502, "upstream_misconfigured"),
        (429, "rate_limit_exceeded", 429, "upstream_rate_limited"),
        (400, "invalid_request_error", 400, "upstream_refused"),
    ],
)
def test_provider_refusals_reach_the_client_as_distinct_errors(smol, valkey_server, status: int,
                                                               kind: str, expected: int,
                                                               code: str) -> None:
    with refusing_provider(status, kind) as provider:
        cloud = CloudBackend(CloudConfig(api_base=provider, num_retries=0, timeout_s=20))
        app = create_app(settings(valkey_server.url), local=smol, cloud=cloud,
                         with_retrieval=False)
        with serving(app) as url:
            error = refused(post(url, {"model": "cloud", "messages": ASK, "max_tokens": 4}),
                            expected)
    assert error["code"] == code and "smallcode standin" not in error["message"]


def test_a_silent_provider_is_a_504_and_a_dead_one_a_503(smol, valkey_server) -> None:
    with silent_provider() as provider:
        cloud = CloudBackend(CloudConfig(api_base=provider, num_retries=0, timeout_s=1))
        with serving(create_app(settings(valkey_server.url), local=smol, cloud=cloud,
                                with_retrieval=False)) as url:
            error = refused(post(url, {"model": "cloud", "messages": ASK}), 504)
    assert "cloud.timeout_s" in error["message"]
    dead = f"http://127.0.0.1:{provider.split(':')[2].split('/')[0]}/v1"  # closed now
    cloud = CloudBackend(CloudConfig(api_base=dead, num_retries=0, timeout_s=5))
    with serving(create_app(settings(valkey_server.url), local=smol, cloud=cloud,
                            with_retrieval=False)) as url:
        error = refused(post(url, {"model": "cloud", "messages": ASK}), 503)
    assert "cloud.api_base" in error["message"]


# --- the access log ------------------------------------------------------------------------

def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "smallcode.access"]


def test_one_access_log_line_per_request_without_prompt_text(
        base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    secret_prompt = "Reverse the string SECRET-PROMPT-TEXT please."
    with caplog.at_level(logging.INFO, logger="smallcode.access"):
        ok = post(base_url, {"model": "local", "max_tokens": 2,
                             "messages": [{"role": "user", "content": secret_prompt}]})
        bad = post(base_url, {"model": "local", "messages": []})
        routed = post(base_url, {"model": "auto", "max_tokens": 4, "messages": ASK,
                                 "route": "cloud"})
        # The line is written once the response has gone out, so the client can read the
        # response a moment before it exists: wait for it (bounded).
        deadline = time.monotonic() + 5
        while len(access_lines(caplog)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert (ok.status_code, bad.status_code, routed.status_code) == (200, 400, 200)
    lines = access_lines(caplog)
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"POST {CHAT} 200 route=local reason=requested latency_ms=")
    assert lines[1].startswith(f"POST {CHAT} 400 route=- reason=- latency_ms=")
    assert lines[2].startswith(f"POST {CHAT} 200 route=cloud reason=forced latency_ms=")
    assert float(lines[0].rsplit("=", 1)[1]) > 0
    assert not any("SECRET-PROMPT-TEXT" in line for line in lines)
