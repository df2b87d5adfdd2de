"""Async tasks for CI and scripts: ``/v1/tasks``.

``POST`` records the task and puts it on the queue (arq; the job's id names the task:
``Names.job_id``), answering 202;
a worker runs it (:mod:`router.worker`). ``GET`` reads it, ``GET .../events`` follows it as
server-sent events, ``DELETE`` cancels it, ``POST .../feedback`` labels its answer. A team sees
only its own tasks: another team's task id is a 404, as an unknown one is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.graph.validation import validate
from router.run.runner import JOB
from router.service.accounting import limit
from router.service.deps import CallerDep, NamesDep, RedisDep, SettingsDep
from router.service.errors import APIError
from router.service.routes import task_from_chat
from router.service.schemas import ChatCompletionRequest, ChatMessage
from router.store import queue, tasks
from router.store.config import RedisSettings
from router.store.names import Names

router = APIRouter(prefix="/v1/tasks")
log = logging.getLogger("smallcode.api")

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
KEEPALIVE_S = 15


class TaskQueue:
    """Puts tasks on arq's queue (``app.state.arq``), on the server that holds it
    (:mod:`router.store.queue`). On a cluster, an enqueue that fails finds the queue's primary
    again (a failover moves it) and tries once more there. Close it with ``aclose()``."""

    def __init__(self, settings: RedisSettings, names: Names, pool: ArqRedis,
                 store: Redis) -> None:
        self.settings, self.names, self.pool, self.store = settings, names, pool, store
        self._reopening = asyncio.Lock()

    @classmethod
    async def open(cls, settings: RedisSettings, names: Names, store: Redis) -> TaskQueue:
        """``store``: the app's store client (on a cluster, what finds the queue's primary)."""
        return cls(settings, names, await queue.open_pool(settings, names, cluster=store),
                   store)

    async def enqueue(self, task_id: str) -> None:
        """Queue the task's job; a no-op when it is queued already (the job id is the task's)."""
        pool = self.pool
        try:
            await pool.enqueue_job(JOB, task_id, _job_id=self.names.job_id(task_id))
        except (RedisError, OSError):
            if not self.settings.cluster:
                raise
            await self._reopen(pool)
            await self.pool.enqueue_job(JOB, task_id, _job_id=self.names.job_id(task_id))

    async def _reopen(self, failed: ArqRedis) -> None:
        async with self._reopening:
            if self.pool is not failed:  # another request found the owner meanwhile
                return
            fresh = await queue.open_pool(self.settings, self.names, cluster=self.store)
            self.pool = fresh
            with contextlib.suppress(RedisError, OSError):
                await failed.aclose()
            log.info("the task queue is at another primary now; enqueueing there")

    async def aclose(self) -> None:
        await self.pool.aclose()


class TaskRequest(ChatCompletionRequest):
    """A routed chat task's fields; ``prompt`` may stand for a single user message."""

    model_config = ConfigDict(extra="ignore")

    model: str = "auto"
    prompt: str | None = Field(None, min_length=1, description="the task (or give messages)")
    messages: list[ChatMessage] = Field(default_factory=list)
    system: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _prompt_or_messages(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        has_prompt, has_messages = data.get("prompt") is not None, bool(data.get("messages"))
        if has_prompt == has_messages:
            raise ValueError("give either prompt or messages (one of them, not both)")
        return data

    @model_validator(mode="after")
    def _messages_from_prompt(self) -> TaskRequest:
        if self.prompt is not None:
            self.messages = [*([ChatMessage(role="system", content=self.system)]
                               if self.system else []),
                             ChatMessage(role="user", content=self.prompt)]
        return self


class Feedback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accepted: bool
    tests_passed: bool | None = None


@contextlib.contextmanager
def _redis_up() -> Iterator[None]:
    """Redis unreachable: 503 in the OpenAI shape (a task is accepted only once stored)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise APIError(503, f"the task store (Redis) is unreachable ({type(exc).__name__}); "
                       "nothing was queued: try again", type_="service_unavailable",
                       code="store_unavailable") from None


def _public(task: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "status", "team", "created_at", "started_at", "finished_at", "attempts",
            "answer", "finish_reason", "route", "error", "feedback")
    return {"object": "task", **{k: task.get(k) for k in keep}}


async def _own_task(redis: RedisDep, names: NamesDep, caller: CallerDep,
                    task_id: str) -> dict[str, Any]:
    with _redis_up():
        task = await tasks.get(redis, names, task_id)
    if task is None or not caller.sees(task["team"]):
        raise APIError(404, f"no task {task_id!r}", type_="not_found_error", param="id",
                       code="task_not_found")
    return task


def _queue(request: Request) -> TaskQueue:
    found: TaskQueue = request.app.state.arq
    return found


@router.post("", status_code=202, response_model=None)
async def submit(body: TaskRequest, request: Request, caller: CallerDep, redis: RedisDep,
                 names: NamesDep, settings: SettingsDep,
                 idempotency_key: Annotated[str | None, Header()] = None) -> JSONResponse:
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise APIError(400, "Idempotency-Key: use 1-255 printable ASCII characters, no spaces",
                       param="Idempotency-Key")
    run_caller = caller.run_as(request, caller.serving_team(body.team))
    task = run_caller.task(task_from_chat(body))
    # The intake's own checks now, so bad input is a 400 here, not a failed task later.
    validate(task, request.app.state.router_context)
    await limit(run_caller)  # the key's rate limits (the worker, not this process, generates)
    config = settings.tasks
    with _redis_up():
        try:
            created = await tasks.create(redis, names, team=run_caller.team,
                                         key_id=run_caller.key_id,
                                         request=task, keep_s=config.keep_s,
                                         idempotency_key=idempotency_key,
                                         idempotency_s=config.idempotency_s)
        except tasks.TaskConflict:
            raise APIError(422, "Idempotency-Key: this key was used for a different request "
                           "within the last day; use a new key for a new task",
                           param="Idempotency-Key", code="idempotency_key_reused") from None
        if created.task["status"] == "queued":
            # A no-op when the job is queued already (its id is the task's): a retry after a
            # failed enqueue puts it on the queue, and nothing else does twice.
            await _queue(request).enqueue(created.task["id"])
    headers = {} if created.new else {"Idempotent-Replayed": "true"}
    return JSONResponse(_public(created.task), status_code=202, headers=headers)


@router.get("/{task_id}")
async def read(task_id: str, caller: CallerDep, redis: RedisDep,
               names: NamesDep) -> dict[str, Any]:
    return _public(await _own_task(redis, names, caller, task_id))


@router.delete("/{task_id}")
async def cancel(task_id: str, caller: CallerDep, redis: RedisDep, names: NamesDep,
                 settings: SettingsDep) -> dict[str, Any]:
    """Cancel a queued or running task; one that has ended keeps its status (and says so)."""
    await _own_task(redis, names, caller, task_id)
    with _redis_up():
        await tasks.cancel(redis, names, task_id, keep_s=settings.tasks.keep_s)
        task = await tasks.get(redis, names, task_id)
    if task is None:
        raise APIError(404, f"no task {task_id!r}", type_="not_found_error", param="id",
                       code="task_not_found")
    return _public(task)


@router.post("/{task_id}/feedback")
async def feedback(task_id: str, body: Feedback, caller: CallerDep, redis: RedisDep,
                   names: NamesDep, settings: SettingsDep) -> dict[str, Any]:
    task = await _own_task(redis, names, caller, task_id)
    if task["status"] != "done":
        raise APIError(409, f"task {task_id!r} is {task['status']}: feedback labels an answer, "
                       "so only a done task takes it", code="task_not_done")
    with _redis_up():
        labels = await tasks.set_feedback(redis, names, task_id, accepted=body.accepted,
                                          tests_passed=body.tests_passed,
                                          keep_s=settings.tasks.keep_s)
    return {"id": task_id, "object": "task.feedback", **labels}


def _socket_timeout(redis: RedisDep) -> float | None:
    """The client's socket timeout (a cluster client keeps its options per node)."""
    pool = getattr(redis, "connection_pool", None)
    options: dict[str, Any] = (pool.connection_kwargs if pool is not None
                               else getattr(redis, "connection_kwargs", {}))
    found = options.get("socket_timeout")
    return float(found) if found else None


@router.get("/{task_id}/events", response_model=None)
async def events(task_id: str, caller: CallerDep, redis: RedisDep, names: NamesDep,
                 last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    """Server-sent events, each ``id:`` its stream entry's id; send ``Last-Event-ID`` to
    resume after it. The stream ends after the task's final event (done, failed, cancelled)."""
    after = last_event_id or "0"
    if not EVENT_ID.match(after) and after != "0":
        raise APIError(400, "Last-Event-ID: not an event id of this stream (like 1700000000000-0)",
                       param="Last-Event-ID")
    task = await _own_task(redis, names, caller, task_id)

    # A blocking read must end before the client's socket timeout would cut it.
    socket_timeout = _socket_timeout(redis)
    block_s = KEEPALIVE_S if not socket_timeout else min(KEEPALIVE_S, socket_timeout / 2)

    async def stream() -> AsyncIterator[str]:
        cursor = after
        ended = task["status"] in tasks.FINAL
        try:
            while True:
                found = await tasks.read_events(redis, names, task_id, after=cursor,
                                                block_ms=None if ended else int(block_s * 1000))
                if not found:
                    if ended:  # the final event is behind the cursor (or expired)
                        return
                    yield ": keep-alive\n\n"
                    ended = (await tasks.status(redis, names, task_id) or "done") in tasks.FINAL
                    continue
                for event in found:
                    cursor = event.id
                    yield f"id: {event.id}\nevent: {event.event}\ndata: {event.data}\n\n"
                    if event.event in tasks.FINAL_EVENTS:
                        return
                await asyncio.sleep(0)
        except RedisError as exc:  # the response has started: end it; Last-Event-ID resumes
            log.warning("task events of %s cut short: Redis %s", task_id, type(exc).__name__)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
