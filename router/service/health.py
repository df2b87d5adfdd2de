"""``/healthz`` (the process answers) and ``/readyz`` (it can serve: Redis answers, the models
are loaded, the local tier answers, a worker is alive). Both bodies are documented models, so a
client (or a schema fuzzer) knows the 503 of a service that is not ready."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from agents.base import Backend
from router.checks.sandbox import isolation_mode
from router.service.metrics import servers_of
from router.store import tasks

router = APIRouter()
LocalState = Literal["ok", "unavailable", "unknown"]


class Health(BaseModel):
    status: Literal["ok"]


class Checks(BaseModel):
    isolation: str = Field(description="how execution checks run: bwrap, unisolated or off")


class LocalMember(BaseModel):
    """One server of the local tier (a pool member, or the one server of ``local.server_url``)
    as this process sees it."""

    url: str
    up: bool = Field(description="it takes requests: its /health answered, or it has not "
                     "failed one since")
    problem: str | None = Field(None, description="why it is left out (null while up)")
    in_flight: int | None = Field(None, description="requests this process has in flight on "
                                  "it (null: not counted for a single server)")
    requests: int | None = Field(None, description="requests this process sent it")
    failures: int | None = Field(None, description="requests that failed on it")


def local_members(backend: Backend) -> list[LocalMember]:
    """Each server of the local tier; empty for the in-process model."""
    return [LocalMember.model_validate(m) for m in servers_of(backend)]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    redis: Literal["ok", "unreachable"]
    models: Literal["loaded", "loading"]
    local: LocalState = Field(
        description="the local tier: its in-process model loaded, or its server (llama-server) "
        "answering /health; unknown while the models load")
    local_members: list[LocalMember] = Field(
        default_factory=list, description="each server of the local tier (local.server_urls: "
        "the tier is ready while any is up); empty when the model runs in this process")
    workers: int = Field(description="live task workers (heartbeats in Redis)")
    checks: Checks
    problems: list[str] = Field(description="why it is not ready, one line each (empty: ready)")


@router.get("/healthz", response_model=Health)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", response_model=Readiness, responses={
    503: {"model": Readiness, "description": "not ready: ``problems`` says why"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when Redis answers, the models are loaded, the local tier answers and a worker is
    alive; says how checks are isolated."""
    state = request.app.state
    problems: list[str] = []
    try:
        redis_ok = bool(await state.redis.ping())
    except RedisError:
        redis_ok = False
    workers = 0
    if redis_ok:
        try:
            workers = len(list(await tasks.live_workers(state.redis, state.names)))
        except RedisError:
            redis_ok = False
    if not redis_ok:
        problems.append("Redis does not answer")
    models_ok = hasattr(state, "tiers")
    local: LocalState = "unknown"
    members: list[LocalMember] = []
    if not models_ok:
        problems.append("the models are loading")
    else:
        why = await local_unavailable(state.tiers["local"])
        local = "ok" if why is None else "unavailable"
        members = local_members(state.tiers["local"])  # as the probe just found them
        if why is not None:
            problems.append(why)
    if redis_ok and not workers:
        problems.append("no task worker is alive")
    body = Readiness(status="not ready" if problems else "ready",
                     redis="ok" if redis_ok else "unreachable",
                     models="loaded" if models_ok else "loading", local=local,
                     local_members=members, workers=workers,
                     checks=Checks(isolation=isolation_mode(state.router_context.sandbox)),
                     problems=problems)
    return JSONResponse(body.model_dump(), status_code=503 if problems else 200)


async def local_unavailable(backend: Backend) -> str | None:
    """The local tier's own answer, in a thread (a server probe is blocking I/O, bounded by
    the backend's own probe timeout)."""
    return await run_in_threadpool(backend.unavailable)
