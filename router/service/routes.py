"""Routes of the OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from agents.base import Backend, Generation, GenerationRequest, Message, TokenLogprob
from router.service.errors import APIError
from router.service.schemas import ChatCompletionRequest

router = APIRouter(prefix="/v1")


def _tiers(request: Request) -> dict[str, Backend]:
    tiers: dict[str, Backend] = request.app.state.tiers
    return tiers


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "smallcode",
             "backend": backend.model_name}
            for name, backend in _tiers(request).items()
        ],
    }


def _logprob_json(entry: TokenLogprob) -> dict[str, Any]:
    return {
        "token": entry.token,
        "logprob": entry.logprob,
        "bytes": list(entry.token.encode()),
        "top_logprobs": [
            {"token": a.token, "logprob": a.logprob, "bytes": list(a.token.encode())}
            for a in entry.top
        ],
    }


def _with_top(entry: TokenLogprob, k: int) -> TokenLogprob:
    return TokenLogprob(entry.token, entry.logprob, entry.top[:k])


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    tiers = _tiers(request)
    if body.model not in tiers:
        raise APIError(404, f"model {body.model!r} does not exist: use one of {', '.join(tiers)}",
                       param="model", code="model_not_found")
    if body.top_logprobs and not body.logprobs:
        raise APIError(400, "top_logprobs: requires logprobs to be true", param="top_logprobs")
    backend = tiers[body.model]
    k = body.top_logprobs or 0
    generation_request = GenerationRequest(
        messages=tuple(Message(m.role, m.text()) for m in body.messages),
        max_tokens=body.limit,
        temperature=body.temperature,
        top_logprobs=max(k, 2),
        stop=tuple(body.stop or ()),
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        # Start the stream before answering, so a bad request fails as a normal error.
        events = backend.stream(generation_request)
        first = await run_in_threadpool(next, events, None)
        return StreamingResponse(
            _sse(events, first, body, completion_id, created, k),
            media_type="text/event-stream",
        )
    generation = await run_in_threadpool(backend.generate, generation_request)
    return _completion(generation, body, completion_id, created, k)


def _completion(generation: Generation, body: ChatCompletionRequest, completion_id: str,
                created: int, k: int) -> dict[str, Any]:
    logprobs = None
    if body.logprobs and generation.logprobs is not None:
        logprobs = {"content": [_logprob_json(_with_top(t, k)) for t in generation.logprobs]}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": body.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "logprobs": logprobs,
            "finish_reason": "length" if generation.finish_reason == "length" else "stop",
        }],
        "usage": {
            "prompt_tokens": generation.usage.prompt_tokens,
            "completion_tokens": generation.usage.completion_tokens,
            "total_tokens": generation.usage.total_tokens,
        },
        "smallcode": {"route": body.model, "backend": generation.model,
                      "cost_usd": generation.cost_usd},
    }


def _sse(events: Iterator[Any], first: Any, body: ChatCompletionRequest, completion_id: str,
         created: int, k: int) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None,
              logprobs: Any = None, usage: Any = None) -> str:
        payload = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        }
        if usage is not None:
            payload["usage"] = usage
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    item = first
    try:
        while item is not None:
            if isinstance(item, Generation):
                usage = {"prompt_tokens": item.usage.prompt_tokens,
                         "completion_tokens": item.usage.completion_tokens,
                         "total_tokens": item.usage.total_tokens}
                finish = "length" if item.finish_reason == "length" else "stop"
                yield chunk({}, finish, usage=usage)
            elif item.text or (body.logprobs and item.logprob is not None):
                logprobs = None
                if body.logprobs and item.logprob is not None:
                    logprobs = {"content": [_logprob_json(_with_top(item.logprob, k))]}
                yield chunk({"content": item.text}, logprobs=logprobs)
            item = next(events, None)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a client that hung up releases the model at once
    yield "data: [DONE]\n\n"
