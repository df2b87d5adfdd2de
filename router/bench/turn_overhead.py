"""`smallcode bench turn`: the time the router adds to one agent turn, outside the models.

A Claude-Code-like session through the service, many times over: a first turn (a long system
prompt and 12 tools with nested schemas, then the user's message: 23,000 tokens in all in
Qwen2.5-Coder's tokenizer) and the session's next turn (the answer's tool call and its result:
two more messages, 1,100 tokens). The
cloud is the scripted server of the agent tests (:mod:`router.bench.scripted_cloud`), which
answers at once; the local tier is the configured model, in-process, for its tokenizer (an
agent's turn goes to the cloud, reason ``tools``). The service runs with auth on and a team
key, on an embedded Valkey, and the turns are streamed, as Claude Code asks for them.

The scripted cloud runs in a process of its own, as a provider is on a host of its own: in
this process its work (reading a 100 kB request, streaming the answer) would hold the
interpreter lock while the router, which has its answer, is under measurement.

"Router time" is what ``smallcode bench agents`` reports: a turn's latency (from its request to
its ledger entry) less its model calls (:func:`router.bench.agents.router_ms`). A model call's
time includes the cloud client's own work in this process (litellm: the request built, each
streamed chunk parsed, the answer assembled), so ``cloud_client`` measures that apart: the
first turn's request through :class:`CloudBackend` against the same bytes as plain HTTP. Each session is
new (its own id and first message), so a first turn pays for what is new in it, as a real
session's first turn does; the system prompt and the tools are the same in every session.
"""

from __future__ import annotations

import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

import router
from agents.base import Backend, GenerationRequest, Message
from agents.cloud import CloudBackend
from router.bench.agents import router_ms
from router.bench.scripted_cloud import fix_one_line, scripted_cloud
from router.bench.serving import serving
from router.graph.signals import quantile
from router.service.app import create_app
from router.settings import Settings
from router.store.server import EmbeddedRedis

ADMIN = "bench-turn-admin-key-0123456789abcdef"
PATH, OLD, NEW = "/work/repo/calc.py", "    return a - b", "    return a + b"
TOOLS = ("Read", "Edit", "Write", "Bash", "Glob", "Grep", "TodoWrite", "WebFetch", "WebSearch",
         "NotebookEdit", "Task", "ExitPlanMode")
WARMUP = 2  # sessions run first and not counted (imports, the price map, first connections)


def _serve_cloud(urls: Any, stop: Event) -> None:
    with scripted_cloud(fix_one_line(PATH, OLD, NEW)) as (url, _):
        urls.put(url)
        stop.wait()


@contextmanager
def cloud_apart() -> Iterator[str]:
    """The scripted cloud in a process of its own, until the block ends: its base URL."""
    spawn = multiprocessing.get_context("spawn")
    urls, stop = spawn.Queue(), spawn.Event()
    process = spawn.Process(target=_serve_cloud, args=(urls, stop), daemon=True)
    process.start()
    try:
        yield str(urls.get(timeout=120))
    finally:
        stop.set()
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)


def corpus(chars: int) -> str:
    """Text to fill prompts with: the router's own source, in a fixed order."""
    found: list[str] = []
    for path in sorted(Path(router.__file__).parent.rglob("*.py")):
        found.append(path.read_text())
        if sum(map(len, found)) > chars:
            break
    return "".join(found)[:chars]


def tools() -> list[dict[str, Any]]:
    """12 tools in Anthropic's shape, each with a long description and a nested schema."""
    text = corpus(len(TOOLS) * 1500)
    out = []
    for i, name in enumerate(TOOLS):
        described = text[i * 1500:(i + 1) * 1500]
        properties: dict[str, Any] = {"file_path": {"type": "string",
                                                    "description": "The absolute path"}}
        if name == "Edit":
            properties |= {"old_string": {"type": "string"}, "new_string": {"type": "string"},
                           "replace_all": {"type": "boolean", "default": False}}
        for j in range(6):
            properties[f"option_{j}"] = {
                "type": "array", "description": described[j * 100:(j + 1) * 100],
                "items": {"type": "object", "required": ["a"], "properties": {
                    "a": {"type": "string", "enum": ["x", "y", "z"]},
                    "b": {"type": "integer", "minimum": 0}}}}
        out.append({"name": name, "description": described, "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": properties, "required": ["file_path"],
            "additionalProperties": False}})
    return out


def first_turn(session: int, system: list[dict[str, Any]],
               offered: list[dict[str, Any]]) -> dict[str, Any]:
    reminder = corpus(6000)[3000:]
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
            "system": system, "tools": offered,
            "metadata": {"user_id": json.dumps({"session_id": f"bench-{session}-{time.time_ns()}"})},
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": f"<system-reminder>{reminder}</system-reminder>"},
                {"type": "text", "text": f"Fix the bug in calc.py: add must return a + b. #{session}"}]}]}


def next_turn(body: dict[str, Any], streamed: str) -> dict[str, Any]:
    """The session's next turn: the answer (its tool call) and the call's result."""
    blocks = [json.loads(line[6:])["content_block"] for line in streamed.splitlines()
              if line.startswith("data: ") and '"content_block_start"' in line]
    call = next(b for b in blocks if b["type"] == "tool_use")
    result = f"def add(a, b):\n{OLD}\n" + corpus(8000)[4000:]
    return {**body, "messages": [
        *body["messages"], {"role": "assistant", "content": blocks},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                      "content": result}]}]}


