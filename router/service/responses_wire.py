"""The OpenAI Responses API's wire shapes (``POST /v1/responses``, as Codex sends it): a
request becomes an agent's turn (:mod:`router.graph.agent_turn`), a routed answer becomes a
response, whole or as the API's server-sent events.

Ours, not litellm's Responses-to-chat bridge (``docs/agents-wire.md``): the bridge turns a
request into a litellm completion call, not into the router's task, and it forwards what
the tiers cannot run. What is dropped on the way in, and why: ``reasoning`` items and
settings (neither tier reasons in OpenAI's format; the client resends them), ``include``,
``store`` (nothing is stored: ``previous_response_id`` is refused, naming the field),
``prompt_cache_key`` (read as the session id). Hosted tools (``web_search``, ...) are left
out of what the model sees and named in the task (``hosted_tools``), as the tiers cannot
run them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from router.graph import agent_turn
from router.graph.answer import RoutedAnswer
from router.graph.errors import InvalidTask
from router.graph.validation import MAX_TOKENS_LIMIT
from router.run.outcome import RouteRecord

TEXT_PARTS = ("input_text", "output_text", "text")
SKIPPED_ITEMS = ("reasoning",)


def _text(content: Any, field: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidTask(field, "must be text or a list of content parts")
    parts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind in TEXT_PARTS and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind in ("input_image", "input_file"):
            raise InvalidTask(f"{field}[{i}]", f"{kind} parts cannot be taken by the models "
                              "here (text only): send the content as text")
        else:
            raise InvalidTask(f"{field}[{i}].type", f"unknown content part {kind!r}: use "
                              "input_text")
    return "\n".join(parts)


def tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Function tools in the chat API's shape, and the hosted tools left out (their types)."""
    functions, hosted = [], []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, Mapping):
            raise InvalidTask(f"tools[{i}]", "must be a tool object")
        if tool.get("type") != "function":
            hosted.append(str(tool.get("type") or tool.get("name")))
            continue
        if not isinstance(tool.get("name"), str):
            raise InvalidTask(f"tools[{i}].name", "is missing; name the tool")
        function = {"name": tool["name"],
                    "parameters": tool.get("parameters") or {"type": "object",
                                                             "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        functions.append({"type": "function", "function": function})
    return functions, hosted


def tool_choice(body: Mapping[str, Any]) -> Any:
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def conversation(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``input`` as an OpenAI chat conversation: consecutive ``function_call`` items become
    one assistant turn's tool calls, ``function_call_output`` items tool messages."""
    items = body.get("input")
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise InvalidTask("input", "must be text or a list of input items")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        field = f"input[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidTask(field, "must be an input item")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise InvalidTask(f"{field}.role", "must be user, assistant, system or "
                                  "developer")
            out.append({"role": "system" if role == "developer" else role,
                        "content": _text(item.get("content"), f"{field}.content")})
        elif kind == "function_call":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("name"), str):
                raise InvalidTask(field, "a function_call item needs its call_id and name")
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"],
                                 "arguments": item.get("arguments") or "{}"}}
            last = out[-1] if out else None
            if last and last["role"] == "assistant" and (last.get("tool_calls")
                                                          or not last.get("content")):
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str)
                        else _text(output, f"{field}.output")})
        elif kind in SKIPPED_ITEMS:
            continue
        else:
            raise InvalidTask(f"{field}.type", f"unknown input item {kind!r}: use message, "
                              "function_call or function_call_output")
    orphan = agent_turn.unanswered(out)
    if orphan is not None:
        raise InvalidTask("input", f"function_call_output call_id {orphan!r} matches no "
                          "earlier function_call")
    return out


