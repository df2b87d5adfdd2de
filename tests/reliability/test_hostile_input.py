"""Hostile bodies and the auth matrix against the real service: every one gets a clear 4xx in
the OpenAI error shape, none reaches a model or the cloud, and the service answers normally
after each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import ADMIN, Service, auth, clear_error, figure, post_chat

ASK = [{"role": "user", "content": "Say hi."}]
CAP = 1_000_000  # server.max_body_bytes' default


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": ASK, **extra}


def _nested(depth: int) -> bytes:
    return (b'{"model":"local","messages":[{"role":"user","content":"hi"}],"metadata":'
            + b"[" * depth + b"]" * depth + b"}")


# (name, body, status, the field the error must name or None)
BODIES: list[tuple[str, Callable[[], dict[str, Any] | bytes], int, str | None]] = [
    ("oversized body", lambda: json.dumps(chat(messages=[
        {"role": "user", "content": "a" * (CAP + 10)}])).encode(), 413, None),
    ("deeply nested JSON (200,000 levels)", lambda: _nested(200_000), 400, None),
    ("deeply nested messages", lambda: json.dumps(chat(messages=[
        {"role": "user", "content": [[[[[[[[["x"]]]]]]]]]}])).encode(), 400, "messages[0].content"),
    ("invalid UTF-8", lambda: b'{"model":"local","messages":[{"role":"user","content":"\xff\xfe\xc3"}]}',
     400, None),
    ("max_tokens huge", lambda: chat(max_tokens=10**12), 400, "max_tokens"),
    ("max_tokens negative", lambda: chat(max_tokens=-5), 400, "max_tokens"),
    ("max_tokens not a number", lambda: chat(max_tokens="lots"), 400, "max_tokens"),
    ("10,000 attached files", lambda: chat(files=[
        {"path": f"pkg/m{i}.py", "content": f"x{i} = {i}\n"} for i in range(10_000)]),
     400, None),
    ("a file with NUL bytes", lambda: chat(files=[
        {"path": "blob.bin", "content": "ELF\x00\x00\x01\x00binary"}]), 400, "files[0].content"),
    ("a lone surrogate in a file", lambda: b'{"model":"auto","messages":[{"role":"user",'
     b'"content":"hi"}],"files":[{"path":"a.py","content":"\\ud800"}]}', 400, None),
    ("not an object", lambda: b'[1, 2, 3]', 400, None),
    ("empty body", lambda: b"", 400, None),
]


def _healthy(service: Service, key: str) -> None:
    assert httpx.get(f"{service.url}/healthz", timeout=10).status_code == 200
    reply = post_chat(service, {"model": "local", "messages": ASK, "max_tokens": 2}, key)
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/tasks"])
def test_hostile_bodies_get_a_clear_4xx_and_the_service_is_unharmed(service: Service,
                                                                    path: str) -> None:
    key = service.key("hostile")
    before = service.recorder.count
    outcomes: dict[str, int] = {}
    for name, make, status, param in BODIES:
        body = make()
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = httpx.post(f"{service.url}{path}", content=content, timeout=120,
                              headers={**auth(key), "content-type": "application/json"})
        outcomes[name] = response.status_code
        error = clear_error(response, status)
        if param is not None:
            assert error["param"] == param, (name, error)
        assert "Traceback" not in error["message"]
        _healthy(service, key)
    assert service.recorder.count == before  # none of them reached the cloud
    figure("hostile bodies", endpoint=path, bodies=len(BODIES),
           clear_4xx=sum(400 <= s < 500 for s in outcomes.values()),
           server_errors=sum(s >= 500 for s in outcomes.values()), reached_cloud=0)


def test_the_auth_matrix(service: Service) -> None:
    """No key, a wrong key, a revoked key: 401 everywhere; another team's task, its events,
    feedback, cancel and usage: 404; admin routes with a team key: 403."""
    mine, theirs = service.key("alpha"), service.key("beta")
    revoked = service.key("alpha")
    revoke = httpx.delete(f"{service.url}/v1/keys/{service.keys[revoked]}", headers=auth(ADMIN))
    assert revoke.status_code == 200
    task = httpx.post(f"{service.url}/v1/tasks", json={"prompt": "Say hi.", "max_tokens": 2},
                      headers=auth(theirs), timeout=30)
    assert task.status_code == 202, task.text
    task_id = task.json()["id"]

    routes = [("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat()),
              ("POST", "/v1/tasks", {"prompt": "hi"}), ("GET", f"/v1/tasks/{task_id}", None),
              ("GET", f"/v1/tasks/{task_id}/events", None), ("DELETE", f"/v1/tasks/{task_id}", None),
              ("POST", f"/v1/tasks/{task_id}/feedback", {"accepted": True}),
              ("GET", "/v1/usage", None), ("GET", "/v1/usage/entries", None),
              ("GET", "/v1/keys", None), ("POST", "/v1/keys", {"team": "x"}),
              ("DELETE", "/v1/keys/k1", None)]
    checked = 0

    def call(method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return httpx.request(method, f"{service.url}{path}", json=body, headers=headers, timeout=30)

    for method, path, body in routes:
        for headers, code in (({}, "missing_api_key"), (auth("sk-sc-wrong-0000000000"), "invalid_api_key"),
                              (auth(revoked), "invalid_api_key"), ({"Authorization": "Basic eDp5"},
                                                                   "missing_api_key")):
            error = clear_error(call(method, path, body, headers), 401)
            assert error["code"] == code, (method, path, error)
            checked += 1
    for method, path, body in routes[3:7]:  # another team's task, each way of reaching it
        error = clear_error(call(method, path, body, auth(mine)), 404)
        assert task_id in error["message"] and "beta" not in error["message"]
        checked += 1
    for path in ("/v1/usage?team=beta", "/v1/usage/entries?team=beta"):
        clear_error(call("GET", path, None, auth(mine)), 404)
        checked += 1
    for method, path, body in routes[-3:]:
        assert clear_error(call(method, path, body, auth(mine)), 403)["code"] == "admin_only"
        checked += 1
    still = httpx.get(f"{service.url}/v1/tasks/{task_id}", headers=auth(theirs), timeout=30)
    assert still.status_code == 200 and still.json()["status"] == "queued"  # nothing was done to it
    figure("auth matrix", requests=checked, wrong_answers=0)