def summary(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    added = [router_ms(entry, record) for entry, record in rows]

    def node_ms(node: str) -> float:
        return round(quantile([r.get("timings_ms", {}).get(node, 0.0) for _, r in rows], 0.5), 2)

    return {"turns": len(rows), "prompt_tokens": rows[0][0]["tokens"]["prompt"],
            "route": rows[0][0]["route"], "reason": rows[0][0]["reason"],
            "router_ms_p50": round(quantile(added, 0.5), 2),
            "router_ms_min": round(min(added), 2), "router_ms_max": round(max(added), 2),
            "intake_ms_p50": node_ms("intake"), "cloud_generate_ms_p50": node_ms("cloud_generate"),
            "latency_ms_p50": round(quantile([e["latency_ms"] for e, _ in rows], 0.5), 2)}


def cloud_client(cloud: CloudBackend, cloud_url: str, system: list[dict[str, Any]],
                 offered: list[dict[str, Any]], *, calls: int = 30) -> dict[str, Any]:
    """What the cloud tier's client (litellm) costs per call, which router time counts as the
    model's: a request of the first turn's size streamed from the same scripted cloud through
    :class:`CloudBackend` and as plain HTTP (the body sent and the server-sent events parsed),
    alternately. Their difference is the client's work in this process."""
    request = GenerationRequest(
        messages=(Message("system", "\n\n".join(block["text"] for block in system)),
                  Message("user", "Fix the bug in calc.py: add must return a + b.")),
        max_tokens=32000, logprobs=False, tools=tuple(
            {"type": "function", "function": {"name": tool["name"],
                                              "description": tool["description"],
                                              "parameters": tool["input_schema"]}}
            for tool in offered))
    body = json.dumps({"model": "scripted", "messages": request.openai_messages(),
                       "max_tokens": request.max_tokens, "temperature": 0.0, "stream": True,
                       "stream_options": {"include_usage": True}, **request.openai_tools()})

    def plain(http: httpx.Client) -> None:
        with http.stream("POST", f"{cloud_url}/chat/completions", content=body,
                         headers={"Content-Type": "application/json",
                                  "Authorization": "Bearer none"}) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    json.loads(line[6:])

    def through_litellm() -> None:
        for _ in cloud.stream(request):
            pass

    timed: dict[str, list[float]] = {"plain": [], "litellm": []}
    with httpx.Client(timeout=60) as http:
        for round_ in range(WARMUP + calls):
            for way, call in (("plain", lambda: plain(http)), ("litellm", through_litellm)):
                started = time.perf_counter()
                call()
                if round_ >= WARMUP:
                    timed[way].append((time.perf_counter() - started) * 1000)
    added = [b - a for a, b in zip(timed["plain"], timed["litellm"], strict=True)]
    return {"calls": calls, "request_kb": round(len(body) / 1000),
            "plain_http_ms_p50": round(quantile(timed["plain"], 0.5), 2),
            "litellm_ms_p50": round(quantile(timed["litellm"], 0.5), 2),
            "client_ms_p50": round(quantile(added, 0.5), 2)}


def run(settings: Settings, local: Backend, *, sessions: int = 20,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    system = [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
              {"type": "text", "text": corpus(38_000)}]
    offered = tools()
    with tempfile.TemporaryDirectory() as scratch, EmbeddedRedis(Path(scratch) / "valkey") as redis, \
            cloud_apart() as cloud_url:
        served = settings.model_copy(update={
            "admin_key": SecretStr(ADMIN), "auth": settings.auth.model_copy(update={"enabled": True}),
            "redis": settings.redis.model_copy(update={"url": redis.url}),
            "tasks": settings.tasks.model_copy(update={"embedded_worker": False})})
        cloud = CloudBackend(settings.cloud.model_copy(update={
            "model": "openai/scripted", "api_base": cloud_url, "num_retries": 0,
            "n_ctx": 200_000}))
        app = create_app(served, local=local, cloud=cloud, with_retrieval=False)
        with serving(app) as url, httpx.Client(base_url=url, timeout=120) as http:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            key = http.post("/v1/keys", json={"team": "bench"}, headers=admin).json()["key"]
            headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
            log(f"{WARMUP + sessions} sessions of two turns each ...")
            for session in range(WARMUP + sessions):
                body = first_turn(session, system, offered)
                answer = http.post("/v1/messages", json=body, headers=headers)
                answer.raise_for_status()
                http.post("/v1/messages", json=next_turn(body, answer.text),
                          headers=headers).raise_for_status()
            entries = http.get("/v1/usage/entries", params={"limit": 2 * (WARMUP + sessions)},
                               headers=admin).json()["data"][::-1]  # oldest first
            records = [http.get(f"/v1/usage/entries/{e['id']}", headers=admin).json()["record"]
                       for e in entries]
        log("the cloud client's own time: the same request through litellm and as plain HTTP")
        client = cloud_client(cloud, cloud_url, system, offered)
    rows = list(zip(entries, records, strict=True))[2 * WARMUP:]
    return {"local_model": local.model_name, "sessions": sessions,
            "first": summary(rows[0::2]), "next": summary(rows[1::2]), "cloud_client": client}
