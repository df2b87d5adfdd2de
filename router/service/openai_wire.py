"""OpenAI's wire shapes, in one place: the usage object, finish reasons, streamed chunks and
server-sent events. The chat and completions adapters build their responses from these."""

from __future__ import annotations

import json
from typing import Any

from agents.base import Generation, TokenLogprob
from router.run.outcome import RouteRecord


def finish_reason(reason: str | None) -> str:
    """Our finish reasons in OpenAI's words: ``length`` when max_tokens cut the answer,
    ``tool_calls`` when it calls tools, else ``stop``."""
    return reason if reason in ("length", "tool_calls") else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def generation_usage(generation: Generation) -> dict[str, int]:
    """The usage of one generation, as its tier counted it."""
    return usage(generation.usage.prompt_tokens, generation.usage.completion_tokens)


def record_usage(record: RouteRecord) -> dict[str, Any]:
    """The usage of a routed answer, as its route record counts it (with the prompt tokens
    the cloud read from its prompt cache, where it did)."""
    out: dict[str, Any] = usage(record.tokens.prompt, record.tokens.completion)
    if record.tokens.cloud_cache_read:
        out["prompt_tokens_details"] = {"cached_tokens": record.tokens.cloud_cache_read}
    return out


def logprob(entry: TokenLogprob, k: int) -> dict[str, Any]:
    """One token's logprob with its ``k`` most likely alternatives (``logprobs.content[i]``)."""
    return {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": list(entry.token.encode()),
        "top_logprobs": [
            {"token": a.token, "logprob": a.logprob, "bytes": list(a.token.encode())}
            for a in entry.top[:k]
        ],
    }


def chat_completion(completion_id: str, created: int, model: str, text: str | None,
                    finish: str | None, usage: dict[str, int], logprobs: Any = None,
                    **extra: Any) -> dict[str, Any]:
    """A ``chat.completion``: one assistant message, its finish reason in OpenAI's words and
    the usage, then ``extra`` (smallcode)."""
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": logprobs, "finish_reason": finish_reason(finish)}],
        "usage": usage, **extra,
    }


def text_completion(base: dict[str, Any], text: str, finish: str | None = None,
                    **extra: Any) -> dict[str, Any]:
    """A ``text_completion``, whole or one streamed chunk: ``base`` holds its id, object,
    created and model; ``finish`` is already in OpenAI's words (:func:`finish_reason`), None
    on a chunk before the last."""
    return {**base, "choices": [{"text": text, "index": 0, "logprobs": None,
                                 "finish_reason": finish}], **extra}


def event(payload: dict[str, Any]) -> str:
    """One server-sent event carrying ``payload`` as JSON."""
    return f"data: {json.dumps(payload)}\n\n"


def error_event(message: str, type_: str, param: str | None = None,
                code: str | None = None) -> str:
    """An error once a stream has begun (its status line went out), in OpenAI's shape."""
    return event({"error": {"message": message, "type": type_, "param": param, "code": code}})


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
