"""The OpenAPI document says what the API really answers, so a client generated from it (or a
schema fuzzer) sees no surprise: every error is the OpenAI error shape (never FastAPI's 422
body: validation errors are 400s), every ``/v1`` route needs a Bearer key, and the streaming
and text routes name their media types."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "code": {"type": ["string", "null"]},
        },
    }},
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Statuses every operation may answer, with what they mean here.
_ERRORS = {
    "400": "invalid request (the message names the field)",
    "401": "missing, wrong or revoked API key",
    "403": "not allowed for this key or team",
    "404": "no such resource for this key",
    "413": "request body over server.max_body_bytes",
    "429": "over a rate limit, a budget, or server.max_generating (see Retry-After)",
    "503": "the store or a model tier is unavailable (see Retry-After)",
}
# Routes whose success is not JSON: (path, method) -> media types of the 200 answer.
_MEDIA = {
    ("/v1/chat/completions", "post"): ("application/json", "text/event-stream"),
    ("/v1/tasks/{task_id}/events", "get"): ("text/event-stream",),
    ("/metrics", "get"): ("text/plain",),
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe(get_openapi(title=app.title, version=app.version,
                                                      routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def describe(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    for schemas in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(schemas, None)
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path.startswith("/v1"):
                operation["security"] = [{"bearer": []}]
            for status, what in _ERRORS.items():
                responses.setdefault(status, {"description": what, "content": {
                    "application/json": {"schema": _ERROR_REF}}})
            responses["default"] = {"description": "another error, in the same shape",
                                    "content": {"application/json": {"schema": _ERROR_REF}}}
            media = _MEDIA.get((path, method))
            if media:
                ok = next(iter(s for s in responses if s.startswith("2")))
                responses[ok]["content"] = {m: {"schema": {}} for m in media}
    return schema
