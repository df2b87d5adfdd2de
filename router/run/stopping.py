"""The server's stop as the streams in flight see it (SIGTERM, or Ctrl-C on `smallcode serve`).

uvicorn stops taking connections and waits for the open ones. A stream still running
``server.shutdown_grace_s`` after the signal is cut here, by its own code: it stops its run,
records what ran (reason ``server_stopping``), sends its client an error event naming the
stop, and ends, so its connection closes before uvicorn would cancel the task (a cancelled
task writes no record, and uvicorn logs it with a stack trace).

    stopping = Stopping()                      one per app (``app.state.stopping``)
    stopping.begin(grace_s, loop)              from a signal handler or any thread: cut at grace_s
    with stopping.watch(ahead.cut): ...        a stream, while it runs: cut it then
    stopping.asked                             true once begun (start-up stops waiting)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

from router.run.outcome import StopReason

REASON: StopReason = "server_stopping"


class ServerStopping(Exception):
    """A stream was cut because the server is stopping."""

    def __init__(self) -> None:
        super().__init__("the server is stopping: this answer was cut after the grace period "
                         "(server.shutdown_grace_s); what ran is recorded; send it again")


class Stopping:
    def __init__(self) -> None:
        self.asked = False  # the server was asked to stop
        self.cut = False
        self._watchers: set[Callable[[], None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the streams' loop, once seen
        self._due: float | None = None  # when to cut, asked before any stream ran

    def begin(self, grace_s: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Cut every stream still running ``grace_s`` from now, on ``loop`` (the streams'
        loop; None: the one the streams run on, once one has). Safe to call from a signal
        handler or another thread (it only schedules, through the loop's thread-safe
        wake-up)."""
        self.asked = True
        loop = loop or self._loop
        if loop is None:  # no stream has run yet: the first one to watch starts the clock
            self._due = time.monotonic() + grace_s
            return
        loop.call_soon_threadsafe(self._schedule, grace_s, loop)

    def _schedule(self, grace_s: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None and not self.cut:
            self._timer = loop.call_later(grace_s, self._cut)

    def _cut(self) -> None:
        self.cut = True
        for cut in list(self._watchers):
            cut()

    @contextlib.contextmanager
    def watch(self, cut: Callable[[], None]) -> Iterator[None]:
        """While the block runs, ``cut`` is called when the grace period ends (at once if it
        has ended already)."""
        self._loop = asyncio.get_running_loop()
        if self._due is not None:
            self._schedule(max(0.0, self._due - time.monotonic()), self._loop)
        self._watchers.add(cut)
        if self.cut:
            cut()
        try:
            yield
        finally:
            self._watchers.discard(cut)
