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

import asyncio
import functools
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from router.graph.progress import TaskCancelled, run_graph
from router.service.accounting import account, direct_record
from router.service.deps import Caller

KEEPALIVE_S = 0.5  # an SSE comment this often while nothing else is sent
HOLD_S = 0.5  # how long a cloud-bound response waits for the first token before it starts
STOP_GRACE_S = 10.0  # how long a stream the client left waits for the graph to stop

Event = tuple[str, dict[str, Any]]


class _Run:
    """One graph run in a thread and the events it reports, in order."""

    def __init__(self, graph: Any, task: dict[str, Any], context: Any) -> None:
        loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.cancel = threading.Event()
        self.held: list[Event] = []  # read while deciding when to start, replayed after
        self.tokens = {"local": 0, "cloud": 0}
        self.prompt_tokens = 0

        def emit(kind: str, data: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self.events.put_nowait, (kind, data))

        self.work = loop.run_in_executor(None, functools.partial(
            run_graph, graph, task, context, cancel=self.cancel, emit=emit))
        # Runs after every event the thread emitted (both go through the loop in order).
        self.work.add_done_callback(lambda _: self.events.put_nowait(("end", {})))

    def note(self, event: Event) -> None:
        kind, data = event
        if kind == "token":
            self.tokens[data["tier"]] += 1
        elif kind == "node" and data.get("node") == "intake":
            self.prompt_tokens = int(data.get("prompt_tokens") or 0)

    async def hold(self) -> None:
        """Wait until the route is known (and, for the cloud, its first token came or
        ``HOLD_S`` passed); raises the graph's error if it failed before that."""
        deadline: float | None = None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                event = await asyncio.wait_for(self.events.get(), timeout)
            except TimeoutError:
                return
            self.note(event)
            self.held.append(event)
            kind, data = event
            if kind == "end":
                if self.work.exception() is not None:
                    raise self.work.exception()  # type: ignore[misc]
                return
            if kind == "token" and data["tier"] == "cloud":
                return
            if kind == "node" and data.get("node") == "policy":
                decision = data.get("decision")
                if not decision or decision.get("route") != "cloud":
                    return  # the local path: start now, keep the client alive while it runs
                deadline = time.monotonic() + HOLD_S

    async def next_event(self) -> Event | None:
        """The next event, or None after ``KEEPALIVE_S`` of silence."""
        if self.held:
            return self.held.pop(0)
        try:
            event = await asyncio.wait_for(self.events.get(), KEEPALIVE_S)
        except TimeoutError:
            return None
        self.note(event)
        return event


async def routed_stream(request: Request, *, graph: Any, task: dict[str, Any], context: Any,
                        caller: Caller, team: str, completion_id: str, created: int,
                        include_usage: bool) -> StreamingResponse:
    started = time.perf_counter()
    run = _Run(graph, task, context)
    try:
        await run.hold()
    except BaseException:
        if not run.work.done():
            run.cancel.set()
        raise
    return StreamingResponse(_events(request, run, caller=caller, team=team,
                                     completion_id=completion_id, created=created,
                                     include_usage=include_usage, started=started),
                             media_type="text/event-stream")


def _chunk(completion_id: str, created: int, delta: dict[str, Any] | None,
           finish: str | None = None, **extra: Any) -> str:
    payload: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk",
                               "created": created, "model": "auto"}
    payload["choices"] = [] if delta is None else [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    payload.update(extra)
    return f"data: {json.dumps(payload)}\n\n"


async def _error_event(request: Request, exc: BaseException) -> str:
    """The error a plain response would have carried, as an event (the app's own handlers
    choose the message: no stack trace or secret)."""
    handlers = request.app.exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), handlers[Exception])
    response = await handler(request, exc)
    return f"data: {response.body.decode()}\n\n"


async def _events(request: Request, run: _Run, *, caller: Caller, team: str,
                  completion_id: str, created: int, include_usage: bool,
                  started: float) -> AsyncIterator[str]:
    accounted = False
    try:
        yield _chunk(completion_id, created, {"role": "assistant", "content": ""})
        streamed: list[str] = []
        while True:
            event = await run.next_event()
            if event is None:
                yield ": keep-alive\n\n"
                continue
            kind, data = event
            if kind == "end":
                break
            if kind == "token" and data["tier"] == "cloud":
                streamed.append(data["text"])
                yield _chunk(completion_id, created, {"content": data["text"]})
        if run.work.exception() is not None:
            accounted = True  # a failed request writes no ledger entry (as a plain one)
            yield await _error_event(request, run.work.exception())  # type: ignore[arg-type]
            yield "data: [DONE]\n\n"
            return
        answer = run.work.result()
        record = answer.record
        sent = "".join(streamed)  # the cloud's tokens, streamed as they came
        rest = answer.text[len(sent):] if answer.text.startswith(sent) else answer.text
        if rest:  # the judged local answer (or what the cloud's stream did not carry)
            yield _chunk(completion_id, created, {"content": rest})
        accounted = True
        await account(request, caller, request_id=completion_id, team=team, source="chat",
                      record=record, started=started)
        request.state.route, request.state.route_reason = record["final"], record["reason"]
        usage = {"prompt_tokens": record["tokens"]["prompt"],
                 "completion_tokens": record["tokens"]["completion"],
                 "total_tokens": record["tokens"]["prompt"] + record["tokens"]["completion"]}
        finish = "length" if answer.finish_reason == "length" else "stop"
        yield _chunk(completion_id, created, {}, finish, usage=usage,
                     smallcode={"route": record})
        if include_usage:
            yield _chunk(completion_id, created, None, usage=usage)
        yield "data: [DONE]\n\n"
    finally:
        if not accounted:  # the client left: stop the run, record what ran
            with anyio.CancelScope(shield=True):
                await _stopped(request, run, caller=caller, team=team,
                               completion_id=completion_id, started=started)


async def _stopped(request: Request, run: _Run, *, caller: Caller, team: str,
                   completion_id: str, started: float) -> None:
    from agents.cloud import price

    run.cancel.set()
    await asyncio.wait([run.work], timeout=STOP_GRACE_S)
    while not run.events.empty():
        run.note(run.events.get_nowait())
    outcome = run.work.exception() if run.work.done() else None
    if run.work.done() and outcome is None:
        record = run.work.result().record  # it finished before it noticed
    elif outcome is None or isinstance(outcome, TaskCancelled):
        local, cloud = run.tokens["local"], run.tokens["cloud"]
        price_as = request.app.state.settings.cloud.price_as
        record = {**direct_record(route="cloud" if cloud else "local",
                                  prompt_tokens=run.prompt_tokens,
                                  completion_tokens=local + cloud,
                                  cost_usd=price(price_as, run.prompt_tokens, cloud) if cloud else 0.0,
                                  counterfactual_usd=price(price_as, run.prompt_tokens,
                                                           cloud or local)),
                  "reason": "client_disconnected", "finish_reason": "client_disconnected"}
        record["tokens"]["local_completion"] = local
    else:
        return  # it failed on its own: no entry, as for a plain request
    await account(request, caller, request_id=completion_id, team=team, source="chat",
                  record=record, started=started)
