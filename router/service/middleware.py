"""Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer and hide ``receive``).

- ``BodyLimit`` refuses a request body over the cap with 413 while reading it, whatever its
  transfer encoding: a declared Content-Length over the cap is refused before reading, and
  the bytes actually received are counted, so a chunked body stops being read at the cap.
- ``AccessLog`` logs one line per request on ``smallcode.access``: method, path, status, the
  route and its reason (set by the routes in ``scope["state"]``), latency. Never a body,
  a query string or a header: no prompt text, no key.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("smallcode.access")


class _BodyTooLarge(Exception):
    """Raised into the app by ``receive`` once the body passes the cap."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > cap:
            await self._refuse(send)
            return
        received, over, answered = 0, False, False

        async def counted() -> Message:
            nonlocal received, over
            if over:
                raise _BodyTooLarge  # never read past the cap
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    over = True
                    raise _BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal answered
            if over:
                return  # whatever the app makes of a cut-off body, the answer is our 413
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:  # only the failure we caused is ours to answer
                raise
        if over and not answered:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        cap = self.max_body_bytes
        body = json.dumps({"error": {
            "message": f"request body is over {cap} bytes: send at most {cap} bytes "
                       "(shorter messages, fewer or smaller files)",
            "type": "invalid_request_error", "param": None, "code": "request_too_large",
        }}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is never read
        ]})
        await send({"type": "http.response.body", "body": body})


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = 500  # unless the app answers: an exception escaping it becomes a 500

        async def receiving() -> Message:
            message = await receive()
            if (message["type"] == "http.request" and not message.get("more_body", False)
                    and "received" not in state):
                state["received"] = time.perf_counter()  # where a ledger entry's latency starts
            return message

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receiving, watched)
        finally:
            # raw_path is the path as sent, still percent-encoded: no control characters.
            path = scope.get("raw_path") or scope["path"].encode("ascii", "backslashreplace")
            access_log.info(
                "%s %s %d route=%s reason=%s latency_ms=%.1f", scope["method"],
                path.decode("ascii", "backslashreplace"), status, state.get("route", "-"),
                state.get("route_reason", "-"), (time.perf_counter() - started) * 1000)
