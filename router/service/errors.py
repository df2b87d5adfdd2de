"""Errors returned to API clients, always in the OpenAI shape:
``{"error": {"message", "type", "param", "code"}}``. No stack trace or secret reaches a body."""

from __future__ import annotations

import logging
import re

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
)
from router.graph.errors import BudgetExceeded, InvalidTask, PolicyViolation, TaskTooLarge

log = logging.getLogger("smallcode.api")


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
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


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(BudgetExceeded)
    async def _over_budget(_: Request, exc: BudgetExceeded) -> JSONResponse:
        return error_response(429, str(exc), "rate_limit_error", None, "budget_exceeded",
                              {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(RedisError)
    async def _store_down(_: Request, exc: RedisError) -> JSONResponse:
        log.warning("Redis unavailable: %s", type(exc).__name__)
        return error_response(503, "the service's store (Redis) is unavailable; try again "
                              "shortly", "service_unavailable", None, "store_unavailable",
                              {"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":  # its location is a byte offset, not a field
            return error_response(400, "request body is not valid JSON", "invalid_request_error")
        param = field_path(first["loc"])
        message = f"{param}: {first['msg']}" if param else first["msg"]
        return error_response(400, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), kind)

    @app.exception_handler(PromptTooLong)
    async def _too_long(_: Request, exc: PromptTooLong) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error", "messages",
                              "context_length_exceeded")

    @app.exception_handler(TaskTooLarge)
    async def _task_too_large(_: Request, exc: TaskTooLarge) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error", "messages",
                              "context_length_exceeded")

    @app.exception_handler(InvalidTask)
    async def _invalid_task(_: Request, exc: InvalidTask) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error", exc.field)

    @app.exception_handler(PolicyViolation)
    async def _forbidden(_: Request, exc: PolicyViolation) -> JSONResponse:
        return error_response(403, str(exc), "permission_error", exc.field, "policy_violation")

    @app.exception_handler(RequestRefused)
    async def _refused(_: Request, exc: RequestRefused) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error", None, "upstream_refused")

    @app.exception_handler(BackendUnavailable)
    async def _unavailable(_: Request, exc: BackendUnavailable) -> JSONResponse:
        status, kind, code = _UPSTREAM.get(type(exc), (503, "service_unavailable", None))
        log.warning("backend unavailable: %s", exc)
        headers = None
        if isinstance(exc, CircuitOpen):
            headers = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
        elif isinstance(exc, LocalUnavailable):
            headers = {"Retry-After": str(LOCAL_RETRY_AFTER_S)}
        return error_response(status, str(exc), kind, None, code, headers)

    @app.exception_handler(ModelNotFound)
    async def _model_missing(_: Request, exc: ModelNotFound) -> JSONResponse:
        return error_response(503, str(exc), "service_unavailable")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__)  # no message: it may hold data
        return error_response(500, "internal error; see the server log", "server_error")
