"""The worker that runs async tasks (``POST /v1/tasks``) through the routing graph, on arq.

arq gives the queue its guarantees: a job's id names the task (``Names.job_id``: enqueueing
twice is a no-op),
a worker claims a job with an ``in-progress`` key before running it, and a job whose worker
dies stays in the queue until that claim expires, when another worker runs it again. The
claim here is a lease: it lasts ``tasks.lease_s`` and the worker renews it while the task
runs, so a killed worker's task runs again after seconds, however long tasks may take
(``tasks.timeout_s``). A re-run cannot charge twice: the ledger is written once per task id.

One job, start to end::

    start_attempt (queued|running → running; cancelled → skip)
      → the graph, in a thread (the models block), each node and token batch an event
      → ledger entry (once per task id) → done | failed (the final event)

Cancelling (``DELETE /v1/tasks/{id}``) marks the task cancelled: a queued one never runs; a
running one stops at its next token or node (the worker sees the mark within half a second),
and what it ran is recorded in the ledger (reason ``cancelled``: a cloud call's partial spend,
as its budget was charged); so is a task stopped past ``tasks.timeout_s`` (``timeout``).
SIGTERM or SIGINT stops a worker the same way and puts its tasks back in the queue.

Two clients: arq's own (``ctx["redis"]``), on the server that holds the queue, for the queue
and the lease; and a store client (``ctx["store"]``, from ``connect.client``: a cluster
client on a Redis Cluster) for the task's record and events, the ledger, budgets and keys,
which a cluster spreads over its nodes (:mod:`router.store.queue` says why arq keeps its own).
The store client outlives the arq workers made over it (one after another when Redis is lost,
or when a failover moves the queue to another primary): it knows every node of a cluster, so
it finds the queue's new primary even when the node ``redis.url`` names is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Retry, Worker, func
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agents.cloud import price
from agents.errors import AgentError
from policies.errors import PolicyError
from retrieval.errors import RetrievalError
from router.graph.errors import RouterError, TaskCancelled
from router.run.caller import Caller
from router.run.outcome import RouteRecord, StopReason, write_ledger
from router.run.ratelimit import RateLimits
from router.run.runner import JOB, STOP_GRACE_S, Event, Run, Tally
from router.store import budgets, connect, ledger, queue, tasks
from router.store.apikeys import get_key
from router.store.config import TaskSettings
from router.store.names import Names

if TYPE_CHECKING:
    from router.graph.answer import RoutedAnswer
    from router.graph.context import RouterContext
    from router.service.metrics import Metrics
    from router.settings import Settings

log = logging.getLogger("smallcode.worker")
# A job whose store failed runs again after 1, 2, 4, 8, then every 15 s: a killed cluster
# primary's replica takes its slots over within about two cluster node timeouts (RELIABILITY.md,
# topology), and the tries a store outage takes are not the task's (tasks.store_outage_s).
STORE_RETRY_S = 1.0
STORE_RETRY_MAX_S = 15.0


def store_retry_s(job_try: int) -> float:
    """How long try ``job_try`` of a job, ended by its store, waits before the next one."""
    return min(STORE_RETRY_S * 2 ** (job_try - 1), STORE_RETRY_MAX_S)


def job_tries(config: TaskSettings) -> int:
    """The tries arq gives a task's job: ``tasks.max_tries`` runs (each begun run counts,
    a killed worker's too), the tries that wait out a store away for
    ``tasks.store_outage_s``, and one more, whose only work is to end the task failed."""
    outage, waited = 0, 0.0
    while waited < config.store_outage_s:
        outage += 1
        waited += store_retry_s(outage)
    return config.max_tries + outage + 1


def _error(exc: BaseException) -> dict[str, Any]:
    """A failure as a client sees it: our own errors by type and message; anything else
    without its message (it may hold data)."""
    if isinstance(exc, RouterError | AgentError | PolicyError | RetrievalError):
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "internal_error", "message": "internal error; see the worker's log"}


@dataclass
class TaskRunner:
    """What a job needs: the settings, the graph and its context (the loaded models)."""

    settings: Settings
    names: Names
    graph: Any
    context: RouterContext
    worker_id: str
    metrics: Metrics | None = None  # this process's /metrics: each ledger entry counted there
    # The tasks this process runs now, shared by the workers it starts one after another (a
    # worker that lost Redis is replaced while its tasks go on): a job arq hands out again
    # for one of them (its claim lapsed with the store) waits instead of running it twice.
    running: set[str] = field(default_factory=set)
    _limits: RateLimits | None = None  # one for all tasks (on a cluster: its own client)

    def limits(self, redis: Redis) -> RateLimits:
        if self._limits is None:
            self._limits = RateLimits(redis, self.settings.redis, self.names.rate_limits())
        return self._limits

    async def aclose(self) -> None:
        limits, self._limits = self._limits, None
        if limits is not None:
            with contextlib.suppress(RedisError, OSError):
                await limits.aclose()

    async def _write(self, redis: Redis, **entry: Any) -> bool:
        """The run's ledger entry (once per id), counted in this process's metrics when new;
        True when it was."""
        written = await write_ledger(redis, self.names, **entry)
        if written is not None and self.metrics is not None:
            self.metrics.observe(written)
        return written is not None

    async def _record(self, redis: Redis, task: dict[str, Any], attempt: int, caller: Caller,
                      record: RouteRecord, *, status: str, latency_ms: float,
                      own_id: bool = True) -> bool:
        """Record what attempt ``attempt`` ran, once: under the task's id (``own_id``: the
        task's own entry is the run that ends it), or under the attempt's id when that one is
        taken (another attempt of the task answered it while this one ran) or not ``own_id``.
        Its budget reservations a later attempt began before it could settle them
        (``gate.deferred``) are settled once it is written. False when a later attempt
        recorded this one already (as lost, at what it found): nothing more is written or
        charged here."""
        claim = ledger.Claim(task["id"], attempt, "self")
        entry = {"team": task["team"], "key_id": task["key_id"], "source": "task",
                 "record": record, "latency_ms": latency_ms, "status": status,
                 "retention_days": self.settings.redis.retention_days, "claim": claim}
        ids = [task["id"]] if own_id else []
        for request_id in [*ids, attempt_id(task["id"], attempt)]:
            if await self._write(redis, request_id=request_id, **entry):
                break
        else:
            log.info("task %s: attempt %d was recorded by a later attempt", task["id"], attempt)
            return False
        await self._settle_deferred(redis, caller)
        await self._charge(caller, task["id"], record)
        return True

    @staticmethod
    async def _settle_deferred(redis: Redis, caller: Caller) -> None:
        """Settle the reservations the run's gate left to the runner (a later attempt had
        begun when its call was charged): each once, as every settle is."""
        for reservations, usd in caller.gate.deferred if caller.gate is not None else []:
            for reservation in reservations:
                await budgets.settle(redis, reservation, usd)

    async def run(self, redis: Redis, task_id: str, *, job_try: int) -> str:
        """Run the task ``task_id`` once (``redis``: the store); returns its final status."""
        config = self.settings.tasks
        keep_s = config.keep_s
        if job_try >= job_tries(config):  # its tries all ended early: give up
            # From queued too: a task whose every try failed before it started (its store
            # failing under each) is not left queued with no job behind it.
            await tasks.finish(redis, self.names, task_id, status="failed", keep_s=keep_s,
                               allowed=("queued", "running"),
                               error={"type": "worker_lost", "message": (
                                   f"the task's store failed under it for longer than "
                                   f"tasks.store_outage_s ({config.store_outage_s:g} s), or "
                                   f"its workers stopped, {job_try - 1} tries in all")})
            return "failed"
        before, attempt = await tasks.start_attempt(redis, self.names, task_id,
                                                    worker=self.worker_id, keep_s=keep_s)
        if before not in ("queued", "running"):
            log.info("task %s not run: it is %s", task_id, before or "gone")
            return before or "gone"
        if attempt > config.max_tries:  # its runs all ended early (their workers died)
            await tasks.finish(redis, self.names, task_id, status="failed", keep_s=keep_s,
                               error={"type": "worker_lost", "message": (
                                   f"the task's worker stopped before it finished, "
                                   f"{attempt - 1} times (tasks.max_tries)")})
            return "failed"
        task = await tasks.get(redis, self.names, task_id)
        if task is None:  # expired between the two reads
            return "gone"
        log.info("task %s: attempt %d on %s", task_id, attempt, self.worker_id)
        return await self._attempt(redis, task, attempt)

    async def _attempt(self, redis: Redis, task: dict[str, Any], attempt: int) -> str:
        """Attempt ``attempt`` of ``task``, begun: its run, its record and its end."""
        config = self.settings.tasks
        keep_s = config.keep_s
        task_id = task["id"]
        caller = await self._caller(redis, task)
        # Earlier attempts whose worker died or stopped, or whose store went away: their spend
        # counts (each at most once; one that recorded itself, or ran nothing, is skipped).
        for earlier in range(1, attempt):
            await self._lost_attempt(redis, task, caller, earlier)
        if caller.gate is not None:
            caller.gate.on_hold = functools.partial(tasks.note_holds, redis, self.names,
                                                    task_id, attempt=attempt)
            caller.gate.on_settle = functools.partial(tasks.note_settled, redis, self.names,
                                                      task_id, attempt=attempt)
        started = time.perf_counter()
        run = Run(self.graph, caller.task(task["request"]), caller.context(self.context))
        pump = asyncio.create_task(self._pump(redis, task_id, run))
        ended = asyncio.Event()
        guard = asyncio.create_task(self._guard(redis, task_id, run.cancel, ended))
        outcome: RoutedAnswer | BaseException
        try:
            try:
                outcome = await run.answer(config.timeout_s)
            except asyncio.CancelledError:  # the worker is stopping: record, back to the queue
                await run.stop()
                outcome = asyncio.CancelledError()
                if run.work.done() and run.failure() is None:
                    outcome = run.work.result()  # it finished before it noticed: serve it
            except TimeoutError:
                await run.stop()
                outcome = TimeoutError(f"the task ran past tasks.timeout_s "
                                       f"({config.timeout_s:g} s)")
            except Exception as exc:  # every failure becomes the task's error
                outcome = exc
        finally:
            ended.set()  # the guard stops at its next step even if its cancel is lost
            guard.cancel()
            run.end()
            await pump  # every progress event lands before the final one
        if isinstance(outcome, Exception) and connect.redis_failed(outcome):
            # The store failed under the run (the budget gate's calls: StoreFailed; redis-py's
            # failover errors), as in a primary's failover: not the task's failure. Back to
            # the queue; the next attempt settles what this one held or spent (_lost_attempt),
            # as for a killed worker; run_task_job logs it and queues the job again.
            raise outcome
        latency_ms = (time.perf_counter() - started) * 1000
        if isinstance(outcome, asyncio.CancelledError):
            # What this attempt ran is recorded under its own id (the task's own entry is
            # its final run's), its budget already settled at that; then arq queues it again.
            record = run.stopped_record("worker_stopped")
            if record is not None:
                await self._record(redis, task, attempt, caller, record, status="requeued",
                                   latency_ms=latency_ms, own_id=False)
            log.info("task %s: attempt %d stopped with its worker; it runs again", task_id,
                     attempt)
            raise outcome
        if isinstance(outcome, TaskCancelled | TimeoutError):  # stopped here: record what ran
            stopped: StopReason = "cancelled" if isinstance(outcome, TaskCancelled) else "timeout"
            record = run.stopped_record(stopped)
            if record is not None:
                await self._record(redis, task, attempt, caller, record, latency_ms=latency_ms,
                                   status="cancelled" if stopped == "cancelled" else "failed")
        if isinstance(outcome, TaskCancelled):
            return "cancelled"
        if isinstance(outcome, BaseException):
            if isinstance(outcome, TimeoutError):
                error = {"type": "timeout", "message": str(outcome)}
            else:
                error = _error(outcome)
                log.warning("task %s failed: %s", task_id, type(outcome).__name__)
            await self._settle_deferred(redis, caller)  # as a failed request's call is
            await tasks.finish(redis, self.names, task_id, status="failed", keep_s=keep_s,
                               error=error)
            return "failed"
        record = RouteRecord.routed(outcome.record)
        if not await self._record(redis, task, attempt, caller, record, status="done",
                                  latency_ms=latency_ms):
            # A later attempt began while this one ran and recorded it as lost: that one
            # answers the task.
            return await tasks.status(redis, self.names, task_id) or "gone"
        finished = await tasks.finish(redis, self.names, task_id, status="done", keep_s=keep_s,
                                      answer=outcome.text, route=record.to_json(),
                                      finish_reason=outcome.finish_reason)
        return "done" if finished else (await tasks.status(redis, self.names, task_id) or "gone")

    async def _caller(self, redis: Redis, task: dict[str, Any]) -> Caller:
        """The task's caller: its key (looked up again: revoked or changed since it was
        queued), its team's policy and budget gate, and its key's rate limits (the API
        admitted the task; the tokens it runs are charged here, as a chat's are)."""
        key = await get_key(redis, self.names, task["key_id"]) if task.get("key_id") else None
        limits = None
        if key is not None and key.tpm is not None and self.settings.redis.url:
            limits = self.limits(redis)
        return Caller.resolve(redis, self.names, key=key, key_id=task["key_id"],
                              team=task["team"], policies=self.settings.policies,
                              cloud=self.settings.cloud, limits=limits)

    async def _lost_attempt(self, redis: Redis, task: dict[str, Any], caller: Caller,
                            attempt: int) -> None:
        """Attempt ``attempt`` of ``task`` ended without an answer. A worker that stopped
        recorded it itself (its entry is there); one that died mid run (or lost its store)
        could not: its cloud spend is what its call was charged when it got that far (noted
        before its budgets were), else priced here from its progress events; its budget
        reservations are settled at that (once: one settled already stays as it was, at the
        noted amount), and it gets its ledger entry
        (status ``lost``). A lower bound: tokens its last events did not carry are not
        counted. One cloud call per run is the graph's rule, so the last call's reservations
        carry the whole of it."""
        entry_id = attempt_id(task["id"], attempt)
        if await ledger.get_entry(redis, self.names, entry_id, team=task["team"]) is not None:
            return
        tally = Tally()
        for event in await tasks.attempt_events(redis, self.names, task["id"], attempt=attempt):
            tally.note(event)
        cloud, local, prompt = tally.tokens["cloud"], tally.tokens["local"], tally.prompt_tokens
        # What its call was charged, when it got that far (its budgets were, or are now
        # settled at it); else what its events show.
        noted = await tasks.settled(redis, self.names, task["id"], attempt=attempt)
        if not cloud and noted is None:
            return  # nothing was spent (a local attempt costs nothing)
        cost = noted if noted is not None else price(self.context.price_as, prompt, cloud)
        retention_days = self.settings.redis.retention_days
        # Its claim first: a worker that only lost its claim on the task (its store away past
        # the lease) may still be running it, and records itself if it gets there first.
        if not await ledger.claim_lost(redis, self.names, task["team"], task["id"], attempt,
                                       retention_days=retention_days):
            return
        calls = await tasks.holds(redis, self.names, task["id"], attempt=attempt)
        for n, call in enumerate(calls):
            for reservation in call:
                await budgets.settle(redis, reservation, cost if n == len(calls) - 1 else 0.0)
        record = RouteRecord.stopped("worker_lost", prompt_tokens=prompt, local_tokens=local,
                                     cloud_tokens=cloud, cost_usd=cost,
                                     counterfactual_usd=cost)
        if not await self._write(redis, request_id=entry_id, team=task["team"],
                                 key_id=task["key_id"], source="task", record=record,
                                 latency_ms=0.0, retention_days=retention_days, status="lost",
                                 claim=ledger.Claim(task["id"], attempt, "lost")):
            return  # another attempt recorded it (and charged its tokens) before this one
        await self._charge(caller, task["id"], record)
        log.warning("task %s: attempt %d's worker died mid run; charged what its events show "
                    "it ran ($%.6f)", task["id"], attempt, cost)

    @staticmethod
    async def _charge(caller: Caller, task_id: str, record: RouteRecord) -> None:
        """The task's tokens against its key's tokens per minute (best effort: the ledger
        entry is written; a Redis blip here loses one rate-limit count, not a record)."""
        try:
            await caller.charge(record)
        except RedisError:
            log.warning("task %s: its tokens were not counted against its key's limit", task_id)

    async def _pump(self, redis: Redis, task_id: str, run: Run) -> None:
        """Write the run's progress events as they come, tokens batched (one entry per batch),
        until it ends."""
        done = False
        while not done:
            first = await run.next_event()
            await asyncio.sleep(0.05)  # let a few tokens gather
            batch = [*([first] if first else []), *run.pending()]
            events: list[Event] = []
            for kind, data in batch:
                if kind == "end":
                    done = True
                    continue
                last = events[-1] if events else None
                if kind == "token" and last and last[0] == "token" and \
                        last[1]["tier"] == data["tier"]:
                    last[1]["text"] += data["text"]
                    last[1]["tokens"] += 1
                else:
                    events.append((kind, {**data, "tokens": 1} if kind == "token" else dict(data)))
            with contextlib.suppress(Exception):  # progress is best effort; the outcome is not
                await tasks.add_events(redis, self.names, task_id, events)

    async def _guard(self, redis: Redis, task_id: str, cancel: threading.Event,
                     ended: asyncio.Event) -> None:
        """While the task runs (until ``ended``): hold this worker's claim on it (arq's
        in-progress key, on the queue's slot), and notice a cancel. The claim is renewed
        through the store's client, which follows a cluster's failover (arq's own is a
        one-server client that a worker restarted after losing Redis closes), and set again
        rather than extended, so that a store away for longer than the lease does not leave
        the job free for another worker to start while this one still runs it.

        ``ended``, not only the task's cancellation, stops it: a cancel that reaches it inside
        a store call during a failover can come out of the client as an ordinary error, which
        the loop takes for a blip. The guard then renewed the claim of an attempt that had
        ended for ever, and arq never ran the task's job again (seen in `make test`'s
        topology run: the task stayed ``running``)."""
        claim = in_progress_key_prefix + self.names.job_id(task_id)
        lease_s = self.settings.tasks.lease_s
        tick = min(0.5, lease_s / 3)
        renewed = 0.0
        while not (cancel.is_set() or ended.is_set()):
            now = time.monotonic()
            with contextlib.suppress(Exception):  # a blip: the lease has slack, try again
                if now - renewed >= lease_s / 3:
                    await redis.set(claim, b"1", px=int(lease_s * 1000))
                    renewed = now
                if await tasks.status(redis, self.names, task_id) != "running":
                    cancel.set()
            await asyncio.sleep(tick)


async def run_task_job(ctx: dict[str, Any], task_id: str) -> str:
    """The arq job: run one task (``ctx["runner"]`` holds the graph and the models).

    The job ends only when the task has: anything that escapes the run goes back to the queue
    for another try (arq ``Retry``, after :func:`store_retry_s`), up to :func:`job_tries`
    tries, after which the task is marked failed. arq would otherwise finish the job as failed and
    leave the accepted task ``queued`` or ``running`` for ever, with no job behind it. The run
    turns every failure of the task's own work into its ``failed`` status, so what escapes is
    the store failing under it: a ``RedisError`` (a cluster primary killed, its replica not yet
    promoted), or what redis-py's asyncio cluster client raises for a connection closed under a
    write during that failover, an ``AttributeError`` or uvloop's ``RuntimeError``
    (redis/redis-py#4287; seen in ``make topology``) — or a defect, which the log shows with
    its traceback."""
    runner: TaskRunner = ctx["runner"]
    if task_id in runner.running:
        # This process runs it already: its claim lapsed while the store was away, and arq
        # handed the job out again. It stays queued (not a second run) until that run ends.
        log.info("task %s: running here already; its job waits", task_id)
        raise Retry(defer=runner.settings.tasks.lease_s)
    runner.running.add(task_id)
    try:
        return await runner.run(ctx["store"], task_id, job_try=ctx["job_try"])
    except Exception as exc:
        wait_s = store_retry_s(ctx["job_try"])
        if connect.redis_failed(exc):
            log.warning("task %s: the store failed under it (%s); it runs again in %g s",
                        task_id, type(exc).__name__, wait_s)
        else:  # a defect: its traceback
            log.warning("task %s: its try ended with %s; it runs again in %g s", task_id,
                        type(exc).__name__, wait_s, exc_info=True)
        raise Retry(defer=wait_s) from exc
    finally:
        runner.running.discard(task_id)


async def _close(worker: Worker) -> None:
    """``worker.close()``, without the DeprecationWarning arq 0.28 triggers in redis 5 (it
    calls ``close`` where redis now wants ``aclose``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
        await worker.close()


async def _discard(worker: Worker) -> None:
    """Close what a dead worker leaves open: its Redis connections."""
    runner = worker.ctx.get("runner")
    if isinstance(runner, TaskRunner):
        await runner.aclose()
    pool = getattr(worker, "_pool", None)
    if pool is not None:
        with contextlib.suppress(RedisError, OSError):
            await pool.aclose(close_connection_pool=True)
        worker._pool = None  # type: ignore[assignment]


def attempt_id(task_id: str, attempt: int) -> str:
    """The ledger id of a task's attempt that ended without an answer (its worker stopped or
    died); the task's own entry, under its id, is its final run's."""
    return f"{task_id}#{attempt}"


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def open_worker(settings: Settings, names: Names, *, store: Redis, graph: Any,
                      context: RouterContext, handle_signals: bool,
                      concurrency: int | None = None, burst: bool = False,
                      metrics: Metrics | None = None, running: set[str] | None = None) -> Worker:
    """:func:`build_worker` on the server that holds the queue now (on a cluster: its slot's
    primary, found again through ``store`` each time a worker is made)."""
    found = await queue.queue_url(settings.redis, names, cluster=store)
    return build_worker(settings, names, queue_url=found, store=store, graph=graph,
                        context=context, handle_signals=handle_signals,
                        concurrency=concurrency, burst=burst, metrics=metrics,
                        running=running)


def build_worker(settings: Settings, names: Names, *, queue_url: str, store: Redis, graph: Any,
                 context: RouterContext, handle_signals: bool,
                 concurrency: int | None = None, burst: bool = False,
                 metrics: Metrics | None = None, running: set[str] | None = None) -> Worker:
    """An arq worker for the task queue at ``queue_url`` (:func:`router.store.queue.queue_url`),
    running tasks with ``graph`` and ``context``, on the store client ``store`` (the caller's:
    it stays open when the worker closes).
    Create it inside the event loop it will run in. ``burst``: stop once the queue is empty.
    ``metrics``: where the tasks it runs are counted (the API's, for its embedded worker).
    ``running``: the tasks the process runs now (:attr:`TaskRunner.running`), shared by the
    workers it starts one after another."""
    config = settings.tasks
    worker_id = new_worker_id()
    runner = TaskRunner(settings, names, graph, context, worker_id, metrics,
                        running=set() if running is None else running)
    beating: dict[str, asyncio.Task[None]] = {}
    stopping = asyncio.Event()

    async def heartbeat(redis: ArqRedis) -> None:
        # Until ``stopping``, not only until cancelled: a cancel that reaches a beat inside a
        # store call during a failover can come out as an ordinary error (as for a task's
        # claim, TaskRunner._guard), and the worker's stop would wait on it for ever.
        while not stopping.is_set():
            with contextlib.suppress(Exception):  # Redis away for a moment: beat again later
                await tasks.beat(redis, names, worker_id, ttl_s=config.heartbeat_s * 3,
                                 info={"pid": os.getpid(), "host": socket.gethostname()})
            await asyncio.sleep(config.heartbeat_s)

    async def on_startup(ctx: dict[str, Any]) -> None:
        beating["task"] = asyncio.create_task(heartbeat(ctx["redis"]))
        log.info("worker %s taking tasks from %s", worker_id, names.queue())

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        task = beating.pop("task", None)
        if task is not None:
            stopping.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await tasks.leave(ctx["redis"], names, worker_id)
        await runner.aclose()
        log.info("worker %s stopped", worker_id)

    worker = Worker(
        # arq may start a job more often than tasks.max_tries: the tries a store outage took
        # do not count, and the last one marks the task failed (arq would drop it silently).
        functions=[func(run_task_job, name=JOB, max_tries=job_tries(config),
                        timeout=config.timeout_s + STOP_GRACE_S + 5, keep_result=0)],
        queue_name=names.queue(), redis_settings=queue.arq_settings(queue_url),
        on_startup=on_startup, on_shutdown=on_shutdown, handle_signals=handle_signals, burst=burst,
        max_jobs=concurrency or config.concurrency, poll_delay=config.poll_s,
        ctx={"runner": runner, "store": store}, retry_jobs=True, keep_result=0, log_results=False,
        health_check_interval=config.heartbeat_s)
    # The in-progress claim is a lease renewed while the task runs (TaskRunner._guard), not
    # arq's default of the longest job timeout: a dead worker's task runs again after lease_s.
    worker.in_progress_timeout_s = config.lease_s
    return worker


class EmbeddedWorker:
    """A worker in this process, sharing its loaded models (``smallcode serve``'s)::

        worker = EmbeddedWorker(settings, names, store=redis, graph=graph, context=context)
        await worker.start()   # in the lifespan, before yield
        await worker.stop()    # after it
    """

    def __init__(self, settings: Settings, names: Names, *, store: Redis, graph: Any,
                 context: RouterContext, concurrency: int | None = None,
                 metrics: Metrics | None = None) -> None:
        """``store``: the API's store client (its tasks' records, the ledger; on a cluster,
        what finds the queue's primary)."""
        self._args = {"store": store, "graph": graph, "context": context,
                      "concurrency": concurrency, "metrics": metrics, "running": set()}
        self.settings, self.names = settings, names
        self.worker: Worker | None = None
        self._running: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._running = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        async def new() -> Worker:
            self.worker = await open_worker(self.settings, self.names, handle_signals=False,
                                            **self._args)  # type: ignore[arg-type]
            return self.worker

        await _restarting(new, lambda worker: worker.async_run(), what="the embedded worker")

    async def stop(self) -> None:
        """Stop taking tasks; a running task goes back to the queue for another worker."""
        if self.worker is not None:
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await _close(self.worker)
            await _discard(self.worker)
        if self._running is not None:
            self._running.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._running
        self.worker, self._running = None, None


async def serve_worker(settings: Settings, names: Names, *, graph: Any,
                       context: RouterContext, concurrency: int | None = None,
                       metrics: Metrics | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT (``smallcode worker``); a lost Redis (or, on a
    cluster, a queue whose primary changed) starts a new worker once it is back, instead of
    ending the process."""
    store = connect.client(settings.redis, socket_timeout=5, socket_connect_timeout=2)
    running: set[str] = set()

    async def new() -> Worker:
        return await open_worker(settings, names, store=store, graph=graph, context=context,
                                 handle_signals=True, concurrency=concurrency, metrics=metrics,
                                 running=running)

    async def run(worker: Worker) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM / SIGINT
            await worker.async_run()
        await _close(worker)

    try:
        await _restarting(new, run, what="the worker")
    finally:
        with contextlib.suppress(RedisError, OSError):
            await store.aclose()


async def _restarting(new: Callable[[], Awaitable[Worker]],
                      run: Callable[[Worker], Awaitable[None]], *, what: str) -> None:
    """``run(await new())`` until it ends; a worker that dies of a lost Redis is retired
    (:func:`_retire`) and a new one started, with a backoff, once Redis is back. A one-server
    client on a cluster that no longer owns the queue's slot fails with MOVED (a
    ``RedisError``) or a lost connection: the new worker is opened on the slot's primary of
    now."""
    backoff_s = 0.5
    retiring: list[tuple[Worker, asyncio.Task[None]]] = []
    try:
        while True:
            worker: Worker | None = None
            try:
                worker = await new()
                await run(worker)
                return
            except (RedisError, OSError) as exc:
                log.warning("%s lost Redis (%s); starting again in %.1f s", what,
                            type(exc).__name__, backoff_s)
                if worker is not None:
                    retiring.append((worker, asyncio.create_task(_retire(worker))))
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 10.0)
    finally:
        for old, retired in retiring:  # stopping: their tasks go back to the queue
            for job in old.tasks.values():
                job.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await retired


async def _retire(worker: Worker) -> None:
    """A worker whose loop died of a lost Redis: the tasks it was running go on (each holds
    its claim through the store's client, and records itself) and arq finishes their jobs on
    its client, which is closed only once they have ended; then the rest of it stops (its
    heartbeat, its connections)."""
    running = [job for job in worker.tasks.values() if not job.done()]
    await asyncio.gather(*running, return_exceptions=True)
    if worker.on_shutdown is not None:
        with contextlib.suppress(Exception):
            await worker.on_shutdown(worker.ctx)
    await _discard(worker)
