"""A blocking stream read ahead in one thread, its items handed to the event loop as they come.

A model's token stream read with one thread hand-off per ``next`` (``run_in_threadpool``)
runs in lockstep with the event loop: the model decodes nothing between handing over a token
and the loop asking for the next one, and on a busy two-core machine that wait is a few
milliseconds per token (``smallcode bench speed``: the SSE stream was 1.13x the graph it
served). Here one thread reads the whole stream, so decoding never waits on the loop, the
network or the client.

    ahead = ReadAhead(stream)     starts reading at once
    item = await ahead.next()     the next item; None after the last; raises the stream's error
    await ahead.close()           stop at the next item, close the stream in its thread, wait
    ahead.pending()               the items read but not taken (what a stopped stream ran)
    ahead.cut()                   the server is stopping: the reader's next ``next`` raises

The stream is closed in the thread that read it (a generator cannot be closed while another
thread runs it), so a budget gate around it settles there, as it would have in lockstep.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

from router.run.stopping import ServerStopping

T = TypeVar("T")

_END = object()
_CUT = object()


class ReadAhead(Generic[T]):
    """``stream`` read in one worker thread; its items, in order, on the running loop."""

    def __init__(self, stream: Iterator[T]) -> None:
        loop = asyncio.get_running_loop()
        self._items: asyncio.Queue[object] = asyncio.Queue()
        self._stop = threading.Event()

        def read() -> None:
            try:
                for item in stream:
                    loop.call_soon_threadsafe(self._items.put_nowait, item)
                    if self._stop.is_set():
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        self._work = loop.run_in_executor(None, read)
        # Runs after every item the thread handed over (both go through the loop in order).
        self._work.add_done_callback(lambda _: self._items.put_nowait(_END))

    async def next(self) -> T | None:
        """The next item, None once the stream has ended; raises what the stream raised, or
        :class:`ServerStopping` once :meth:`cut`."""
        item = await self._items.get()
        if item is _CUT:
            raise ServerStopping()
        if item is _END:
            self._items.put_nowait(_END)  # every later call sees the end too
            failure = self._work.exception()
            if failure is not None:
                raise failure
            return None
        return item  # type: ignore[return-value]

    def cut(self) -> None:
        """The server is stopping: the reader's next :meth:`next` raises
        :class:`ServerStopping`, ahead of the items still queued (they count as pending)."""
        queued = [self._items.get_nowait() for _ in range(self._items.qsize())]
        for item in [_CUT, *queued]:
            self._items.put_nowait(item)

    async def close(self) -> None:
        """Stop reading at the next item and wait until the stream is closed in its thread
        (a stream that ended on its own returns at once)."""
        self._stop.set()
        await asyncio.wait([self._work])
        if not self._work.cancelled():
            self._work.exception()  # retrieved: the reader that stopped early reports none

    def pending(self) -> list[T]:
        """The items read and not yet taken, without waiting."""
        found: list[T] = []
        while not self._items.empty():
            item = self._items.get_nowait()
            if item is _CUT:
                continue
            if item is _END:
                self._items.put_nowait(_END)
                break
            found.append(item)  # type: ignore[arg-type]
        return found
