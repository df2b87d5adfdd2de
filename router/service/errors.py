"""Errors returned to API clients, always in the OpenAI shape:
``{"error": {"message", "type", "param", "code"}}``. No stack trace or secret reaches a body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.errors import BackendUnavailable, ModelNotFound, PromptTooLong
from router.graph.errors import InvalidTask, PolicyViolation

log = logging.getLogger("smallcode.api")


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"] if p != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first['msg']}" if param else first["msg"]
        if first["type"] == "json_invalid":
            message = "request body is not valid JSON"
        return error_response(400, message, "invalid_request_error", param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, str(exc.detail), kind)

    @app.exception_handler(PromptTooLong)
    async def _too_long(_: Request, exc: PromptTooLong) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error", "messages",
                              "context_length_exceeded")

    @app.exception_handler(InvalidTask)
    async def _invalid_task(_: Request, exc: InvalidTask) -> JSONResponse:
        return error_response(400, str(exc), "invalid_request_error", exc.field)

    @app.exception_handler(PolicyViolation)
    async def _forbidden(_: Request, exc: PolicyViolation) -> JSONResponse:
        return error_response(403, str(exc), "permission_error", exc.field, "policy_violation")

    @app.exception_handler(BackendUnavailable)
    async def _unavailable(_: Request, exc: BackendUnavailable) -> JSONResponse:
        log.warning("backend unavailable: %s", exc)
        return error_response(503, str(exc), "service_unavailable")

    @app.exception_handler(ModelNotFound)
    async def _model_missing(_: Request, exc: ModelNotFound) -> JSONResponse:
        return error_response(503, str(exc), "service_unavailable")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__)  # no message: it may hold data
        return error_response(500, "internal error; see the server log", "server_error")
