"""``POST /v1/completions``: inline completion for editors (OpenAI's legacy completions shape).

``prompt`` is the code before the cursor and ``suffix`` the code after it: the local model
fills in the middle with its own FIM tokens. Always local, never escalated, no retrieval;
recorded in the ledger like every request (route ``local``, reason ``task_type``, cost 0).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import ConfigDict, Field, field_validator

from agents.base import Backend, Generation, InfillRequest, TokenEvent
from agents.cloud import price
from agents.errors import FimUnsupported
from router.run.ahead import ReadAhead
from router.run.outcome import RouteRecord, StopReason
from router.run.stopping import REASON as STOPPING
from router.run.stopping import ServerStopping, Stopping
from router.service import openai_wire as wire
from router.service.accounting import account, admit, request_started
from router.service.deps import CallerDep
from router.service.errors import APIError, describe
from router.service.schemas import TextBody, stop_list

router = APIRouter(prefix="/v1")

MODELS = ("auto", "local")  # both mean the local model: completions never leave the machine


class CompletionRequest(TextBody):
    # Unknown OpenAI fields (user, seed, best_of, presence_penalty, …) are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="auto or local (both: the local model)")
    prompt: str | list[str] = Field("", description="the code before the cursor")
    suffix: str | None = Field(None, description="the code after the cursor")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="only one choice is generated")
    echo: bool = Field(False, description="not supported: must be false")
    logprobs: int | None = Field(None, description="not supported for completions")

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        if isinstance(value, list):
            if len(value) != 1:
                raise ValueError("give one prompt (a string, or a list of one string)")
            return value[0]
        return value

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        return stop_list(value)

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool) -> bool:
        if value:
            raise ValueError("echo is not supported: leave it out or set it to false")
        return value

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: int | None) -> int | None:
        if value:
            raise ValueError("logprobs are not returned for completions: leave it out")
        return None


def _local(request: Request) -> Backend:
    backend: Backend = request.app.state.tiers["local"]
    return backend


def _record(request: Request, generation: Generation | None, *, streamed: int = 0,
            started: float, stopped: StopReason = "client_disconnected") -> RouteRecord:
    """The route record of a completion: local by task type, free, with what it would have
    cost in the cloud."""
    prompt = generation.usage.prompt_tokens if generation else 0
    completion = generation.usage.completion_tokens if generation else streamed
    counterfactual = price(request.app.state.settings.cloud.price_as, prompt, completion)
    timings_ms = {"total": round((time.perf_counter() - started) * 1000, 2)}
    extra: dict[str, Any] = {}
    if generation is not None:
        extra["model"] = generation.model
        if generation.timings.first_token_ms is not None:
            timings_ms["first_token"] = round(generation.timings.first_token_ms, 2)
        extra.update({key: generation.extra[key] for key in
                      ("cached_prompt_tokens", "moved_prompt_tokens", "window")
                      if key in generation.extra})
    return RouteRecord.direct(
        route="local", prompt_tokens=prompt, completion_tokens=completion, cost_usd=0.0,
        counterfactual_usd=counterfactual, reason="task_type", task_type="complete",
        timings_ms=timings_ms,
        finish_reason=stopped if generation is None else None, **extra)


@router.post("/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, caller: CallerDep) -> Any:
    settings = request.app.state.settings.completions
    if body.model not in MODELS:
        raise APIError(404, f"model {body.model!r} does not exist for completions: use auto or "
                       "local (inline completion always runs on the local model)",
                       param="model", code="model_not_found")
    assert isinstance(body.prompt, str)  # the validator made it one string
    if not body.prompt and not body.suffix:
        raise APIError(400, "prompt: prompt and suffix are both empty; send the code before the "
                       "cursor as prompt (and the code after it as suffix)", param="prompt")
    max_tokens = body.max_tokens or settings.default_max_tokens
    if max_tokens > settings.max_tokens:
        raise APIError(400, f"max_tokens: {max_tokens} is more than this service allows for "
                       f"completions ({settings.max_tokens}, completions.max_tokens)",
                       param="max_tokens")
    backend = _local(request)
    if body.suffix is not None and not backend.supports_fim:
        raise APIError(400, f"suffix: model {backend.model_name} cannot fill in the middle; send "
                       "the request without suffix", param="suffix", code="fim_unsupported")
    run_caller = caller.run_as(request, caller.serving_team(None))
    await admit(request, run_caller)
    request.state.route, request.state.route_reason = "local", "task_type"
    infill = InfillRequest(
        prefix=body.prompt, suffix=body.suffix, max_tokens=max_tokens,
        temperature=body.temperature, stop=tuple(body.stop or ()),
        prefix_tokens=settings.prefix_tokens, suffix_tokens=settings.suffix_tokens,
        stop_at_block_end=settings.stop_at_block_end, order=settings.fim_order,
        reuse_min_tokens=settings.reuse_min_tokens,
        reuse_refresh_tokens=settings.reuse_refresh_tokens)
    completion_id = f"cmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    started = request_started(request)
    events = ReadAhead(backend.infill(infill))
    try:
        # The first step runs here, so a refusal (no FIM tokens, prompt too long) is an error
        # response, not a broken stream.
        first = await events.next()
    except FimUnsupported as exc:
        raise APIError(400, str(exc), param="suffix", code="fim_unsupported") from None

    async def done(generation: Generation | None, streamed: int,
                   stopped: StopReason = "client_disconnected") -> RouteRecord:
        record = _record(request, generation, streamed=streamed, started=started,
                         stopped=stopped)
        await account(request, run_caller, request_id=completion_id, source="completions",
                      record=record, started=started, generation=generation)
        return record

    base = {"id": completion_id, "object": "text_completion", "created": created,
            "model": body.model}
    if body.stream:
        return StreamingResponse(_sse(events, first, base, done, request.app.state.stopping),
                                 media_type="text/event-stream")
    generation = await _drain(events, first)
    record = await done(generation, 0)
    return wire.text_completion(base, generation.text, wire.finish_reason(generation.finish_reason),
                                usage=wire.generation_usage(generation),
                                smallcode={"route": record.to_json()})


async def _drain(events: ReadAhead[TokenEvent | Generation], first: Any) -> Generation:
    item = first
    while item is not None:
        if isinstance(item, Generation):
            return item
        item = await events.next()
    raise RuntimeError("the local backend ended its stream without a result")  # pragma: no cover


async def _sse(events: ReadAhead[TokenEvent | Generation], first: Any, base: dict[str, Any],
               done: Any, stopping: Stopping) -> AsyncIterator[str]:
    """Server-sent events: one chunk per piece of text, a last one with the finish reason, the
    usage and the route record, then ``[DONE]``. A client that hangs up stops the model, and
    so does the server's stop (then an error event says so); what ran is recorded either way."""
    def chunk(text: str, finish: str | None = None, **extra: Any) -> str:
        return wire.event(wire.text_completion(base, text, finish, **extra))

    item, streamed, accounted = first, 0, False
    reason: StopReason = "client_disconnected"
    cut: ServerStopping | None = None
    try:
        with stopping.watch(events.cut):
            while item is not None:
                if isinstance(item, Generation):
                    accounted = True
                    record = await done(item, streamed)
                    yield chunk("", wire.finish_reason(item.finish_reason),
                                usage=wire.generation_usage(item),
                                smallcode={"route": record.to_json()})
                else:
                    streamed += 1
                    if item.text:
                        yield chunk(item.text)
                item = await events.next()
    except ServerStopping as exc:
        cut, reason = exc, STOPPING
    finally:
        with anyio.CancelScope(shield=True):
            await events.close()  # a client that hung up frees the model at its next token
            if not accounted:
                left = events.pending()
                generation = next((i for i in left if isinstance(i, Generation)), None)
                await done(generation, streamed + sum(isinstance(i, TokenEvent) for i in left),
                           reason)
    if cut is not None:
        found = describe(cut)
        yield wire.error_event(found.message, found.type, found.param, found.code)
    yield wire.DONE
