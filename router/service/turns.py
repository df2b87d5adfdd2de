"""An agent's turn through the run layer, for the agent APIs (the Anthropic Messages API and
the OpenAI Responses API): one routed task, whole or as a stream, its ledger entry written
once whatever its end.

A turn is streamed whole once it is judged: its tool calls must pass the judge
(:mod:`router.graph.tool_calls`) before a client may run them, so nothing is sent before the
route is final except the stream's opening events and keep-alives (a client's read timeout
never fires while the models work). A client that leaves stops the run at its next token or
node, and what ran is recorded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import Request

from router.graph.answer import RoutedAnswer
from router.run.caller import Caller
from router.run.outcome import RouteRecord
from router.run.runner import Run
from router.service.accounting import account
from router.service.errors import Described, describe

KEEPALIVE_S = 5.0  # a keep-alive event this often while the models work


@dataclass(frozen=True)
class Turn:
    """One request's turn: its caller, its task (as the caller may run it), its id in the
    ledger and the API it came by (``source``)."""

    request: Request
    caller: Caller
    task: dict[str, Any]
    request_id: str
    source: str

    def run(self, *, report: bool) -> Run:
        state = self.request.app.state
        return Run(state.graph, self.caller.task(self.task),
                   self.caller.context(state.router_context), report=report)

    async def account(self, record: RouteRecord, started: float) -> None:
        await account(self.request, self.caller, request_id=self.request_id,
                      source=self.source, record=record, started=started)
        self.request.state.route, self.request.state.route_reason = record.final, record.reason


async def answer(turn: Turn) -> tuple[RoutedAnswer, RouteRecord]:
    """The turn run whole: its routed answer and record (accounted)."""
    started = time.perf_counter()
    routed = await turn.run(report=False).answer()
    record = RouteRecord.routed(routed.record)
    await turn.account(record, started)
    return routed, record


async def stream(turn: Turn, *, opening: Iterable[str], keepalive: str,
                 events: Callable[[RoutedAnswer, RouteRecord], Iterable[str]],
                 error: Callable[[Described], str]) -> AsyncIterator[str]:
    """The turn as server-sent events: ``opening`` at once, ``keepalive`` every
    ``KEEPALIVE_S`` while it runs, then ``events`` of the routed answer, or ``error`` of
    what failed (the failure a plain response would have carried)."""
    started = time.perf_counter()
    run = turn.run(report=True)
    accounted = False
    try:
        for line in opening:
            yield line
        while True:
            event = await run.next_event(KEEPALIVE_S)
            if event is None:
                yield keepalive
            elif event[0] == "end":
                break
        failure = run.failure()
        if failure is not None:
            accounted = True  # a failed request writes no ledger entry (as a plain one)
            yield error(describe(failure))
            return
        routed = run.work.result()
        record = RouteRecord.routed(routed.record)
        accounted = True
        await turn.account(record, started)
        for line in events(routed, record):
            yield line
    finally:
        if not accounted:  # the client left: stop the run, record what ran
            with anyio.CancelScope(shield=True):
                await run.stop()
                run.pending()
                stopped = run.stopped_record("client_disconnected")
                if stopped is not None:
                    await turn.account(stopped, started)
