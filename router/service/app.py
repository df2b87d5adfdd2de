"""The FastAPI application: OpenAI-compatible chat completions over the two tiers.

Models are loaded once, in the lifespan, and handed to routes through ``app.state``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import Response
from redis.exceptions import RedisError

from agents.base import Backend
from router.backends import build_cloud, build_local
from router.checks.sandbox import isolation_mode
from router.graph.graph import build_graph
from router.run.ratelimit import RateLimits
from router.run.stopping import Stopping
from router.runtime import build_context
from router.service import (
    anthropic_api,
    completions,
    dashboard,
    errors,
    health,
    keys,
    openapi,
    responses_api,
    routes,
    tasks,
    usage,
)
from router.service.admission import Admission, ReleaseAdmission
from router.service.key_cache import KeyCache
from router.service.metrics import Metrics
from router.service.middleware import AccessLog, BodyLimit
from router.service.tasks import TaskQueue
from router.settings import ConfigError, Settings
from router.store import connect, migrate
from router.store import tasks as task_store
from router.store.names import Names
from router.worker import EmbeddedWorker

log = logging.getLogger("smallcode.api")


def create_app(settings: Settings, *, local: Backend | None = None,
               cloud: Backend | None = None, with_retrieval: bool = True) -> FastAPI:
    """Build the app. Backends given here are used as they are (and not closed by the app)."""

    if not settings.redis.url:
        raise ConfigError("redis.url is empty: `smallcode serve` starts an embedded Valkey and "
                          "sets it; to build the app yourself, give it a Redis URL")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.redis.url is not None
        app.state.redis = connect.client(settings.redis, socket_timeout=5,
                                         socket_connect_timeout=2)
        app.state.names = Names(settings.redis.prefix)
        # A store failing over as the process starts is waited out, as the workers wait it out
        outlast = functools.partial(connect.outlasting, within_s=settings.tasks.store_outage_s,
                                    stopped=lambda: app.state.stopping.asked)
        await outlast(lambda: migrate.upgrade(app.state.redis, app.state.names),
                      what="the layout's upgrade")  # keys of an older layout
        await outlast(lambda: migrate.upgrade_tasks(app.state.redis, app.state.names),
                      what="the tasks' upgrade")  # and tasks, queue
        app.state.rate_limits = RateLimits(app.state.redis, settings.redis,
                                           app.state.names.rate_limits())

        owned: list[Backend] = []
        if local is None:
            owned.append(build_local(settings))
        if cloud is None:
            owned.append(build_cloud(settings))
        app.state.tiers = {
            "local": local or owned[0],
            "cloud": cloud or owned[-1],
        }
        app.state.metrics.watch_local(app.state.tiers["local"])
        app.state.router_context = build_context(
            settings, app.state.tiers["local"], app.state.tiers["cloud"],
            with_retrieval=with_retrieval)
        app.state.graph = build_graph()
        log.info("execution checks: %s; auth %s", isolation_mode(app.state.router_context.sandbox),
                 "on" if settings.auth.enabled else "OFF (loopback only)")
        # arq's client on the server that holds the queue (a cluster's: the primary of its slot)
        app.state.arq = await outlast(
            lambda: TaskQueue.open(settings.redis, app.state.names, app.state.redis),
            what="the task queue's opening")
        app.state.worker = None
        if settings.tasks.embedded_worker:
            app.state.worker = EmbeddedWorker(
                settings, app.state.names, store=app.state.redis, graph=app.state.graph,
                context=app.state.router_context, metrics=app.state.metrics)
            await app.state.worker.start()
        try:
            yield
        finally:
            if app.state.worker is not None:
                await app.state.worker.stop()  # before the backends close
            if app.state.arq is not None:
                await app.state.arq.aclose()
            await app.state.rate_limits.aclose()
            await app.state.redis.aclose()
            retrieval = app.state.router_context.retrieval
            if retrieval is not None:
                retrieval.close()
            for backend in owned:
                backend.close()

    app = FastAPI(title="SmallCode Router", lifespan=lifespan)
    app.state.settings = settings
    app.state.stopping = Stopping()  # told by `smallcode serve` when it is asked to stop
    app.state.key_cache = KeyCache(settings.auth.key_cache_s)
    app.state.metrics = Metrics()
    app.state.admission = Admission(settings.server.max_generating)
    errors.install(app)
    openapi.install(app)

    app.add_middleware(ReleaseAdmission)
    app.add_middleware(BodyLimit, max_body_bytes=settings.server.max_body_bytes)
    app.add_middleware(AccessLog)  # outermost of ours: it sees the 413s too

    app.include_router(routes.router)
    app.include_router(completions.router)
    app.include_router(anthropic_api.router)
    app.include_router(responses_api.router)
    app.include_router(keys.router)
    app.include_router(usage.router)
    app.include_router(tasks.router)
    app.include_router(dashboard.router)
    app.include_router(health.router)

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        state = request.app.state
        with contextlib.suppress(RedisError):  # Redis away: the gauges keep their last values
            state.metrics.queue_depth.set(await state.redis.zcard(state.names.queue()))
            state.metrics.workers.set(len(await task_store.live_workers(state.redis, state.names)))
        return Response(state.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
