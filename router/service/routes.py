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
    models = [{"id": "auto", "object": "model", "created": 0, "owned_by": "smallcode",
               "backend": "router"}]
    models += [
        {"id": name, "object": "model", "created": 0, "owned_by": "smallcode",
         "backend": backend.model_name}
        for name, backend in _tiers(request).items()
    ]
    return {"object": "list", "data": models}


def _task(body: ChatCompletionRequest) -> dict[str, Any]:
    """A routed task from a chat request: the last user turn is the task; earlier turns
    travel with it as a transcript."""
    users = [i for i, m in enumerate(body.messages) if m.role == "user"]
    if not users:
        raise APIError(400, "messages: needs at least one user message", param="messages")
    last = users[-1]
    earlier = [m for m in body.messages[:last] if m.role != "system"]
    prompt = body.messages[last].text()
    if earlier:
        transcript = "\n\n".join(f"{m.role}: {m.text()}" for m in earlier)
        prompt = f"Conversation so far:\n{transcript}\n\nNow: {prompt}"
    task: dict[str, Any] = {"prompt": prompt, "max_tokens": body.limit,
                            "route": body.route or "auto"}
    system = [m.text() for m in body.messages if m.role == "system"]
    if system:
        task["system"] = "\n\n".join(system)
    for key in ("files", "repo", "team", "type"):
        if getattr(body, key) is not None:
            task[key] = getattr(body, key)
    return task


async def _routed(body: ChatCompletionRequest, request: Request, completion_id: str,
                  created: int) -> Any:
    from router.graph.graph import run_task

    context = request.app.state.router_context
    task = _task(body)
    answer = await run_in_threadpool(run_task, request.app.state.graph, task,  # type: ignore[arg-type]
                                     context)
    record = answer.record
    usage = {"prompt_tokens": record["tokens"]["prompt"],
             "completion_tokens": record["tokens"]["completion"],
             "total_tokens": record["tokens"]["prompt"] + record["tokens"]["completion"]}
    if body.stream:
        def events() -> Iterator[str]:
            base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": "auto"}
            for delta, finish in (({"role": "assistant", "content": answer.text}, None),
                                  ({}, "stop")):
                chunk = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish}]}
                if finish:
                    chunk["usage"] = usage
                    chunk["smallcode"] = {"route": record}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": "auto",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
        "smallcode": {"route": record},
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
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.model == "auto":
        return await _routed(body, request, completion_id, created)
    if body.model not in tiers:
        raise APIError(404, f"model {body.model!r} does not exist: use auto, "
                       f"{', '.join(tiers)}", param="model", code="model_not_found")
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
