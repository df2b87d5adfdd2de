"""A scripted "cloud" on loopback for the agent tests and ``smallcode bench agents``: a real
OpenAI-compatible chat server
(whole and streamed answers, tool calls and their streamed deltas) whose answers a script
chooses from the request, as a capable model would. It records every request body, so a
test sees what left the machine. litellm reaches it as it reaches any provider. Requests
that mark prefixes with ``cache_control`` meet a prompt cache (:class:`PromptCache`).

``fix_one_line`` is the script of the agent tests: read the file with the client's read tool,
replace one line with its edit tool (or a patch / a shell command, as the client offers),
then say it is done. It finds the tools by their shape, whatever the client names them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from router.bench.serving import serving

# The one-line bug of the agent tests: the path a client is told, the line, its fix.
FIX_PATH = "/work/repo/calc.py"
FIX_OLD, FIX_NEW = "    return a - b", "    return a + b"

Answer = dict[str, Any]  # {"content": str | None, "tool_calls": [{"name", "arguments": {}}]}
Script = Callable[[Mapping[str, Any]], Answer]


def _properties(tool: Mapping[str, Any]) -> dict[str, Any]:
    return dict(tool.get("function", {}).get("parameters", {}).get("properties") or {})


def _find(tools: list[Mapping[str, Any]], name_has: str, *keys: str) -> Mapping[str, Any] | None:
    for tool in tools:
        name = tool.get("function", {}).get("name", "").lower()
        if name_has in name and all(k in _properties(tool) for k in keys):
            return tool
    return None


def _key(tool: Mapping[str, Any], *candidates: str) -> str:
    return next(k for k in candidates if k in _properties(tool))


def fix_one_line(path: str, old: str, new: str) -> Script:
    """Read ``path`` (where the client offers a read tool), replace ``old`` by ``new`` in it,
    then answer in text. ``path``: as the client's tools want it (absolute for Claude Code)."""
    def script(body: Mapping[str, Any]) -> Answer:
        tools = list(body.get("tools") or [])
        results = [m for m in body["messages"] if m["role"] == "tool"]
        read = _find(tools, "read")
        edit = _find(tools, "edit")
        patch = _find(tools, "apply_patch")
        shell = _find(tools, "shell") or _find(tools, "bash") or _find(tools, "exec")
        if not results and read is not None and edit is not None:
            where = _key(read, "file_path", "filePath", "path", "filepath")
            return {"tool_calls": [{"name": read["function"]["name"],
                                    "arguments": {where: path}}]}
        edited = any(m.get("tool_calls") and any(
            c["function"]["name"] in {t["function"]["name"] for t in (edit, patch, shell) if t}
            for c in m["tool_calls"]) for m in body["messages"] if m["role"] == "assistant")
        if edited:
            return {"content": f"Fixed: {path} now has `{new.strip()}`."}
        if edit is not None:
            where = _key(edit, "file_path", "filePath", "path")
            old_key = _key(edit, "old_string", "oldString")
            new_key = _key(edit, "new_string", "newString")
            return {"tool_calls": [{"name": edit["function"]["name"],
                                    "arguments": {where: path, old_key: old, new_key: new}}]}
        if patch is not None:
            text = (f"*** Begin Patch\n*** Update File: {path}\n@@\n-{old}\n+{new}\n"
                    "*** End Patch\n")
            key = next(iter(_properties(patch)), "input")
            return {"tool_calls": [{"name": patch["function"]["name"],
                                    "arguments": {key: text}}]}
        if shell is not None:
            key = _key(shell, "command", "cmd")
            sed = f"sed -i 's/{old.strip()}/{new.strip()}/' {path}"
            command: Any = ["bash", "-lc", sed] if _properties(shell)[key].get(
                "type") == "array" else sed
            return {"tool_calls": [{"name": shell["function"]["name"],
                                    "arguments": {key: command}}]}
        return {"content": "I have no tool to edit files with."}
    return script


class Recorded:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []


def _message(answer: Answer) -> dict[str, Any]:
    calls = [{"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
              "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
             for c in answer.get("tool_calls") or []]
    return {"role": "assistant", "content": answer.get("content"),
            **({"tool_calls": calls} if calls else {})}


def _tokens(value: Any) -> int:
    return len(json.dumps(value)) // 4


class PromptCache:
    """A provider's prompt cache as Anthropic keeps one: a request's prefix up to a message
    marked ``cache_control`` is written to the cache, and read from it when a later request
    starts with the same prefix (the same tools and messages up to that mark). Reported as
    litellm reads a provider's usage: ``cache_read_input_tokens`` (also OpenAI's
    ``prompt_tokens_details.cached_tokens``) and ``cache_creation_input_tokens``."""

    def __init__(self) -> None:
        self._kept: set[str] = set()

    def use(self, body: Mapping[str, Any]) -> tuple[int, int]:
        """(tokens read, tokens written) for this request, remembering its marked prefixes."""
        messages = body["messages"]
        marks = [i for i, m in enumerate(messages) if isinstance(m.get("content"), list)
                 and any(part.get("cache_control") for part in m["content"])]
        if not marks:
            return 0, 0
        tools = json.dumps(body.get("tools") or [])
        prefixes = [(tools + json.dumps(messages[:i + 1]), _tokens(messages[:i + 1]))
                    for i in marks]
        read = max((n for key, n in prefixes if key in self._kept), default=0)
        self._kept.update(key for key, _ in prefixes)
        return read, max(0, prefixes[-1][1] - read)


def _usage(body: Mapping[str, Any], message: Mapping[str, Any],
           cache: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    prompt = _tokens(body["messages"])
    completion = max(1, _tokens(message))
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                           "total_tokens": prompt + completion}
    read, written = cache
    if read or written:
        out.update(prompt_tokens_details={"cached_tokens": read},
                   cache_read_input_tokens=read, cache_creation_input_tokens=written)
    return out


def _chunks(body: Mapping[str, Any], message: dict[str, Any],
            usage: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model", "scripted")}
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None}]}
    text = message.get("content") or ""
    for start in range(0, len(text), 8):
        yield {**base, "choices": [{"index": 0, "delta": {"content": text[start:start + 8]},
                                    "finish_reason": None}]}
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        yield {**base, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
            {"index": index, "id": call["id"], "type": "function",
             "function": {"name": call["function"]["name"], "arguments": ""}}]}}]}
        for start in range(0, len(arguments), 16):
            yield {**base, "choices": [{"index": 0, "finish_reason": None, "delta": {
                "tool_calls": [{"index": index,
                                "function": {"arguments": arguments[start:start + 16]}}]}}]}
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}],
           "usage": usage}


@contextmanager
def scripted_cloud(script: Script) -> Iterator[tuple[str, Recorded]]:
    """Yield (base_url ending in /v1, recorded): an OpenAI-compatible chat server answering
    as ``script`` says."""
    recorded = Recorded()
    cache = PromptCache()

    async def chat(request: Request) -> Response:
        body = await request.json()
        recorded.bodies.append(body)
        message = _message(script(body))
        usage = _usage(body, message, cache.use(body))
        if body.get("stream"):
            async def events() -> AsyncIterator[str]:
                for chunk in _chunks(body, message, usage):
                    yield f"data: {json.dumps(chunk)}\n\n"
                yield "data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage})

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/v1/models", models, methods=["GET"])])
    with serving(app, loop="asyncio", http="h11") as url:
        yield f"{url}/v1", recorded
