"""The Anthropic Messages API's wire shapes (``POST /v1/messages``, as Claude Code sends it):
a request becomes an agent's turn (:mod:`router.graph.agent_turn`), a routed answer becomes
a message, whole or as the API's server-sent events.

Ours, not litellm's adapter (``docs/agents-wire.md`` says what it does and drops): the turn
must come out as the router's task (a structured conversation plus tools) and go back from a
routed answer, and bad input must be refused naming its field in this API's error shape;
the adapter translates whole provider calls and passes unknown blocks through.

``cache_control`` markers travel as the turns' ``cache`` flags (``system_cache`` for the
top-level system): the cloud tier hands them to a provider that caches prompts (litellm
turns them back into Anthropic's breakpoints), and the local engine caches every prefix
anyway. A marker on a block marks the turn the block becomes, up to its end.

What is dropped on the way in, and why: ``thinking`` blocks (neither tier reasons in
Anthropic's format; the client resends them, they are not the task), ``thinking`` /
``context_management`` / ``metadata`` settings (read for the session id only).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from router.graph import agent_turn
from router.graph.answer import RoutedAnswer
from router.graph.errors import InvalidTask
from router.graph.validation import MAX_TOKENS_LIMIT
from router.run.outcome import RouteRecord

# Block types the tiers can take (text, tool use and results) or that are safe to drop.
DROPPED = ("thinking", "redacted_thinking")
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "aborted": "end_turn"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 503: "overloaded_error", 529: "overloaded_error"}


def _text(content: Any, field: str) -> str:
    """The text of ``content``: a string, or text blocks (a tool result's content)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidTask(field, "must be text or a list of text blocks")
    parts = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif kind in ("image", "document"):
            raise InvalidTask(f"{field}[{i}]", f"{kind} blocks cannot be taken by the models "
                              "here (text only): send the content as text")
        else:
            raise InvalidTask(f"{field}[{i}].type", f"unknown block type {kind!r} here: use "
                              "text")
    return "\n".join(parts)


def system_text(system: Any) -> str:
    """The top-level ``system``: text, or text blocks."""
    return "" if system is None else _text(system, "system")


def marked(content: Any) -> bool:
    """Whether any block of ``content`` carries a ``cache_control`` marker."""
    return isinstance(content, list) and any(
        isinstance(block, Mapping) and block.get("cache_control") for block in content)


def tools(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Anthropic tools as OpenAI function tools. Server tools (``web_search_20250305``,
    ``bash_20250124``, ...) have a ``type`` of their own and no ``input_schema``: the tiers
    cannot run them, so they are refused, naming the tool."""
    out = []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise InvalidTask(f"tools[{i}].name", "is missing; name the tool")
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            raise InvalidTask(f"tools[{i}]", f"{tool['name']!r} is a server tool "
                              f"({tool.get('type')}); the models here run client tools "
                              "only (name, description, input_schema)")
        function = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def tool_choice(body: Mapping[str, Any]) -> tuple[Any, bool | None]:
    """``tool_choice`` in OpenAI's words, and whether parallel calls are allowed."""
    choice = body.get("tool_choice")
    if choice is None:
        return None, None
    if not isinstance(choice, Mapping):
        raise InvalidTask("tool_choice", "must be {type: auto|any|tool|none}")
    parallel = None if "disable_parallel_tool_use" not in choice else not choice[
        "disable_parallel_tool_use"]
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if mapped is None:
        raise InvalidTask("tool_choice.type", f"unknown {kind!r}: use auto, any, tool or none")
    return mapped, parallel


def conversation(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The messages as an OpenAI conversation: ``tool_use`` blocks become the assistant's
    tool calls, ``tool_result`` blocks become tool messages (before the user's text, as the
    results answer the calls just made)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidTask("messages", "must hold at least one message")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        field = f"messages[{i}]"
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ("user", "assistant", "system"):
            raise InvalidTask(f"{field}.role", "must be user or assistant")
        content = message.get("content")
        if role == "system":  # Claude Code sends its environment as a system message here
            out.append({"role": "system", "content": _text(content, f"{field}.content"),
                        **_cache(marked(content))})
            continue
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise InvalidTask(f"{field}.content", "must be text or a list of content blocks")
        texts, calls, results = [], [], []
        text_cached = False
        for j, block in enumerate(content):
            where = f"{field}.content[{j}]"
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "text":
                texts.append(_text([block], where))
                text_cached = text_cached or bool(block.get("cache_control"))
            elif kind in DROPPED:
                continue
            elif kind == "tool_use" and role == "assistant":
                if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                    raise InvalidTask(where, "a tool_use block needs its id and name")
                calls.append({"id": block["id"], "type": "function",
                              "function": {"name": block["name"],
                                           "arguments": json.dumps(block.get("input") or {})}})
            elif kind == "tool_result" and role == "user":
                text = _text(block.get("content") or "", f"{where}.content")
                if block.get("is_error"):
                    text = f"Error: {text}"
                results.append({"role": "tool", "tool_call_id": block.get("tool_use_id"),
                                "content": text, **_cache(bool(block.get("cache_control")))})
            elif kind in ("image", "document"):
                raise InvalidTask(where, f"{kind} blocks cannot be taken by the models here "
                                  "(text only): send the content as text")
            else:
                raise InvalidTask(f"{where}.type", f"unknown block type {kind!r} in a {role} "
                                  "message")
        if role == "assistant":
            out.append({"role": "assistant", "content": "\n".join(texts) or None,
                        **({"tool_calls": calls} if calls else {}), **_cache(text_cached)})
        else:
            out.extend(results)
            if texts:
                out.append({"role": "user", "content": "\n".join(texts),
                            **_cache(text_cached)})
    orphan = agent_turn.unanswered(out)
    if orphan is not None:
        raise InvalidTask("messages", f"tool_result tool_use_id {orphan!r} matches no earlier "
                          "tool_use block")
    return out


def _cache(flag: bool) -> dict[str, bool]:
    return {"cache": True} if flag else {}


def session_id(body: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The client's session: Claude Code's ``metadata.user_id`` is JSON text holding a
    ``session_id`` (older ones end ``_session_<id>``); else the ``x-session-id`` header."""
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidTask("metadata", "must be an object ({\"user_id\": ...})")
    user_id = (metadata or {}).get("user_id")
    if isinstance(user_id, str):
        try:
            found = json.loads(user_id).get("session_id")
        except (json.JSONDecodeError, AttributeError):
            found = user_id.rsplit("_session_", 1)[1] if "_session_" in user_id else None
        if found:
            return str(found)
    return headers.get("x-session-id") or headers.get("x-claude-code-session-id")


def task(body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """The routed task of a Messages API request (its fields checked, naming them)."""
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidTask("max_tokens", "is required: a positive integer")
    turns = conversation(body)
    prompt = next((t["content"] for t in reversed(turns) if t["role"] == "user"), "")
    # A ceiling, not a length to reach: Claude Code asks for up to 64,000 tokens; the router
    # caps an answer at MAX_TOKENS_LIMIT (and the tiers at what their windows leave).
    out: dict[str, Any] = {"conversation": turns, "prompt": prompt or "(continue)",
                           "max_tokens": min(max_tokens, MAX_TOKENS_LIMIT)}
    system = system_text(body.get("system"))
    if system:
        out["system"] = system
        if marked(body.get("system")):
            out["system_cache"] = True
    offered = tools(body)
    if offered:
        out["tools"] = offered
        out["tool_choice"], out["parallel_tool_calls"] = tool_choice(body)
    session = session_id(body, headers)
    if session:
        out["session"] = session
    return out


def content(answer: RoutedAnswer) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if answer.text:
        blocks.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def usage(record: RouteRecord) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` are the prompt tokens no cache read or wrote
    (their sum with the two cache counts is the whole prompt, as the cloud counted it where
    it ran)."""
    tokens = record.tokens
    read, written = tokens.cloud_cache_read, tokens.cloud_cache_write
    prompt = tokens.cloud_prompt if read or written else tokens.prompt
    return {"input_tokens": max(0, prompt - read - written),
            "output_tokens": tokens.completion,
            "cache_creation_input_tokens": written, "cache_read_input_tokens": read}


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def message(answer: RoutedAnswer, record: RouteRecord, *, model: str,
            id_: str) -> dict[str, Any]:
    """The whole answer as a Messages API message (with the route record under
    ``smallcode``, as the chat API carries it)."""
    return {"id": id_, "type": "message", "role": "assistant", "model": model,
            "content": content(answer),
            "stop_reason": STOP_REASONS.get(answer.finish_reason, "end_turn"),
            "stop_sequence": None, "usage": usage(record),
            "smallcode": {"route": record.to_json()}}


def event(kind: str, payload: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n"


def message_start(*, model: str, id_: str, input_tokens: int = 0) -> str:
    return event("message_start", {"message": {
        "id": id_, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0}}})


PING = event("ping", {})


def answer_events(answer: RoutedAnswer, record: RouteRecord, *,
                  chunk_chars: int = 64) -> Iterator[str]:
    """The routed answer as the events after ``message_start``: one content block each for
    its text and its tool calls (text in deltas of ``chunk_chars``, arguments as one
    ``input_json_delta``), then ``message_delta`` with the stop reason and ``message_stop``."""
    for index, block in enumerate(content(answer)):
        if block["type"] == "text":
            yield event("content_block_start", {"index": index,
                                                "content_block": {"type": "text", "text": ""}})
            text = block["text"]
            for start in range(0, len(text), chunk_chars):
                yield event("content_block_delta", {"index": index, "delta": {
                    "type": "text_delta", "text": text[start:start + chunk_chars]}})
        else:
            yield event("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
            yield event("content_block_delta", {"index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
        yield event("content_block_stop", {"index": index})
    yield event("message_delta", {
        "delta": {"stop_reason": STOP_REASONS.get(answer.finish_reason, "end_turn"),
                  "stop_sequence": None},
        # the whole usage, as Anthropic's message_delta may carry it (message_start went out
        # before the route, and with it the prompt-cache counts, were known)
        "usage": usage(record),
        "smallcode": {"route": record.to_json()}})
    yield event("message_stop", {})


def error_body(status: int, message: str) -> dict[str, Any]:
    """An error in this API's shape: ``{"type": "error", "error": {"type", "message"}}``."""
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_event(status: int, message: str) -> str:
    """An error once the stream has begun (the status line is sent): an ``error`` event."""
    return event("error", {"error": error_body(status, message)["error"]})
