"""An agent's turn through the OpenAI chat API (``/v1/chat/completions`` with ``tools``, as
opencode, Cline and Continue's agent mode send it): the conversation travels structured
(:mod:`router.graph.agent_turn`), the turn runs through :mod:`router.service.turns`, and the
routed answer goes back as a chat completion with ``tool_calls``, whole or streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.responses import StreamingResponse

from router.graph.answer import RoutedAnswer
from router.graph.errors import InvalidTask
from router.run.outcome import RouteRecord
from router.service import openai_wire as wire
from router.service import turns
from router.service.errors import Described
from router.service.schemas import ChatCompletionRequest

SYSTEM_ROLES = ("system", "developer")


def task(body: ChatCompletionRequest, route: str) -> dict[str, Any]:
    """The routed task of a chat request with tools: system messages as its system prompt,
    the rest as its conversation, the last user text as its prompt."""
    called: set[str] = set()
    for i, message in enumerate(body.messages):  # named as the client numbers its messages
        if message.role == "tool" and message.tool_call_id not in called:
            raise InvalidTask(f"messages[{i}].tool_call_id",
                              "matches no tool call of an earlier assistant message")
        called.update(call.id for call in message.tool_calls or [])
    system = [m.text() for m in body.messages if m.role in SYSTEM_ROLES]
    conversation = [m.turn() for m in body.messages if m.role not in SYSTEM_ROLES]
    prompt = next((m.text() for m in reversed(body.messages) if m.role == "user"), "")
    out: dict[str, Any] = {"conversation": conversation, "prompt": prompt or "(continue)",
                           "max_tokens": body.limit, "route": route}
    if system:
        out["system"] = "\n\n".join(system)
    if body.tools:
        out["tools"] = body.tools
        out["tool_choice"] = body.tool_choice
        out["parallel_tool_calls"] = body.parallel_tool_calls
    for key in ("repo", "team", "type"):
        if getattr(body, key) is not None:
            out[key] = getattr(body, key)
    return out


def tool_calls(answer: RoutedAnswer) -> list[dict[str, Any]]:
    return [{"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for call in answer.tool_calls]


def completion(answer: RoutedAnswer, record: RouteRecord, *, completion_id: str,
               created: int, model: str) -> dict[str, Any]:
    body = wire.chat_completion(completion_id, created, model, answer.text or None,
                                answer.finish_reason, wire.record_usage(record),
                                smallcode={"route": record.to_json()})
    calls = tool_calls(answer)
    if calls:
        body["choices"][0]["message"]["tool_calls"] = calls
    return body


def chunks(answer: RoutedAnswer, record: RouteRecord, *, completion_id: str, created: int,
           model: str, include_usage: bool) -> Iterator[str]:
    """The routed answer as chunks: its text, each call (name, then its arguments), the
    finish reason with the route record, the usage where asked, then ``[DONE]``."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> str:
        return wire.chat_chunk(completion_id, created, model, delta, finish, **extra)

    if answer.text:
        yield chunk({"content": answer.text})
    for index, call in enumerate(tool_calls(answer)):
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"],
                                                  "arguments": ""}}]})
        yield chunk({"tool_calls": [{"index": index, "function": {
            "arguments": call["function"]["arguments"]}}]})
    usage = wire.record_usage(record)
    yield chunk({}, wire.finish_reason(answer.finish_reason), usage=usage,
                smallcode={"route": record.to_json()})
    if include_usage:
        yield chunk(None, usage=usage)
    yield wire.DONE


def error_chunk(found: Described) -> str:
    """An error once the stream has begun, in OpenAI's error shape, then ``[DONE]``."""
    return wire.error_event(found.message, found.type, found.param, found.code) + wire.DONE


async def respond(turn: turns.Turn, body: ChatCompletionRequest, *, completion_id: str,
                  created: int) -> Any:
    if not body.stream:
        answer, record = await turns.answer(turn)
        return completion(answer, record, completion_id=completion_id, created=created,
                          model=body.model)
    opening = wire.chat_chunk(completion_id, created, body.model,
                              {"role": "assistant", "content": ""})
    events = turns.stream(
        turn, await turns.begin(turn), opening=[opening], keepalive=wire.KEEPALIVE,
        events=lambda answer, record: chunks(answer, record, completion_id=completion_id,
                                             created=created, model=body.model,
                                             include_usage=body.include_usage),
        error=error_chunk)
    return StreamingResponse(events, media_type="text/event-stream")
