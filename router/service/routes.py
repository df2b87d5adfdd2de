"""Routes of the OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
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


def task_from_chat(body: ChatCompletionRequest) -> dict[str, Any]:
    """A routed task from a chat request: the last user turn is the task; the earlier turns
    travel with it as messages (``history``), the system messages as its system prompt."""
    last = max(i for i, m in enumerate(body.messages) if m.role == "user")  # the schema has one
    history = [{"role": m.role, "content": m.text()} for m in body.messages[:last]
               if m.role != "system"]
    task: dict[str, Any] = {"prompt": body.messages[last].text(), "max_tokens": body.limit,
                            "route": body.route or "auto"}
    if history:
        task["history"] = history
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
                                  cloud_gate=gate_for(state.redis, state.names, caller.key, team,
                                                      state.settings.policies.for_team(team),
                                                      state.settings.cloud))
    task = {**task_from_chat(body), "team": team}
    if caller.key is not None and caller.key.local_only:
        task["route"] = "local"  # this key never reaches the cloud
    if body.stream:
        from router.service.routed_stream import routed_stream

        return await routed_stream(request, graph=state.graph, task=task, context=context,
                                   caller=caller, team=team, completion_id=completion_id,
                                   created=created, include_usage=body.include_usage)
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
    if body.model == "cloud" and request.app.state.settings.policies.for_team(team).local_only:
        raise APIError(403, f"model: team {team!r} is local-only (privacy policy); use model "
                       "'local' or 'auto'", type_="permission_error", param="model",
                       code="local_only")
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
        gate, token = await _reserve(request, caller, team, body.model, generation_request)
        # Start the stream before answering, so a bad request fails as a normal error.
        events = backend.stream(generation_request)
        try:
            first = await run_in_threadpool(next, events, None)
        except BaseException:
            if token is not None:
                await run_in_threadpool(gate.release, token)  # type: ignore[union-attr]
            raise

        async def done(generation: Generation | None, streamed: int) -> dict[str, Any]:
            """Settle and record what ran: the whole answer, or what was streamed before the
            client went away (then the generation was stopped)."""
            record = (_direct_record(request, body.model, generation) if generation else
                      _partial_record(request, body.model, generation_request, streamed))
            if token is not None:
                await run_in_threadpool(gate.settle, token, record["cost_usd"])  # type: ignore[union-attr]
            await account(request, caller, request_id=completion_id, team=team, source="chat",
                          record=record, started=started,
                          first_token_ms=_first_token_ms(generation, started))
            return record

        return StreamingResponse(
            _sse(events, first, body, completion_id, created, k, done),
            media_type="text/event-stream",
        )
    generation = await _generate_direct(request, caller, team, body.model, backend,
                                        generation_request)
    record = _direct_record(request, body.model, generation)
    await account(request, caller, request_id=completion_id, team=team, source="chat",
                  record=record, started=started,
                  first_token_ms=_first_token_ms(generation, started))
    return _completion(generation, body, completion_id, created, k, record)


async def _reserve(request: Request, caller: Caller, team: str, model: str,
                   generation_request: GenerationRequest) -> tuple[Any, object | None]:
    """For a cloud call under a key with a budget: the gate and a reservation of the worst
    case (429 when it does not fit); otherwise (None, None)."""
    from router.service.budget import gate_for

    state = request.app.state
    gate = gate_for(state.redis, state.names, caller.key, team,
                    state.settings.policies.for_team(team),
                    state.settings.cloud) if model == "cloud" else None
    if gate is None:
        return None, None
    from agents.cloud import price

    worst = price(state.settings.cloud.price_as, _prompt_tokens(request, generation_request),
                  generation_request.max_tokens)
    token = await run_in_threadpool(gate.reserve, worst)
    if token is None:
        from router.graph.errors import BudgetExceeded

        raise BudgetExceeded(gate.retry_after_s)
    return gate, token


def _prompt_tokens(request: Request, generation_request: GenerationRequest) -> int:
    count = request.app.state.router_context.count_tokens
    return int(count("\n".join(m.content for m in generation_request.messages)))


async def _generate_direct(request: Request, caller: Caller, team: str, model: str,
                           backend: Backend, generation_request: GenerationRequest) -> Generation:
    """Generate on the named tier; a cloud call holds the key's budget like a routed one."""
    gate, token = await _reserve(request, caller, team, model, generation_request)
    if token is None:
        return await run_in_threadpool(backend.generate, generation_request)
    try:
        generation = await run_in_threadpool(backend.generate, generation_request)
    except BaseException:
        await run_in_threadpool(gate.release, token)
        raise
    await run_in_threadpool(gate.settle, token, generation.cost_usd or 0.0)
    return generation


