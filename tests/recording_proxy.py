"""A recording HTTP proxy on loopback, put between litellm and the stand-in so tests can see
exactly what reached the "cloud" (how many requests, which bodies). Real HTTP both ways.
``paced_proxy`` forwards streams event by event, slowed down, so that a test can act in the
middle of a cloud call (a worker killed, a task cancelled)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import free_port


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    @property
    def count(self) -> int:
        return len(self.bodies)


def _client_lifespan(
        clients: list[httpx.AsyncClient],
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """The app's lifespan: one upstream client for all its requests, put in ``clients``."""
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=300) as client:
            clients.append(client)
            yield
    return lifespan


@contextmanager
def recording_proxy(target: str) -> Iterator[tuple[str, Recorder]]:
    """Yield (base_url, recorder); requests to base_url/... are forwarded to target/..."""
    recorder = Recorder()
    clients: list[httpx.AsyncClient] = []

    async def forward(request: Request) -> Response:
        body = await request.body()
        recorder.bodies.append(body)
        upstream = await clients[0].request(
            request.method, f"{target}/{request.path_params['path']}", content=body,
            headers={"content-type": request.headers.get("content-type", "application/json")})
        return Response(upstream.content, upstream.status_code,
                        media_type=upstream.headers.get("content-type"))

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])],
                    lifespan=_client_lifespan(clients))
    with _serve(app) as url:
        yield url, recorder


@contextmanager
def paced_proxy(target: str, pace_s: float) -> Iterator[str]:
    """Yield a base URL forwarding to ``target``; a streamed answer's events come ``pace_s``
    apart (a slow provider), everything else as it is."""
    clients: list[httpx.AsyncClient] = []

    async def forward(request: Request) -> Response:
        upstream = await clients[0].send(clients[0].build_request(
            request.method, f"{target}/{request.path_params['path']}",
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "application/json")}),
            stream=True)
        kind = upstream.headers.get("content-type", "")
        if not kind.startswith("text/event-stream"):
            body = await upstream.aread()
            await upstream.aclose()
            return Response(body, upstream.status_code, media_type=kind or None)

        async def paced() -> AsyncIterator[str]:
            try:
                async for line in upstream.aiter_lines():
                    if line.startswith("data:"):
                        await asyncio.sleep(pace_s)
                    yield line + "\n"
            finally:
                await upstream.aclose()

        return StreamingResponse(paced(), upstream.status_code, media_type=kind)

    app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])],
                    lifespan=_client_lifespan(clients))
    with _serve(app) as url:
        yield url


@contextmanager
def _serve(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           loop="asyncio", http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
