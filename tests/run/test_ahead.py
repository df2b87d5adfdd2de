"""A model's stream read ahead of its consumer: the model does not wait for the event loop
between tokens, a stopped stream is closed in the thread that ran it, and nothing it produced
is lost from the count."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from router.run.ahead import ReadAhead

WAIT_S = 10.0


def test_the_stream_runs_on_while_its_reader_waits() -> None:
    """The reader takes one item and then does nothing: the stream still reaches its end (in
    lockstep, one ``next`` per hand-off, it would wait after the first)."""
    finished = threading.Event()

    def tokens() -> Iterator[int]:
        yield from range(50)
        finished.set()

    async def go() -> list[int]:
        ahead = ReadAhead(tokens())
        first = await ahead.next()
        assert await asyncio.to_thread(finished.wait, WAIT_S), "the stream waited for its reader"
        rest = []
        while (item := await ahead.next()) is not None:
            rest.append(item)
        assert await ahead.next() is None  # the end stays the end
        return [first, *rest]  # type: ignore[list-item]

    assert asyncio.run(go()) == list(range(50))


def test_close_stops_the_stream_in_its_own_thread_and_counts_what_it_ran() -> None:
    release = threading.Event()
    produced: list[int] = []
    closed_in: list[str] = []

    def tokens() -> Iterator[int]:
        try:
            for i in range(1000):
                if i == 3:
                    release.wait(WAIT_S)  # a slow token, like a model's
                produced.append(i)
                yield i
        finally:
            closed_in.append(threading.current_thread().name)

    async def go() -> tuple[int | None, list[int]]:
        ahead = ReadAhead(tokens())
        first = await ahead.next()
        closing = asyncio.ensure_future(ahead.close())
        await asyncio.sleep(0.05)
        release.set()
        await closing
        return first, ahead.pending()

    first, pending = asyncio.run(go())
    # It stopped at the next item after the close (not at the end), and every item it
    # produced was either taken or is counted as pending: a stopped stream's charge is whole.
    assert len(produced) <= 4
    assert [first, *pending] == produced
    assert closed_in and closed_in[0] != threading.main_thread().name


def test_the_streams_error_reaches_the_reader_after_its_items() -> None:
    def tokens() -> Iterator[int]:
        yield 1
        raise ValueError("provider said no")

    async def go() -> list[int]:
        ahead = ReadAhead(tokens())
        got = [await ahead.next()]
        with pytest.raises(ValueError, match="provider said no"):
            await ahead.next()
        await ahead.close()  # closing a failed stream is quiet
        return got  # type: ignore[return-value]

    assert asyncio.run(go()) == [1]