def _first_token_ms(generation: Generation | None, started: float) -> float | None:
    """From the request's start to the tier's first token, when the tier measured it."""
    if generation is None or generation.timings.first_token_ms is None:
        return None
    overhead_ms = (time.perf_counter() - started) * 1000 - generation.timings.total_ms
    return max(0.0, overhead_ms) + generation.timings.first_token_ms


def _partial_record(request: Request, model: str, generation_request: GenerationRequest,
                    streamed: int) -> dict[str, Any]:
    """What a stream the client left cost: its prompt and the tokens generated so far."""
    from agents.cloud import price

    prompt = _prompt_tokens(request, generation_request)
    priced = price(request.app.state.settings.cloud.price_as, prompt, streamed)
    return {**direct_record(route=model, prompt_tokens=prompt, completion_tokens=streamed,
                            cost_usd=priced if model == "cloud" else 0.0,
                            counterfactual_usd=priced),
            "finish_reason": "client_disconnected"}


def _direct_record(request: Request, model: str, generation: Generation) -> dict[str, Any]:
    from agents.cloud import price

    prompt, completion = generation.usage.prompt_tokens, generation.usage.completion_tokens
    counterfactual = price(request.app.state.settings.cloud.price_as, prompt, completion)
    return direct_record(route=model, prompt_tokens=prompt, completion_tokens=completion,
                         cost_usd=generation.cost_usd or 0.0, counterfactual_usd=counterfactual,
                         backend=generation.model, finish_reason=generation.finish_reason)


def _completion(generation: Generation, body: ChatCompletionRequest, completion_id: str,
                created: int, k: int, record: dict[str, Any]) -> dict[str, Any]:
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
        "smallcode": {"route": record, "backend": generation.model,
                      "cost_usd": generation.cost_usd},
    }


async def _sse(events: Iterator[Any], first: Any, body: ChatCompletionRequest, completion_id: str,
               created: int, k: int,
               done: Callable[[Generation | None, int], Awaitable[dict[str, Any]]]) -> AsyncIterator[str]:
    """The stream's events as server-sent events; ``done`` runs once at the end, also when the
    client hangs up (then with what was streamed so far, after the generation is stopped)."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None,
              logprobs: Any = None, **extra: Any) -> str:
        payload = {
            "id": completion_id, "object": "chat.completion.chunk", "created": created,
            "model": body.model,
            "choices": [] if delta is None else [
                {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(payload)}\n\n"

    item = first
    streamed, accounted = 0, False
    try:
        yield chunk({"role": "assistant", "content": ""})
        while item is not None:
            if isinstance(item, Generation):
                usage = {"prompt_tokens": item.usage.prompt_tokens,
                         "completion_tokens": item.usage.completion_tokens,
                         "total_tokens": item.usage.total_tokens}
                finish = _finish(item.finish_reason)
                accounted = True
                record = await done(item, streamed)
                yield chunk({}, finish, usage=usage, smallcode={"route": record})
                if body.include_usage:
                    yield chunk(None, usage=usage)
            else:
                streamed += 1
                if item.text or (body.logprobs and item.logprob is not None):
                    logprobs = None
                    if body.logprobs and item.logprob is not None:
                        logprobs = {"content": [_logprob_json(_with_top(item.logprob, k))]}
                    yield chunk({"content": item.text}, logprobs=logprobs)
            item = await run_in_threadpool(next, events, None)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # a client that hung up releases the model at once
        if not accounted:
            with anyio.CancelScope(shield=True):  # the client is gone; the charge is not
                await done(None, streamed)
    yield "data: [DONE]\n\n"
