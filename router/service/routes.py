"""Routes of the OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from agents.base import Backend, Generation, GenerationRequest, Message, TokenLogprob
from router.graph.validation import NOT_TEXT, unencodable_field
from router.service.accounting import account, admit, direct_record
from router.service.deps import Caller, CallerDep
from router.service.errors import APIError
from router.service.schemas import ChatCompletionRequest

router = APIRouter(prefix="/v1")


def _tiers(request: Request) -> dict[str, Backend]:
    tiers: dict[str, Backend] = request.app.state.tiers
    return tiers


@router.get("/models")
async def list_models(request: Request, _: CallerDep) -> dict[str, Any]:
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
    last = max(i for i, m in enumerate(body.messages) if m.role == "user")  # the schema has one
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
                  created: int, caller: Caller, team: str) -> Any:
    from router.graph.graph import run_task
    from router.service.budget import gate_for

    state = request.app.state
    started = time.perf_counter()
    context = dataclasses.replace(state.router_context,
                                  cloud_gate=gate_for(state.redis, state.names, caller.key))
    task = {**_task(body), "team": team}
    if caller.key is not None and caller.key.local_only:
        task["route"] = "local"  # this key never reaches the cloud
    answer = await run_in_threadpool(run_task, state.graph, task,  # type: ignore[arg-type]
                                     context)
    record = answer.record
    await account(request, caller, request_id=completion_id, team=team, source="chat",
                  record=record, started=started)
    request.state.route, request.state.route_reason = record["final"], record["reason"]
    finish_reason = _finish(answer.finish_reason)
    usage = {"prompt_tokens": record["tokens"]["prompt"],
             "completion_tokens": record["tokens"]["completion"],
             "total_tokens": record["tokens"]["prompt"] + record["tokens"]["completion"]}
    if body.stream:
        def events() -> Iterator[str]:
            base = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                    "model": "auto"}
            for delta, finish in (({"role": "assistant", "content": answer.text}, None),
                                  ({}, finish_reason)):
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
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage,
        "smallcode": {"route": record},
    }


def _finish(reason: str) -> str:
    """Our finish reasons in OpenAI's words."""
    return "length" if reason == "length" else "stop"


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
async def chat_completions(body: ChatCompletionRequest, request: Request, caller: CallerDep) -> Any:
    tiers = _tiers(request)
    team = caller.serving_team(body.team)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    bad = unencodable_field(body.model_dump(), "")
    if bad is not None:
        raise APIError(400, f"{bad}: {NOT_TEXT}", param=bad)
    if body.model != "auto" and body.model not in tiers:
        raise APIError(404, f"model {body.model!r} does not exist: use auto, "
                       f"{', '.join(tiers)}", param="model", code="model_not_found")
    if body.top_logprobs and not body.logprobs:
        raise APIError(400, "top_logprobs: requires logprobs to be true", param="top_logprobs")
    if body.logprobs and (body.model == "auto" or not tiers[body.model].supports_logprobs):
        raise APIError(400, f"logprobs: model {body.model!r} cannot return them; ask model "
                       "'local' for logprobs, or leave logprobs and top_logprobs out",
                       param="logprobs")
    if caller.key is not None and caller.key.local_only and body.model == "cloud":
        raise APIError(403, "model: this key is local-only; use model 'local' or 'auto'",
                       type_="permission_error", param="model", code="local_only")
    await admit(request, caller)
    if body.model == "auto":
        return await _routed(body, request, completion_id, created, caller, team)
    request.state.route, request.state.route_reason = body.model, "requested"
    backend = tiers[body.model]
    started = time.perf_counter()
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
        def done(generation: Generation) -> None:  # on the stream's worker thread
            import anyio.from_thread

            anyio.from_thread.run(lambda: account(
                request, caller, request_id=completion_id, team=team, source="chat",
                record=_direct_record(request, body.model, generation), started=started))

        return StreamingResponse(
            _sse(events, first, body, completion_id, created, k, done),
            media_type="text/event-stream",
        )
    generation = await _generate_direct(request, caller, body.model, backend, generation_request)
    await account(request, caller, request_id=completion_id, team=team, source="chat",
                  record=_direct_record(request, body.model, generation), started=started)
    return _completion(generation, body, completion_id, created, k)


async def _generate_direct(request: Request, caller: Caller, model: str, backend: Backend,
                           generation_request: GenerationRequest) -> Generation:
    """Generate on the named tier; a cloud call holds the key's budget like a routed one."""
    from router.service.budget import gate_for

    state = request.app.state
    gate = gate_for(state.redis, state.names, caller.key) if model == "cloud" else None
    if gate is None:
        return await run_in_threadpool(backend.generate, generation_request)
    from agents.cloud import price

    prompt_tokens = state.router_context.count_tokens(
        "\n".join(m.content for m in generation_request.messages))
    worst = price(state.settings.cloud.price_as, prompt_tokens, generation_request.max_tokens)
    token = await run_in_threadpool(gate.reserve, worst)
    if token is None:
        from router.graph.errors import BudgetExceeded

        raise BudgetExceeded(gate.retry_after_s)
    try:
        generation = await run_in_threadpool(backend.generate, generation_request)
    except BaseException:
        await run_in_threadpool(gate.release, token)
        raise
    await run_in_threadpool(gate.settle, token, generation.cost_usd or 0.0)
    return generation


def _direct_record(request: Request, model: str, generation: Generation) -> dict[str, Any]:
    from agents.cloud import price

    prompt, completion = generation.usage.prompt_tokens, generation.usage.completion_tokens
    counterfactual = price(request.app.state.settings.cloud.price_as, prompt, completion)
    return direct_record(route=model, prompt_tokens=prompt, completion_tokens=completion,
                         cost_usd=generation.cost_usd or 0.0, counterfactual_usd=counterfactual)


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
            "finish_reason": _finish(generation.finish_reason),
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
         created: int, k: int, done: Callable[[Generation], None]) -> Iterator[str]:
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
                finish = _finish(item.finish_reason)
                done(item)
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
