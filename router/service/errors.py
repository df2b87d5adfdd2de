"""Errors returned to API clients, in the shape of the API the request came to: OpenAI's
``{"error": {"message", "type", "param", "code"}}``, or, under ``/v1/messages``, Anthropic's
``{"type": "error", "error": {"type", "message"}}``. One mapping from an exception to its
status and words (:func:`describe`) serves the handlers and the streams that fail after their
status line went out. No stack trace or secret reaches a body.

    APIError                      raised by routes: status, message, type, param, code
    BudgetExceeded                429 budget_exceeded, Retry-After
    RedisError                    503 store_unavailable (and redis-py's failover errors)
    RequestValidationError        400, naming the field
    PromptTooLong, TaskTooLarge   400 context_length_exceeded
    InvalidTask                   400, naming the field
    PolicyViolation               403 policy_violation
    RequestRefused                400 upstream_refused
    ToolsUnsupported              400 tools_unsupported
    BackendUnavailable            504 / 429 / 502 / 503 by kind, Retry-After where known
    ModelNotFound                 503
    ServerStopping                503 server_stopping (a stream cut when the server stops)
    anything else                 500, its type logged, never its message"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.errors import (
    BackendMisconfigured,
    BackendRateLimited,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
    LocalUnavailable,
    ModelNotFound,
    PromptTooLong,
    RequestRefused,
    ToolsUnsupported,
)
from router.graph.errors import BudgetExceeded, InvalidTask, PolicyViolation, TaskTooLarge
from router.logs import chain
from router.run.stopping import ServerStopping
from router.service import anthropic_wire
from router.store.connect import redis_failed

log = logging.getLogger("smallcode.api")


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers


@dataclass(frozen=True)
class Described:
    """What an exception is to a client: its status and words."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] | None = None


def anthropic_api(request: Request) -> bool:
    """Whether ``request`` came to the Anthropic Messages API (its errors take that shape)."""
    return request.url.path.startswith("/v1/messages")


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None, *,
                   anthropic: bool = False) -> JSONResponse:
    if anthropic:
        text = message if param is None or message.startswith(param) else f"{param}: {message}"
        return JSONResponse(anthropic_wire.error_body(status, text), status_code=status,
                            headers=headers)
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


# What an upstream failure is to our client: status, OpenAI error type, code.
_UPSTREAM: dict[type[BackendUnavailable], tuple[int, str, str | None]] = {
    BackendTimeout: (504, "timeout_error", "upstream_timeout"),
    BackendRateLimited: (429, "rate_limit_error", "upstream_rate_limited"),
    BackendMisconfigured: (502, "server_error", "upstream_misconfigured"),
    CircuitOpen: (503, "service_unavailable", "upstream_unavailable"),
    LocalUnavailable: (503, "service_unavailable", "local_unavailable"),
}
LOCAL_RETRY_AFTER_S = 5  # a local server that is restarted answers again within seconds


_UNION_TAG = re.compile(r"^(?:str|int|float|bool|none|[A-Z]\w*|\w+\[.*\])$")


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str | None:
    """A validation error's location as the request field it names: ``messages[0].role``."""
    path = ""
    for part in loc:
        if part == "body" and not path:
            continue
        if isinstance(part, str) and _UNION_TAG.match(part):
            continue  # pydantic names the union member it tried (str, list[TextPart]): no field
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or None


def describe(exc: BaseException) -> Described:
    """``exc`` as a client sees it (the one mapping; see the module's tree)."""
    if isinstance(exc, APIError):
        return Described(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)
    if isinstance(exc, BudgetExceeded):
        return Described(429, str(exc), "rate_limit_error", None, "budget_exceeded",
                         {"Retry-After": str(exc.retry_after_s)})
    if redis_failed(exc):
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return Described(503, "the service's store (Redis) is unavailable; try again shortly",
                         "service_unavailable", None, "store_unavailable", {"Retry-After": "5"})
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":  # its location is a byte offset, not a field
            return Described(400, "request body is not valid JSON")
        param = field_path(first["loc"])
        return Described(400, f"{param}: {first['msg']}" if param else first["msg"],
                         param=param)
    if isinstance(exc, StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return Described(exc.status_code, str(exc.detail), kind)
    if isinstance(exc, PromptTooLong | TaskTooLarge):
        return Described(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, InvalidTask):
        return Described(400, str(exc), param=exc.field)
    if isinstance(exc, PolicyViolation):
        return Described(403, str(exc), "permission_error", exc.field, "policy_violation")
    if isinstance(exc, RequestRefused):
        return Described(400, str(exc), code="upstream_refused")
    if isinstance(exc, ToolsUnsupported):
        return Described(400, str(exc), param="tools", code="tools_unsupported")
    if isinstance(exc, BackendUnavailable):
        status, kind, code = _UPSTREAM.get(type(exc), (503, "service_unavailable", None))
        log.warning("backend unavailable: %s", exc)
        headers = None
        if isinstance(exc, CircuitOpen):
            headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
        elif isinstance(exc, LocalUnavailable):
            headers = {"Retry-After": str(LOCAL_RETRY_AFTER_S)}
        return Described(status, str(exc), kind, None, code, headers)
    if isinstance(exc, ModelNotFound):
        return Described(503, str(exc), "service_unavailable")
    if isinstance(exc, ServerStopping):
        return Described(503, str(exc), "service_unavailable", None, "server_stopping",
                         {"Retry-After": "5"})
    log.error("unexpected error: %s", chain(exc))  # no message: it may hold data
    return Described(500, "internal error; see the server log", "server_error")


def install(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        found = describe(exc)
        return error_response(found.status, found.message, found.type, found.param,
                              found.code, found.headers, anthropic=anthropic_api(request))

    for kind in (APIError, BudgetExceeded, RedisError, RequestValidationError,
                 StarletteHTTPException, PromptTooLong, TaskTooLarge, InvalidTask,
                 PolicyViolation, RequestRefused, ToolsUnsupported, BackendUnavailable,
                 ModelNotFound, AttributeError, RuntimeError, Exception):
        # AttributeError and RuntimeError by name: redis-py's failover errors are the store's
        # 503 (redis_failed), answered here, not re-raised as Exception's handler does
        # (uvicorn would log it, and the access log would read 500).
        app.add_exception_handler(kind, handle)
