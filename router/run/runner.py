"""One graph run, whatever the transport: the graph in a thread (the models block), its
progress events in order on the event loop, one way to stop it and one way to price what a
stopped run ran.

    run = Run(graph, task, context)      starts at once (report=False: whole, no events)
    await run.next_event(timeout_s)      ("node" | "token" | "end", data), None after silence
    await run.answer(timeout_s)          the routed answer; the graph's error; TimeoutError
    await run.stop()                     cancel, and wait a while for the thread to notice
    run.stopped_record(reason)           the record of what a stopped run ran

A chat answered whole waits for the answer; a routed stream forwards the events as they come;
a queued task writes them to Redis (:mod:`router.worker`). Each writes the ledger entry of
its end with :func:`router.run.outcome.write_ledger`.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from agents.cloud import price
from router.graph.answer import RoutedAnswer
from router.graph.context import RouterContext
from router.graph.errors import TaskCancelled
from router.graph.graph import run_task
from router.graph.progress import run_graph
from router.run.outcome import RouteRecord, StopReason

STOP_GRACE_S = 10.0  # how long a stopped run waits for the graph's thread to notice
JOB = "run_task"  # the arq function name every queued task is enqueued and run under

Event = tuple[str, dict[str, Any]]
END: Event = ("end", {})
CUT: Event = ("cut", {})  # the server is stopping (router/run/stopping.py)


@dataclass
class Tally:
    """What a run generated so far, counted from its events: the prompt's tokens (intake's)
    and the tokens each tier streamed."""

    prompt_tokens: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"local": 0, "cloud": 0})

    def note(self, event: Event) -> None:
        kind, data = event
        if kind == "token":  # one token, or a batch of them as a queued task stores them
            self.tokens[data["tier"]] += int(data.get("tokens", 1))
        elif kind == "node" and data.get("node") == "intake":
            self.prompt_tokens = int(data.get("prompt_tokens") or 0)

    def record(self, reason: StopReason, context: RouterContext) -> RouteRecord:
        """The route record of a run stopped midway: its cost is what its budget gate settled
        (the budget and the ledger agree), else the cloud tokens' price."""
        local, cloud = self.tokens["local"], self.tokens["cloud"]
        gate = context.cloud_gate
        cost = gate.settled_usd if gate is not None else (
            price(context.price_as, self.prompt_tokens, cloud) if cloud else 0.0)
        return RouteRecord.stopped(reason, prompt_tokens=self.prompt_tokens, local_tokens=local,
                                   cloud_tokens=cloud, cost_usd=cost,
                                   counterfactual_usd=price(context.price_as, self.prompt_tokens,
                                                            cloud or local))


class Quiet:
    """When a stream owes its client a keep-alive: ``every_s`` after it last sent anything,
    whatever events its run had meanwhile (a local model's tokens are events the client
    never sees)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._last = time.monotonic()

    def sent(self) -> None:
        self._last = time.monotonic()

    def left_s(self) -> float:
        """How long until a keep-alive is due."""
        return max(0.0, self.every_s - (time.monotonic() - self._last))

    def due(self) -> bool:
        """Whether one is due now (then it counts as sent)."""
        if time.monotonic() - self._last < self.every_s:
            return False
        self._last = time.monotonic()
        return True


class Run:
    """One task through the graph in a thread; its events, in order, on the running loop."""

    def __init__(self, graph: Any, task: dict[str, Any], context: RouterContext, *,
                 report: bool = True) -> None:
        """``report`` False: run the graph whole, reporting nothing (an answer sent whole has
        no one to tell), its tiers called as they are (``generate``, not ``stream``: a
        provider counts a whole answer's tokens itself); it cannot be stopped midway."""
        loop = asyncio.get_running_loop()
        self.context = context
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.cancel = threading.Event()
        self.tally = Tally()

        def emit(kind: str, data: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self.events.put_nowait, (kind, data))

        work = (functools.partial(run_graph, graph, task, context, cancel=self.cancel, emit=emit)
                if report else functools.partial(run_task, graph, task,  # type: ignore[arg-type]
                                                 context))
        self.work: asyncio.Future[RoutedAnswer] = loop.run_in_executor(None, work)
        # Runs after every event the thread emitted (both go through the loop in order).
        self.work.add_done_callback(lambda _: self.events.put_nowait(END))

    def _noted(self, event: Event) -> Event:
        self.tally.note(event)
        return event

    async def next_event(self, timeout_s: float | None = None) -> Event | None:
        """The next event (``END`` once the graph's thread is done), or None after
        ``timeout_s`` of silence."""
        try:
            return self._noted(await asyncio.wait_for(self.events.get(), timeout_s))
        except TimeoutError:
            return None

    def pending(self) -> list[Event]:
        """The events that have come and were not read yet, without waiting."""
        found = []
        while not self.events.empty():
            found.append(self._noted(self.events.get_nowait()))
        return found

    def cut(self) -> None:
        """The server is stopping: the reader's next event is ``("cut", {})``, ahead of the
        events still queued (:meth:`pending` reads them)."""
        queued = [self.events.get_nowait() for _ in range(self.events.qsize())]
        for event in [CUT, *queued]:
            self.events.put_nowait(event)

    def end(self) -> None:
        """Wake a reader with ``END`` now, though the thread may still run (it was stopped
        and did not notice within ``STOP_GRACE_S``)."""
        self.events.put_nowait(END)

    def failure(self) -> BaseException | None:
        """The graph's error, once it has ended with one."""
        return self.work.exception() if self.work.done() else None

    async def answer(self, timeout_s: float | None = None) -> RoutedAnswer:
        """Wait for the routed answer (at most ``timeout_s``: then TimeoutError, and the
        run goes on until stopped); raises what the graph raised."""
        return await asyncio.wait_for(asyncio.shield(self.work), timeout_s)

    async def stop(self) -> None:
        """Stop the graph's thread at its next token or node, and wait (a while) until it
        has."""
        self.cancel.set()
        await asyncio.wait([self.work], timeout=STOP_GRACE_S)
        if self.work.done() and not self.work.cancelled():
            self.work.exception()  # retrieved: TaskCancelled, expected here

    def stopped_record(self, reason: StopReason) -> RouteRecord | None:
        """The record of a run that was stopped (``reason``), once its events are read: the
        routed record if it finished before it noticed, the record of what ran if it stopped
        or is still running, None if it failed on its own (a failed run writes no ledger
        entry, as a failed request does not)."""
        if not self.work.done():
            return self.tally.record(reason, self.context)
        failure = self.work.exception()
        if failure is None:
            return RouteRecord.routed(self.work.result().record)
        if isinstance(failure, TaskCancelled):
            return self.tally.record(reason, self.context)
        return None
