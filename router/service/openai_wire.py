"""OpenAI's wire shapes, in one place: the usage object, finish reasons, streamed chunks and
server-sent events. The chat and completions adapters build their responses from these."""

from __future__ import annotations

import json
from typing import Any

from agents.base import Generation
from router.run.outcome import RouteRecord


def finish_reason(reason: str | None) -> str:
    """Our finish reasons in OpenAI's words: ``length`` when max_tokens cut the answer, else
    ``stop``."""
    return "length" if reason == "length" else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def generation_usage(generation: Generation) -> dict[str, int]:
    """The usage of one generation, as its tier counted it."""
    return usage(generation.usage.prompt_tokens, generation.usage.completion_tokens)


def record_usage(record: RouteRecord) -> dict[str, int]:
    """The usage of a routed answer, as its route record counts it."""
    return usage(record.tokens.prompt, record.tokens.completion)


def event(payload: dict[str, Any]) -> str:
    """One server-sent event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload)}\n\n"


DONE = "data: [DONE]\n\n"
KEEPALIVE = ": keep-alive\n\n"


def chat_chunk(completion_id: str, created: int, model: str, delta: dict[str, Any] | None,
               finish: str | None = None, logprobs: Any = None, **extra: Any) -> str:
    """A ``chat.completion.chunk`` event: one choice with ``delta`` (None: no choice, as the
    usage chunk of ``stream_options.include_usage``), then ``extra`` (usage, smallcode)."""
    payload: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk",
                               "created": created, "model": model}
    payload["choices"] = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
    payload.update(extra)
    return event(payload)
