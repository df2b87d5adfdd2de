"""A TCP proxy on loopback in front of a real Valkey that fails the way a store fails in a
failover, on cue: it swallows one command's reply (the command ran; the client sends it
again), or it goes away when a command comes (that one never runs) and refuses connections
for a while. It runs in its own thread, so a test's own code and a served app in another
thread can both go through it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse


class StoreProxy:
    def __init__(self, upstream_url: str) -> None:
        url = urlparse(upstream_url)
        assert url.hostname is not None and url.port is not None
        self.upstream = (url.hostname, url.port)
        self.port = 0
        self._drop_reply_to: bytes | None = None  # the next command with this in it
        self._armed = False  # its reply is the next one down
        self._outage_at: tuple[bytes, float] | None = None
        self._down_until = 0.0
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.dropped = 0  # replies swallowed
        self.outages = 0  # outages begun

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def drop_reply_to_next(self, marker: bytes = b"EVAL") -> None:
        """The next command holding ``marker`` runs, and its reply never reaches the client:
        the connection closes instead."""
        self._drop_reply_to = marker

    def outage_at_next(self, marker: bytes, seconds: float) -> None:
        """The next command holding ``marker`` is not sent on; every connection closes, and
        new ones are closed at once for ``seconds``."""
        self._outage_at = (marker, seconds)

    def _close_all(self) -> None:
        for client, upstream in list(self._open):
            client.close()
            upstream.close()

    async def _up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._outage_at is not None and self._outage_at[0] in data:
                self._down_until = time.monotonic() + self._outage_at[1]
                self._outage_at = None
                self.outages += 1
                self._close_all()
                return
            if self._drop_reply_to is not None and self._drop_reply_to in data:
                self._drop_reply_to, self._armed = None, True
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._down_until:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        pair = (writer, up_writer)
        self._open.add(pair)
        upward = asyncio.create_task(self._up(reader, up_writer))
        try:
            while data := await up_reader.read(65536):
                if self._armed:  # the command ran on the server; its reply never arrives
                    self._armed = False
                    self.dropped += 1
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, RuntimeError):  # the client went, or an outage closed it
            pass
        finally:
            self._open.discard(pair)
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await upward
            writer.close()
            up_writer.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[StoreProxy]:
        """Serve on a free loopback port (``url``) in a thread; stop after."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        server: list[asyncio.Server] = []

        async def start() -> None:
            server.append(await asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = server[0].sockets[0].getsockname()[1]
            started.set()

        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        started.wait(10)
        try:
            yield self
        finally:
            async def stop() -> None:
                server[0].close()
                self._close_all()
            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
