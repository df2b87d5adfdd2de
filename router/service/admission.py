"""Bounded queueing of generating requests in one API process.

A model tier serves a few requests at a time; the rest wait in the thread pool for it. Without
a bound a burst would pile up waiting requests (each holding its body, its prompt and a
connection) without limit. ``server.max_generating`` is that bound: past it a generating
request is answered at once with 429 and ``Retry-After``, before any model work, and nothing
of it is kept. Every request that was admitted is answered.

:func:`enter` is called from :func:`router.service.accounting.admit` (after the caller's
rate limits); :class:`ReleaseAdmission` (pure ASGI middleware) gives the place back once the
response has been sent, streamed ones included. The count is per process, on its event loop
(no lock needed); replicas each hold their own.
"""

from __future__ import annotations

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from router.service.errors import APIError

RETRY_AFTER_S = 1
_ADMITTED = "admitted"  # the key in the request's scope state


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.refused = 0

    def try_enter(self) -> bool:
        if self.held >= self.limit:
            self.refused += 1
            return False
        self.held += 1
        return True

    def leave(self) -> None:
        self.held -= 1


def enter(request: Request) -> None:
    """Take a place for this generating request, or refuse it with 429."""
    admission: Admission = request.app.state.admission
    state = request.scope.setdefault("state", {})
    if state.get(_ADMITTED):
        return
    if not admission.try_enter():
        raise APIError(429, f"the server is busy: {admission.limit} generating requests are "
                       f"running or waiting (server.max_generating); retry in {RETRY_AFTER_S} s",
                       type_="rate_limit_error", code="server_busy",
                       headers={"Retry-After": str(RETRY_AFTER_S)})
    state[_ADMITTED] = admission


class ReleaseAdmission:
    """Gives an admitted request's place back when its response is done (or it failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            admission = state.pop(_ADMITTED, None)
            if admission is not None:
                admission.leave()
