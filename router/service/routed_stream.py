"""A routed chat as a live stream (model ``auto`` with ``stream: true``).

The graph runs in a thread and reports its progress (:mod:`router.graph.progress`). The
response starts as soon as the route is known: at once when the local path runs (it sends SSE
comment keep-alives while the local model answers and the judge decides, then the served
answer), or with the cloud's first token when a hard rule sent the task straight there (the
tokens then stream as they arrive; an escalated task's cloud tokens stream the same way). So
a refusal that comes first (bad input, policy, budget, a provider's 401) is still a plain HTTP
error; one that comes after the stream has started arrives as an ``error`` event. The final
chunk carries the route record; with ``stream_options.include_usage`` one more chunk carries
the usage. A client that leaves stops the run at its next token, and what ran is recorded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from router.run.caller import Caller
from router.run.outcome import RouteRecord, StopReason
from router.run.runner import Event, Quiet, Run
from router.run.stopping import REASON as STOPPING
from router.run.stopping import ServerStopping
from router.service import openai_wire as wire
from router.service.accounting import account, request_started
from router.store.connect import store_failed

KEEPALIVE_S = 0.5  # an SSE comment this often while nothing else is sent
HOLD_S = 0.5  # how long a cloud-bound response waits for the first token before it starts


async def _hold(run: Run) -> list[Event]:
    """Wait until the route is known (and, for the cloud, its first token came or ``HOLD_S``
    passed); the events read meanwhile, to be sent once the response starts. Raises the
    graph's error if it failed before that."""
    held: list[Event] = []
    deadline: float | None = None
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        event = await run.next_event(timeout)
        if event is None:
            return held
        held.append(event)
        kind, data = event
        if kind == "end":
            failure = run.failure()
            if failure is not None:
                raise failure
            return held
        if kind == "token" and data["tier"] == "cloud":
            return held
        if kind == "node" and data.get("node") == "policy":
            decision = data.get("decision")
            if not decision or decision.get("route") != "cloud":
                return held  # the local path: start now, keep the client alive while it runs
            deadline = time.monotonic() + HOLD_S


async def routed_stream(request: Request, *, graph: Any, task: dict[str, Any], context: Any,
                        caller: Caller, completion_id: str, created: int,
                        include_usage: bool) -> StreamingResponse:
    started = request_started(request)
    run = Run(graph, task, context)
    try:
        held = await _hold(run)
    except BaseException:
        if not run.work.done():
            run.cancel.set()
        raise
    return StreamingResponse(_events(request, run, held, caller=caller,
                                     completion_id=completion_id, created=created,
                                     include_usage=include_usage, started=started),
                             media_type="text/event-stream")


def _chunk(completion_id: str, created: int, delta: dict[str, Any] | None,
           finish: str | None = None, **extra: Any) -> str:
    return wire.chat_chunk(completion_id, created, "auto", delta, finish, **extra)


async def _error_event(request: Request, exc: BaseException) -> str:
    """The error a plain response would have carried, as an event (the app's own handlers
    choose the message: no stack trace or secret)."""
    handlers = request.app.exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), handlers[Exception])
    response = await handler(request, exc)
    return f"data: {response.body.decode()}\n\n"


async def _events(request: Request, run: Run, held: list[Event], *, caller: Caller,
                  completion_id: str, created: int, include_usage: bool,
                  started: float) -> AsyncIterator[str]:
    accounted = False
    reason: StopReason = "client_disconnected"
    try:
        yield _chunk(completion_id, created, {"role": "assistant", "content": ""})
        streamed: list[str] = []
        quiet = Quiet(KEEPALIVE_S)
        with request.app.state.stopping.watch(run.cut):
            while True:
                event = held.pop(0) if held else await run.next_event(quiet.left_s())
                if quiet.due():  # the local model's tokens are events, but the client hears
                    yield wire.KEEPALIVE  # nothing of them: keep it alive by the clock
                if event is None:
                    continue
                kind, data = event
                if kind == "end":
                    break
                if kind == "cut":  # the server is stopping: stop here, recorded below
                    reason = STOPPING
                    yield await _error_event(request, ServerStopping())
                    yield wire.DONE
                    return
                if kind == "token" and data["tier"] == "cloud":
                    streamed.append(data["text"])
                    quiet.sent()
                    yield _chunk(completion_id, created, {"content": data["text"]})
        failure = run.failure()
        if failure is not None:
            accounted = True  # a failed request writes no ledger entry (as a plain one)
            yield await _error_event(request, failure)
            yield wire.DONE
            return
        answer = run.work.result()
        record = RouteRecord.routed(answer.record)
        sent = "".join(streamed)  # the cloud's tokens, streamed as they came
        rest = answer.text[len(sent):] if answer.text.startswith(sent) else answer.text
        if rest:  # the judged local answer (or what the cloud's stream did not carry)
            yield _chunk(completion_id, created, {"content": rest})
        accounted = True
        try:
            await account(request, caller, request_id=completion_id, source="chat",
                          record=record, started=started)
        except Exception as exc:  # the store failed past redis.answered_outage_s
            if not store_failed(exc):
                raise
            yield await _error_event(request, exc)  # its 503, as a plain request's
            yield wire.DONE
            return
        request.state.route, request.state.route_reason = record.final, record.reason
        usage = wire.record_usage(record)
        yield _chunk(completion_id, created, {}, wire.finish_reason(answer.finish_reason),
                     usage=usage,
                     smallcode={"route": record.to_json()})
        if include_usage:
            yield _chunk(completion_id, created, None, usage=usage)
        yield wire.DONE
    finally:
        if not accounted:  # the client left, or the server stops: stop the run, record it
            with anyio.CancelScope(shield=True):
                await run.stop()
                run.pending()  # count what it streamed before it stopped
                stopped = run.stopped_record(reason)
                if stopped is not None:  # None: it failed on its own (no entry, as a plain one)
                    await account(request, caller, request_id=completion_id, source="chat",
                                  record=stopped, started=started)
