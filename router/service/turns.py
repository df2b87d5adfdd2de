"""An agent's turn through the run layer, for the agent APIs (the Anthropic Messages API and
the OpenAI Responses API): one routed task, whole or as a stream, its ledger entry written
once whatever its end.

A turn is streamed whole once it is judged: its tool calls must pass the judge
(:mod:`router.graph.tool_calls`) before a client may run them, so nothing is sent before the
route is final except the stream's opening events and keep-alives (a client's read timeout
never fires while the models work). A client that leaves stops the run at its next token or
node, and what ran is recorded.

Sessions: a turn belongs to the client's session (its header or metadata, else one derived
from the conversation's first turn). While a tool exchange is open (the answer called tools,
the next turn brings their results), the session is pinned to the tier that served it: a
cloud-served exchange stays in the cloud (reason ``pinned``), as the local tier would read
the whole conversation cold. The turn that brings the results reads the pin; streamed, it
renews it while the models work (a write waits for the store's disk, a read does not), and an
answer that calls tools again on the same tier, most turns of an agent's task, then writes
nothing before it is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import Request

from router.graph.answer import RoutedAnswer
from router.run.caller import Caller
from router.run.outcome import RouteRecord, StopReason
from router.run.runner import Quiet, Run
from router.run.stopping import REASON as STOPPING
from router.run.stopping import ServerStopping
from router.service.accounting import account, request_started
from router.service.errors import Described, describe

log = logging.getLogger("smallcode.api")

KEEPALIVE_S = 5.0  # a keep-alive event this often while the models work
PIN_S = 1800  # an open tool exchange keeps its tier this long after its last turn (streamed: its start)


def session_of(task: dict[str, Any]) -> str:
    """The task's session: the client's, else one derived from the conversation's first turn
    and the system prompt (the same conversation keeps it turn after turn)."""
    if task.get("session"):
        return str(task["session"])
    first = (task.get("conversation") or [{}])[0]
    seed = json.dumps([task.get("system", ""), first.get("content")], sort_keys=True)
    return "derived-" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def continues_exchange(task: dict[str, Any]) -> bool:
    """Whether the turn brings the results of tools the last answer called."""
    conversation = task.get("conversation") or []
    return bool(conversation) and conversation[-1].get("role") == "tool"


@dataclass
class Turn:
    """One request's turn: its caller, its task (as the caller may run it), its id in the
    ledger and the API it came by (``source``); once it runs, the tier its session's pin held
    (``held``), and that pin's renewal once :meth:`renew` starts it (true if the pin was still
    there)."""

    request: Request
    caller: Caller
    task: dict[str, Any]
    request_id: str
    source: str
    started: float = field(init=False)  # its latency counts from here (request_started)
    held: str | None = field(default=None, init=False)
    renewal: asyncio.Future[bool] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.started = request_started(self.request)

    def _pin_key(self) -> str:
        state = self.request.app.state
        return str(state.names.session_tier(self.caller.team, self.task["session"]))

    async def run(self, *, report: bool) -> Run:
        """Start the turn's run, pinned to the cloud where its session's open tool exchange
        is served there."""
        state = self.request.app.state
        self.task.setdefault("session", session_of(self.task))
        task = self.caller.task(self.task)
        if continues_exchange(task):
            held = await state.redis.get(self._pin_key())
            self.held = held.decode() if held is not None else None
            if self.held == "cloud":
                task["pinned"] = "cloud"
        return Run(state.graph, task, self.caller.context(state.router_context), report=report)

    def renew(self) -> None:
        """Start renewing the pin the turn read, if it read one (:meth:`pin` waits for it)."""
        if self.held is None:
            return
        self.renewal = asyncio.ensure_future(
            self.request.app.state.redis.expire(self._pin_key(), PIN_S))
        # read by pin(); a turn that fails or stops before its answer never reads it, and a
        # store that failed under it fails the turn's other calls too
        self.renewal.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def pin(self, routed: RoutedAnswer, record: RouteRecord) -> None:
        """Keep the tier of an exchange the answer opens (it calls tools); close it else. A
        pin that holds the answer's tier and was renewed as the turn ran is kept as it is."""
        redis = self.request.app.state.redis
        renewed = self.renewal is not None and await self.renewal
        if routed.tool_calls:
            if not (renewed and record.final == self.held):
                await redis.set(self._pin_key(), record.final, ex=PIN_S)
        else:
            await redis.delete(self._pin_key())

    async def account(self, record: RouteRecord, *, answered: float | None = None) -> None:
        """Write the turn's ledger entry (``answered``: when its answer was sent, where its
        latency ends; else now)."""
        await account(self.request, self.caller, request_id=self.request_id,
                      source=self.source, record=record, started=self.started,
                      answered=answered)
        self.request.state.route, self.request.state.route_reason = record.final, record.reason