def task(body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """The routed task of a Responses API request (its fields checked, naming them)."""
    if body.get("previous_response_id"):
        raise InvalidTask("previous_response_id", "this server stores no responses: send "
                          "the whole conversation in input (as store: false clients do)")
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidTask("max_output_tokens", "must be a positive integer")
    turns = conversation(body)
    system = [t["content"] for t in turns if t["role"] == "system"]
    turns = [t for t in turns if t["role"] != "system"]
    if not turns:
        raise InvalidTask("input", "needs at least one user message")
    if isinstance(body.get("instructions"), str) and body["instructions"]:
        system.insert(0, body["instructions"])
    prompt = next((t["content"] for t in reversed(turns) if t["role"] == "user"), "")
    out: dict[str, Any] = {"conversation": turns, "prompt": prompt or "(continue)"}
    if max_tokens is not None:  # a ceiling (see anthropic_wire.task)
        out["max_tokens"] = min(max_tokens, MAX_TOKENS_LIMIT)
    if system:
        out["system"] = "\n\n".join(system)
    functions, hosted = tools(body)
    if functions:
        out["tools"] = functions
        out["tool_choice"] = tool_choice(body)
        if isinstance(body.get("parallel_tool_calls"), bool):
            out["parallel_tool_calls"] = body["parallel_tool_calls"]
    if hosted:
        out["hosted_tools"] = hosted
    client_metadata = body.get("client_metadata")
    if client_metadata is not None and not isinstance(client_metadata, Mapping):
        raise InvalidTask("client_metadata", "must be an object")
    session = (body.get("prompt_cache_key") or (client_metadata or {}).get(
        "session_id") or headers.get("session_id") or headers.get("x-session-id"))
    if isinstance(session, str) and session:
        out["session"] = session
    return out


def response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


def output(answer: RoutedAnswer, *, id_: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if answer.text or not answer.tool_calls:
        items.append({"type": "message", "id": f"msg_{id_[5:]}", "status": "completed",
                      "role": "assistant",
                      "content": [{"type": "output_text", "text": answer.text,
                                   "annotations": []}]})
    for n, call in enumerate(answer.tool_calls):
        items.append({"type": "function_call", "id": f"fc_{id_[5:]}_{n}", "call_id": call.id,
                      "name": call.name, "arguments": call.arguments, "status": "completed"})
    return items


def usage(record: RouteRecord) -> dict[str, Any]:
    return {"input_tokens": record.tokens.prompt, "output_tokens": record.tokens.completion,
            "total_tokens": record.tokens.prompt + record.tokens.completion,
            "input_tokens_details": {"cached_tokens": record.tokens.cloud_cache_read},
            "output_tokens_details": {"reasoning_tokens": 0}}


def response(body: Mapping[str, Any], *, id_: str, created: int, status: str,
             answer: RoutedAnswer | None = None,
             record: RouteRecord | None = None) -> dict[str, Any]:
    """The response object: in progress (no answer yet) or completed."""
    out: dict[str, Any] = {
        "id": id_, "object": "response", "created_at": created, "status": status,
        "model": body.get("model") or "auto", "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
        "store": False, "usage": None, "metadata": body.get("metadata") or {},
    }
    if answer is not None and record is not None:
        out["output"] = output(answer, id_=id_)
        out["usage"] = usage(record)
        out["smallcode"] = {"route": record.to_json()}
        if answer.finish_reason == "length":
            out["status"] = "incomplete"
            out["incomplete_details"] = {"reason": "max_output_tokens"}
    return out


class Events:
    """The stream's events, numbered in order (``sequence_number``)."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, payload: dict[str, Any]) -> str:
        data = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"

    def created(self, body: Mapping[str, Any], *, id_: str, created: int) -> Iterator[str]:
        started = response(body, id_=id_, created=created, status="in_progress")
        yield self("response.created", {"response": started})
        yield self("response.in_progress", {"response": started})

    def in_progress(self, body: Mapping[str, Any], *, id_: str, created: int) -> str:
        """``response.in_progress`` again: the stream's keep-alive (a client that times out
        an idle stream counts events, not SSE comments)."""
        return self("response.in_progress", {"response": response(
            body, id_=id_, created=created, status="in_progress")})

    def answer(self, body: Mapping[str, Any], answer: RoutedAnswer, record: RouteRecord, *,
               id_: str, created: int, chunk_chars: int = 64) -> Iterator[str]:
        """Each output item added, its text or arguments in deltas, done; then the response
        completed."""
        for index, item in enumerate(output(answer, id_=id_)):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                yield self("response.output_item.added", {"output_index": index, "item": {
                    **item, "status": "in_progress", "content": []}})
                part = {"type": "output_text", "text": "", "annotations": []}
                ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
                yield self("response.content_part.added", {**ids, "part": part})
                for start in range(0, len(text), chunk_chars):
                    yield self("response.output_text.delta",
                               {**ids, "delta": text[start:start + chunk_chars]})
                yield self("response.output_text.done", {**ids, "text": text})
                yield self("response.content_part.done",
                           {**ids, "part": {**part, "text": text}})
            else:
                yield self("response.output_item.added", {"output_index": index, "item": {
                    **item, "arguments": "", "status": "in_progress"}})
                ids = {"item_id": item["id"], "output_index": index}
                yield self("response.function_call_arguments.delta",
                           {**ids, "delta": item["arguments"]})
                yield self("response.function_call_arguments.done",
                           {**ids, "arguments": item["arguments"]})
            yield self("response.output_item.done", {"output_index": index, "item": item})
        done = response(body, id_=id_, created=created, status="completed", answer=answer,
                        record=record)
        kind = "response.incomplete" if done["status"] == "incomplete" else "response.completed"
        yield self(kind, {"response": done})

    def failed(self, body: Mapping[str, Any], *, id_: str, created: int, status: int,
               message: str, code: str | None) -> str:
        failed = response(body, id_=id_, created=created, status="failed")
        failed["error"] = {"code": code or ("server_error" if status >= 500
                                            else "invalid_request"), "message": message}
        return self("response.failed", {"response": failed})


def now() -> int:
    return int(time.time())
