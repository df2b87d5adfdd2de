"""Routes of the OpenAI-compatible API: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from agents.base import Backend, Generation, GenerationRequest, Message
from agents.cloud import price
from router.graph import spend
from router.run.ahead import ReadAhead
from router.run.caller import Caller as RunCaller
from router.run.outcome import RouteRecord, StopReason
from router.run.runner import Run
from router.run.stopping import REASON as STOPPING
from router.run.stopping import ServerStopping, Stopping
from router.service import chat_turns, turns
from router.service import openai_wire as wire
from router.service.accounting import account, admit, request_started
from router.service.deps import CallerDep
from router.service.errors import APIError, describe
from router.service.model_names import listed, team_route
from router.service.routed_stream import routed_stream
from router.service.schemas import ChatCompletionRequest
from router.service.turn_caller import turn_caller

router = APIRouter(prefix="/v1")


def _tiers(request: Request) -> dict[str, Backend]:
    tiers: dict[str, Backend] = request.app.state.tiers
    return tiers


@router.get("/models")
async def list_models(request: Request, identity: CallerDep) -> dict[str, Any]:
    """What a client may send as ``model``: auto (routed), the tiers, and the names of the
    caller's team's ``model_routes`` and of the aliases (globs such as ``claude-*`` match the
    names clients send)."""
    tiers = _tiers(request)
    settings = request.app.state.settings
    team_routes = settings.policies.for_team(identity.serving_team(None)).model_routes
    aliases = {**team_routes, **{name: route for name, route in settings.models.aliases.items()
                                 if name not in team_routes}}
    backends = {"auto": "router", **{name: b.model_name for name, b in tiers.items()}}
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "smallcode",
         "backend": backends.get(name, aliases.get(name, "router"))}
        for name in listed(aliases)]}


def task_from_chat(body: ChatCompletionRequest) -> dict[str, Any]:
    """A routed task from a chat request: the last user turn is the task; the earlier turns
    travel with it as messages (``history``), the system messages as its system prompt."""
    last = max(i for i, m in enumerate(body.messages) if m.role == "user")  # the schema has one
    history = [{"role": m.role, "content": m.text()} for m in body.messages[:last]
               if m.role not in ("system", "developer")]
    task: dict[str, Any] = {"prompt": body.messages[last].text(), "max_tokens": body.limit,
                            "route": body.route or "auto"}
    if history:
        task["history"] = history
    system = [m.text() for m in body.messages if m.role in ("system", "developer")]
    if system:
        task["system"] = "\n\n".join(system)
    for key in ("files", "repo", "team", "type"):
        if getattr(body, key) is not None:
            task[key] = getattr(body, key)
    return task


async def _routed(body: ChatCompletionRequest, request: Request, completion_id: str,
                  created: int, caller: RunCaller) -> Any:
    state = request.app.state
    started = request_started(request)
    context = caller.context(state.router_context)
    task = caller.task(task_from_chat(body))
    if body.stream:
        return await routed_stream(request, graph=state.graph, task=task, context=context,
                                   caller=caller, completion_id=completion_id,
                                   created=created, include_usage=body.include_usage)
    answer = await Run(state.graph, task, context, report=False).answer()
    record = RouteRecord.routed(answer.record)
    await account(request, caller, request_id=completion_id, source="chat",
                  record=record, started=started)
    request.state.route, request.state.route_reason = record.final, record.reason
    return wire.chat_completion(completion_id, created, "auto", answer.text,
                                answer.finish_reason, wire.record_usage(record),
                                smallcode={"route": record.to_json()})


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           identity: CallerDep) -> Any:
    tiers = _tiers(request)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    route = team_route(request, body.model, identity.serving_team(body.team))
    if body.top_logprobs and not body.logprobs:
        raise APIError(400, "top_logprobs: requires logprobs to be true", param="top_logprobs")
    if body.logprobs and (route == "auto" or not tiers[route].supports_logprobs):
        raise APIError(400, f"logprobs: model {body.model!r} cannot return them; ask model "
                       "'local' for logprobs, or leave logprobs and top_logprobs out",
                       param="logprobs")
    caller = turn_caller(request, identity, route, body.team)
    await admit(request, caller)
    if body.agent_turn:  # tools: routed as an agent's turn, whatever tier it names
        turn = turns.Turn(request, caller, chat_turns.task(body, route),
                          request_id=completion_id, source="chat")
        return await chat_turns.respond(turn, body, completion_id=completion_id,
                                        created=created)
    if route == "auto":
        return await _routed(body, request, completion_id, created, caller)
    request.state.route, request.state.route_reason = route, "requested"
    backend = tiers[route]
    started = request_started(request)
    k = body.top_logprobs or 0
    generation_request = GenerationRequest(
        messages=tuple(Message("system" if m.role == "developer" else m.role, m.text())
                       for m in body.messages),
        max_tokens=body.limit,
        temperature=body.temperature,
        top_logprobs=max(k, 2),
        stop=tuple(body.stop or ()),
    )
    gate = caller.gate if route == "cloud" else None
    priced = _priced(request, generation_request)
    if body.stream:
        # Start the stream before answering, so a bad request (or one over budget) fails as
        # a normal error.
        events = ReadAhead(spend.metered_stream(gate, backend.stream(generation_request),
                                                priced=priced,
                                                max_tokens=generation_request.max_tokens))
        first = await events.next()

        async def done(generation: Generation | None, streamed: int,
                       reason: StopReason) -> RouteRecord:
            """Record what ran: the whole answer, or what was streamed before it stopped (the
            client went away, or the server is stopping: then the generation was stopped, and
            its budget charged that much)."""
            record = (_direct_record(request, route, generation) if generation else
                      _partial_record(request, route, generation_request, streamed, reason))
            await account(request, caller, request_id=completion_id, source="chat",
                          record=record, started=started, generation=generation)
            return record

        return StreamingResponse(
            _sse(events, first, body, completion_id, created, k, done,
                 request.app.state.stopping),
            media_type="text/event-stream",
        )
    generation = await run_in_threadpool(functools.partial(
        spend.metered, gate, functools.partial(backend.generate, generation_request),
        priced=priced, max_tokens=generation_request.max_tokens))
    record = _direct_record(request, route, generation)
    await account(request, caller, request_id=completion_id, source="chat",
                  record=record, started=started, generation=generation)
    logprobs = None
    if body.logprobs and generation.logprobs is not None:
        logprobs = {"content": [wire.logprob(t, k) for t in generation.logprobs]}
    return wire.chat_completion(completion_id, created, body.model, generation.text,
                                generation.finish_reason, wire.generation_usage(generation),
                                logprobs, smallcode={"route": record.to_json(),
                                                     "backend": generation.model,
                                                     "cost_usd": generation.cost_usd})


def _left(items: list[Any]) -> tuple[Generation | None, int]:
    """What a stream generated that its client did not get: its generation, if it finished,
    and the number of tokens."""
    generation = next((i for i in items if isinstance(i, Generation)), None)
    return generation, sum(not isinstance(i, Generation) for i in items)


def _priced(request: Request, generation_request: GenerationRequest) -> Callable[[int], float]:
    """The price of this request's prompt with an answer of so many tokens (the prompt is
    counted at the first call: a request without a budget never needs it)."""
    price_as = request.app.state.settings.cloud.price_as
    prompt = functools.cache(lambda: _prompt_tokens(request, generation_request))
    return lambda completion: price(price_as, prompt(), completion)


def _prompt_tokens(request: Request, generation_request: GenerationRequest) -> int:
    count = request.app.state.router_context.count_tokens
    return int(count("\n".join(m.content for m in generation_request.messages)))


def _partial_record(request: Request, model: str, generation_request: GenerationRequest,
                    streamed: int, reason: StopReason) -> RouteRecord:
    """What a stream that stopped early cost: its prompt and the tokens generated so far."""
    prompt = _prompt_tokens(request, generation_request)
    priced = price(request.app.state.settings.cloud.price_as, prompt, streamed)
    cloud = model == "cloud"
    return RouteRecord.stopped(reason, prompt_tokens=prompt,
                               local_tokens=0 if cloud else streamed,
                               cloud_tokens=streamed if cloud else 0,
                               cost_usd=priced if cloud else 0.0, counterfactual_usd=priced,
                               requested="cloud" if cloud else "local")


def _direct_record(request: Request, model: str, generation: Generation) -> RouteRecord:
    prompt, completion = generation.usage.prompt_tokens, generation.usage.completion_tokens
    counterfactual = price(request.app.state.settings.cloud.price_as, prompt, completion)
    return RouteRecord.direct(route="cloud" if model == "cloud" else "local",
                              prompt_tokens=prompt, completion_tokens=completion,
                              cost_usd=generation.cost_usd or 0.0,
                              counterfactual_usd=counterfactual, backend=generation.model,
                              finish_reason=generation.finish_reason)


async def _sse(events: ReadAhead[Any], first: Any, body: ChatCompletionRequest, completion_id: str,
               created: int, k: int,
               done: Callable[[Generation | None, int, StopReason], Awaitable[RouteRecord]],
               stopping: Stopping) -> AsyncIterator[str]:
    """The stream's events as server-sent events; ``done`` runs once at the end, also when the
    client hangs up or the server stops (then with what was generated so far, after the
    generation is stopped)."""
    def chunk(delta: dict[str, Any] | None, finish: str | None = None,
              logprobs: Any = None, **extra: Any) -> str:
        return wire.chat_chunk(completion_id, created, body.model, delta, finish, logprobs,
                               **extra)

    item = first
    streamed, accounted = 0, False
    reason: StopReason = "client_disconnected"
    cut: ServerStopping | None = None
    try:
        with stopping.watch(events.cut):
            yield chunk({"role": "assistant", "content": ""})
            while item is not None:
                if isinstance(item, Generation):
                    usage = wire.generation_usage(item)
                    finish = wire.finish_reason(item.finish_reason)
                    accounted = True
                    record = await done(item, streamed, reason)
                    yield chunk({}, finish, usage=usage, smallcode={"route": record.to_json()})
                    if body.include_usage:
                        yield chunk(None, usage=usage)
                else:
                    streamed += 1
                    if item.text or (body.logprobs and item.logprob is not None):
                        logprobs = None
                        if body.logprobs and item.logprob is not None:
                            logprobs = {"content": [wire.logprob(item.logprob, k)]}
                        yield chunk({"content": item.text}, logprobs=logprobs)
                item = await events.next()
    except ServerStopping as exc:
        cut, reason = exc, STOPPING
    finally:
        with anyio.CancelScope(shield=True):  # the client is gone; the charge is not
            # A client that hung up releases the model at its next token, and a cloud stream
            # settles what it generated, sent or not.
            await events.close()
            if not accounted:
                generation, ran = _left(events.pending())
                await done(generation, streamed + ran, reason)
    if cut is not None:
        found = describe(cut)
        yield wire.error_event(found.message, found.type, found.param, found.code)
    yield wire.DONE
