"""The local tier gone: a real llama-server (the local tier of `local.mode: server`) SIGKILLed
while the service runs. `/readyz` says the tier is not ready; tasks go to the cloud where the
policy allows (route reason `local_unavailable`, in the ledger); a local-only team's task and a
forced local route fail at once with 503 `local_unavailable` and never reach the cloud; the
server started again, the service is ready again by itself."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from agents import llama_server, model_store
from agents.config import LocalConfig
from agents.remote import RemoteLocalBackend
from tests.conftest import free_port
from tests.reliability.conftest import LogScan, auth, clear_error, figure, post_chat, running

ASK = [{"role": "user", "content": "Write a Python function that doubles a number."}]
TEAMS = {"teams": {"vault": {"local_only": True}}}


def ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/readyz", timeout=30)


def streamed_route(url: str, key: str) -> tuple[str, dict[str, Any]]:
    """A routed stream's text and the route record of its last chunk."""
    text, route = "", {}
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers=auth(key), timeout=120,
                      json={"model": "auto", "messages": ASK, "max_tokens": 8,
                            "stream": True}) as reply:
        assert reply.status_code == 200, reply.read()
        for line in reply.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                text += (choice.get("delta") or {}).get("content") or ""
            route = (chunk.get("smallcode") or {}).get("route") or route
    return text, route


def test_a_killed_llama_server_is_not_ready_and_its_tasks_go_to_the_cloud(
        model_cache: Path, smol_standin_url: str, valkey_server: Any,
        service_logs: LogScan) -> None:
    config = LocalConfig(model="smollm2-135m", n_ctx=2048, server_parallel=2,
                         server_port=free_port())
    path = model_cache / model_store.MODELS["smollm2-135m"].filename
    server = llama_server.start(config, path, alias="smollm2-135m")
    backend = RemoteLocalBackend(config.model_copy(
        update={"mode": "server", "server_url": server.base_url}))
    try:
        with running(backend, smol_standin_url, valkey_server.url, prefix="rel-local",
                     tasks={"embedded_worker": True}, policies=TEAMS) as service:
            team, vault = service.key("platform"), service.key("vault")
            up = ready(service.url)
            assert up.status_code == 200, up.text
            assert up.json()["local"] == "ok"
            served = post_chat(service, {"model": "local", "messages": ASK, "max_tokens": 4}, team)
            assert served.status_code == 200, served.text  # the server really serves
            calls_before = service.recorder.count

            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=30)
            down = ready(service.url)
            assert down.status_code == 503, down.text
            assert down.json()["local"] == "unavailable"
            assert any("local server" in p for p in down.json()["problems"]), down.json()

            started = time.perf_counter()
            moved = post_chat(service, {"model": "auto", "messages": ASK, "max_tokens": 8}, team)
            moved_s = time.perf_counter() - started
            assert moved.status_code == 200, moved.text
            route = moved.json()["smallcode"]["route"]
            assert (route["final"], route["reason"]) == ("cloud", "local_unavailable")
            assert moved.json()["choices"][0]["message"]["content"]
            text, streamed = streamed_route(service.url, team)
            assert (streamed["final"], streamed["reason"]) == ("cloud", "local_unavailable")
            assert text
            assert service.recorder.count == calls_before + 2  # both reached the cloud

            started = time.perf_counter()
            kept = post_chat(service, {"model": "auto", "messages": ASK, "max_tokens": 8}, vault)
            kept_s = time.perf_counter() - started
            error = clear_error(kept, 503)
            assert error["code"] == "local_unavailable" and "privacy" in error["message"]
            assert kept.headers["Retry-After"]
            forced = post_chat(service, {"model": "local", "messages": ASK, "max_tokens": 4}, team)
            clear_error(forced, 503)
            assert service.recorder.count == calls_before + 2  # neither reached it
            assert kept_s < 10  # fails at once: no hang, no retry loop

            usage = httpx.get(f"{service.url}/v1/usage", params={"group_by": "reason"},
                              headers=auth(team), timeout=30).json()
            reasons = {row["reason"]: row["tasks"] for row in usage["data"]}
            assert reasons.get("local_unavailable") == 2  # the ledger says why it went out

            server = llama_server.start(config, path, alias="smollm2-135m")
            again = ready(service.url)
            assert again.status_code == 200, again.text
            back = post_chat(service, {"model": "local", "messages": ASK, "max_tokens": 4}, team)
            assert back.status_code == 200, back.text
    finally:
        backend.close()
        server.stop()
    figure("local tier killed (llama-server SIGKILL)", readyz_down=503, to_cloud=2,
           refused_503=2, reached_cloud_when_kept=0, moved_s=round(moved_s, 2),
           refused_s=round(kept_s, 2), recovered=True, lost=0)