async def answer(turn: Turn) -> tuple[RoutedAnswer, RouteRecord]:
    """The turn run whole: its routed answer and record (accounted)."""
    routed = await (await turn.run(report=False)).answer()
    record = RouteRecord.routed(routed.record)
    await turn.account(record)
    await turn.pin(routed, record)
    return routed, record


async def begin(turn: Turn) -> Run:
    """Start the turn to be streamed, once its task has passed the intake's checks: bad input
    is still a plain HTTP error in the API's own shape, never an event after a 200."""
    run = await turn.run(report=True)
    try:
        while True:
            event = await run.next_event()
            if event is None:
                continue
            kind, data = event
            if kind == "end":
                failure = run.failure()
                if failure is not None:
                    raise failure
                run.end()  # the stream reads the end again
                return run
            if kind == "node" and data.get("node") == "intake":
                return run
    except BaseException:
        if not run.work.done():
            run.cancel.set()
        raise


async def stream(turn: Turn, run: Run, *, opening: Iterable[str],
                 keepalive: str | Callable[[], str],
                 events: Callable[[RoutedAnswer, RouteRecord], Iterable[str]],
                 error: Callable[[Described], str]) -> AsyncIterator[str]:
    """The turn begun (:func:`begin`) as server-sent events: ``opening`` at once,
    ``keepalive`` (or what it makes, each time) every ``KEEPALIVE_S`` while it runs, then
    ``events`` of the routed answer, or ``error`` of what failed (the failure a plain
    response would have carried)."""
    accounted = False
    reason: StopReason = "client_disconnected"
    turn.renew()  # past the intake: its store call does not compete with the intake's work
    try:
        for line in opening:
            yield line
        quiet = Quiet(KEEPALIVE_S)
        with turn.request.app.state.stopping.watch(run.cut):
            while True:
                event = await run.next_event(quiet.left_s())
                if quiet.due():  # by the clock: the run's own events reach no client
                    yield keepalive if isinstance(keepalive, str) else keepalive()
                if event is None:
                    continue
                if event[0] == "end":
                    break
                elif event[0] == "cut":  # the server is stopping: stop here, recorded below
                    reason = STOPPING
                    yield error(describe(ServerStopping()))
                    return
        failure = run.failure()
        if failure is not None:
            accounted = True  # a failed request writes no ledger entry (as a plain one)
            yield error(describe(failure))
            return
        routed = run.work.result()
        record = RouteRecord.routed(routed.record)
        # The pin's write goes out before the answer (the client's next turn may follow at
        # once, and reads it). Its reply waits for the store's disk, so it is awaited after
        # the answer is sent, with the ledger entry: the client waits for neither, the entry's
        # latency ends when the answer is sent, and the stream ends once both are written.
        pinning = asyncio.ensure_future(turn.pin(routed, record))
        pinning.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.sleep(0)  # the pin's command is sent now, ahead of the answer
        for line in events(routed, record):
            yield line
        accounted = True
        answered = time.perf_counter()
        with anyio.CancelScope(shield=True):  # a client that leaves now has its answer
            try:
                await pinning
            except Exception as exc:  # the answer is out: its next turn is routed afresh
                log.warning("session pin not written (%s): the session's next turn is routed "
                            "afresh", type(exc).__name__)
            await turn.account(record, answered=answered)
    finally:
        if not accounted:  # the client left, or the server stops: stop the run, record it
            with anyio.CancelScope(shield=True):
                await run.stop()
                run.pending()
                stopped = run.stopped_record(reason)
                if stopped is not None:
                    await turn.account(stopped)
