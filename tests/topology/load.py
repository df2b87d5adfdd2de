"""The topology's load generator, run as its own process: ``clients`` loops sending, in turn, a
local chat, a routed stream, a task and a multi-file task (the cloud) to the two APIs
alternately, until ``seconds`` pass; one JSON document of every request to ``--out``.

    python -m tests.topology.load --urls U1,U2 --key K --seconds 10 --clients 4 --out load.json

It behaves as a client behind a load balancer with health checks would: a request that meets
a dead API (refused or cut connection) is sent again to the other one; a 503 or 429 is sent
again after its ``Retry-After`` (at most 2 s), until ``GIVE_UP_S`` has passed. Tasks carry an
``Idempotency-Key``, so sending one again never makes a second task.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

KINDS = ("chat", "stream", "task", "task-cloud")
GIVE_UP_S = 60.0
PAUSE_S = 0.05  # between one client's requests
FILES = [{"path": f"pkg/m{i}.py", "content": f"def f{i}():\n    return {i}\n"} for i in range(3)]
ASK = "Write a Python function add(a, b) that returns their sum."


@dataclass
class Sent:
    """One request as the client saw it, however many times it was sent."""

    kind: str
    started: float  # wall clock (time.time()), to line up with the kills
    latency_s: float = 0.0
    status: int | None = None  # the last answer's status; None: no answer at all
    statuses: list[int | str] = field(default_factory=list)  # every attempt: status or error
    apis: list[int] = field(default_factory=list)
    task_id: str | None = None
    error: str | None = None  # the last refusal's message (its first 200 characters)


def _body(kind: str, turn: int) -> tuple[str, dict[str, Any]]:
    if kind == "chat":
        return "/v1/chat/completions", {"model": "local", "max_tokens": 8, "messages": [
            {"role": "user", "content": f"Say hi ({turn})."}]}
    if kind == "stream":
        return "/v1/chat/completions", {"model": "auto", "stream": True, "max_tokens": 16,
                                        "messages": [
            {"role": "user", "content": f"{ASK} ({turn})"}]}
    body: dict[str, Any] = {"prompt": f"{ASK} ({turn})", "max_tokens": 8}
    if kind == "task-cloud":
        body["files"] = FILES  # several files: the cloud, which costs something
    return "/v1/tasks", body


async def _attempt(client: httpx.AsyncClient, url: str, path: str, body: dict[str, Any],
                   headers: dict[str, str]) -> httpx.Response:
    if not body.get("stream"):
        return await client.post(url + path, json=body, headers=headers)
    async with client.stream("POST", url + path, json=body, headers=headers) as response:
        text = (await response.aread()).decode()
        if response.status_code == 200 and "data: [DONE]" not in text:
            raise httpx.RemoteProtocolError("the stream ended without [DONE]")
        return response


async def send(client: httpx.AsyncClient, urls: list[str], key: str, kind: str,
               turn: int, *, api: int) -> Sent:
    path, body = _body(kind, turn)
    headers = {"Authorization": f"Bearer {key}"}
    if kind.startswith("task"):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    sent = Sent(kind, time.time())
    began = time.perf_counter()
    while True:
        sent.apis.append(api)
        wait_s = 0.2
        try:
            response = await _attempt(client, urls[api], path, body, headers)
        except httpx.TransportError as exc:  # a dead API: the other one
            sent.statuses.append(type(exc).__name__)
            api = (api + 1) % len(urls)
        else:
            sent.status = response.status_code
            sent.statuses.append(response.status_code)
            if response.status_code >= 400:
                sent.error = response.text[:200]
            if response.status_code not in (429, 503):
                if response.status_code == 202:
                    sent.task_id = response.json()["id"]
                break
            wait_s = min(2.0, float(response.headers.get("retry-after") or 1))
            api = (api + 1) % len(urls)
        if time.perf_counter() - began + wait_s > GIVE_UP_S:
            break
        await asyncio.sleep(wait_s)
    sent.latency_s = time.perf_counter() - began
    return sent


async def run(urls: list[str], key: str, seconds: float, clients: int) -> list[Sent]:
    done: list[Sent] = []
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=4 * clients, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=GIVE_UP_S, limits=limits) as client:
        async def loop(index: int) -> None:
            n = 0
            while time.perf_counter() < end:
                turn = n * clients + index  # each client sends every kind, to both APIs
                done.append(await send(client, urls, key, KINDS[(index + n) % len(KINDS)], turn,
                                       api=(index + n // len(KINDS)) % len(urls)))
                n += 1
                await asyncio.sleep(PAUSE_S)
        await asyncio.gather(*(loop(i) for i in range(clients)))
    return done


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tests.topology.load")
    parser.add_argument("--urls", required=True, help="the APIs' base URLs, comma-separated")
    parser.add_argument("--key", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    sent = asyncio.run(run(args.urls.split(","), args.key, args.seconds, args.clients))
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump([asdict(s) for s in sent], out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
