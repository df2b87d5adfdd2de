"""Async tasks in Redis: one hash per task, an idempotency key per (team, Idempotency-Key), and
a stream of events per task (what ``GET /v1/tasks/{id}/events`` replays).

Every change of a task's status is one Lua step that checks the status it moves from and
appends the matching event, so a cancel and a worker's finish cannot both win, and the events
always agree with the record. A task's keys share its hash tag (its shard, in its id), so each
step runs on one slot of a Redis Cluster; nothing here uses MULTI/EXEC, which the asyncio
cluster client does not run (a pipeline here is a batch of independent commands). Statuses::

    queued ──► running ──► done | failed
       │          │  ▲
       │          └──┘ (a worker died: the next one takes it over)
       └──────────┴──► cancelled
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from router.store import budgets
from router.store.names import Names, new_task_id, shard_of_key

Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})
FINAL_EVENTS: frozenset[str] = FINAL  # the event that ends a task's stream carries its status
EVENTS_MAX = 20_000  # a stream longer than this loses its oldest entries (token batches)

# KEYS: task, events[, idempotency]. ARGV: id, keep_s, idempotency_s, event, then field pairs.
_CREATE = """
if #KEYS == 3 then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {existing, 0} end
  redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[3])
end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', EVENTS_MAX, '*', 'event', 'queued', 'data', ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {ARGV[1], 1}
""".replace("EVENTS_MAX", str(EVENTS_MAX))

# KEYS: task, events. ARGV: allowed statuses (comma-separated), keep_s, event, data,
# attempt increment (0/1), then field pairs. Returns {status before, attempts after}.
_MOVE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'', 0} end
local allowed = false
for s in string.gmatch(ARGV[1], '[^,]+') do if s == status then allowed = true end end
if not allowed then return {status, tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')} end
for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', ARGV[5])
redis.call('XADD', KEYS[2], '*', 'event', ARGV[3], 'data', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {status, attempts}
"""


class TaskConflict(Exception):
    """An Idempotency-Key that already names a task made from a different request."""


@dataclass(frozen=True)
class Created:
    task: dict[str, Any]
    new: bool  # False: the Idempotency-Key named an existing task, returned as it is


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


async def create(redis: Redis, names: Names, *, team: str, key_id: str | None,
                 request: dict[str, Any], keep_s: int, idempotency_key: str | None = None,
                 idempotency_s: int = 86400) -> Created:
    """Record a queued task (and its first event) in one step. With ``idempotency_key``, a key
    the team already used within ``idempotency_s`` returns that task instead; the same key with
    a different request raises :class:`TaskConflict`."""
    # With a key, the task's id carries the key's shard: the key and the task share a slot.
    task_id = new_task_id(shard_of_key(team, idempotency_key) if idempotency_key else None)
    digest = request_hash(request)
    now = time.time()
    fields = {"id": task_id, "team": team, "key_id": key_id or "", "status": "queued",
              "created_at": repr(now), "request": json.dumps(request), "request_hash": digest,
              "attempts": "0", "idempotency_key": idempotency_key or ""}
    keys = [names.task(task_id), names.task_events(task_id)]
    if idempotency_key is not None:
        keys.append(names.idempotency(team, idempotency_key))
    args: list[Any] = [task_id, keep_s, idempotency_s, json.dumps({"status": "queued"})]
    for field, value in fields.items():
        args += [field, value]
    found, new = await redis.eval(_CREATE, len(keys), *keys, *args)  # type: ignore[misc]
    found_id = found.decode() if isinstance(found, bytes) else str(found)
    task = await get(redis, names, found_id)
    if task is None:  # the key outlived its task (a shorter keep_s): start afresh
        await redis.delete(names.idempotency(team, idempotency_key or ""))
        return await create(redis, names, team=team, key_id=key_id, request=request,
                            keep_s=keep_s, idempotency_key=idempotency_key,
                            idempotency_s=idempotency_s)
    if not new and task.get("request_hash") != digest:
        raise TaskConflict(idempotency_key)
    return Created(task, bool(new))


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    data = {k.decode(): v.decode() for k, v in raw.items()}
    task: dict[str, Any] = {
        "id": data["id"], "team": data["team"], "key_id": data.get("key_id") or None,
        "status": data["status"], "attempts": int(data.get("attempts") or 0),
        "request_hash": data.get("request_hash"),
        "idempotency_key": data.get("idempotency_key") or None,
    }
    for name in ("created_at", "started_at", "finished_at"):
        task[name] = float(data[name]) if data.get(name) else None
    for name in ("request", "route", "error", "feedback"):
        task[name] = json.loads(data[name]) if data.get(name) else None
    task["answer"] = data.get("answer")
    task["finish_reason"] = data.get("finish_reason")
    return task


async def get(redis: Redis, names: Names, task_id: str) -> dict[str, Any] | None:
    raw = await redis.hgetall(names.task(task_id))
    return _decode(raw) if raw else None


async def _move(redis: Redis, names: Names, task_id: str, *, allowed: tuple[str, ...],
                event: str, data: dict[str, Any], fields: dict[str, str], keep_s: int,
                attempt: bool = False) -> tuple[str | None, int]:
    """Change a task whose status is one of ``allowed``; returns (status before, attempts).
    The status before is None when the task does not exist."""
    args: list[Any] = [",".join(allowed), keep_s, event, json.dumps(data), int(attempt)]
    for field, value in fields.items():
        args += [field, value]
    keys = [names.task(task_id), names.task_events(task_id)]
    before, attempts = await redis.eval(_MOVE, 2, *keys, *args)  # type: ignore[misc]
    before = before.decode() if isinstance(before, bytes) else str(before)
    return (before or None), int(attempts)


async def start_attempt(redis: Redis, names: Names, task_id: str, *, worker: str,
                        keep_s: int) -> tuple[str | None, int]:
    """A worker takes the task: queued (or running, when a dead worker's run is taken over)
    becomes running. Returns (status before, attempt number); run it only when the status
    before was queued or running."""
    return await _move(redis, names, task_id, allowed=("queued", "running"), event="started",
                       data={"worker": worker}, attempt=True, keep_s=keep_s,
                       fields={"status": "running", "started_at": repr(time.time()),
                               "worker": worker})


async def finish(redis: Redis, names: Names, task_id: str, *, status: Status,
                 keep_s: int, answer: str | None = None, route: dict[str, Any] | None = None,
                 finish_reason: str | None = None, error: dict[str, Any] | None = None,
                 allowed: tuple[str, ...] = ("running",)) -> bool:
    """A running task ends (done or failed); False when it had been cancelled meanwhile.
    ``allowed``: the statuses it may end from (a worker giving a task up may end it queued)."""
    fields = {"status": status, "finished_at": repr(time.time())}
    data: dict[str, Any] = {"status": status}
    if answer is not None:
        fields["answer"] = answer
        data["answer"] = answer
    if finish_reason is not None:
        fields["finish_reason"] = finish_reason
    if route is not None:
        fields["route"] = json.dumps(route)
        data["route"] = {k: route.get(k) for k in ("final", "reason", "escalated", "confidence",
                                                    "cost_usd")}
    if error is not None:
        fields["error"] = json.dumps(error)
        data["error"] = error
    before, _ = await _move(redis, names, task_id, allowed=allowed, event=status,
                            data=data, fields=fields, keep_s=keep_s)
    return before in allowed


async def cancel(redis: Redis, names: Names, task_id: str, *, keep_s: int) -> str | None:
    """Cancel a queued or running task; returns its status now (None: no such task). A task
    already done, failed or cancelled keeps its status."""
    before, _ = await _move(redis, names, task_id, allowed=("queued", "running"),
                            event="cancelled", data={"status": "cancelled"}, keep_s=keep_s,
                            fields={"status": "cancelled", "finished_at": repr(time.time())})
    if before in ("queued", "running"):
        return "cancelled"
    return before


async def status(redis: Redis, names: Names, task_id: str) -> str | None:
    raw = await redis.hget(names.task(task_id), "status")
    return raw.decode() if raw else None


async def add_events(redis: Redis, names: Names, task_id: str,
                     events: list[tuple[str, dict[str, Any]]]) -> None:
    """Append progress events (node ends, token batches) in one round trip."""
    if not events:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for kind, data in events:
            pipe.xadd(names.task_events(task_id), {"event": kind, "data": json.dumps(data)},
                      maxlen=EVENTS_MAX, approximate=True)
        await pipe.execute()


@dataclass(frozen=True)
class Event:
    id: str
    event: str
    data: str  # JSON text


async def read_events(redis: Redis, names: Names, task_id: str, *, after: str,
                      block_ms: int | None, count: int = 500) -> list[Event]:
    """Events after the stream entry id ``after`` ("0" for all), waiting up to ``block_ms``
    for the first one when there are none yet (None: do not wait)."""
    found = await redis.xread({names.task_events(task_id): after}, count=count, block=block_ms)
    events = []
    for _stream, entries in found or []:
        for entry_id, fields in entries:
            events.append(Event(entry_id.decode(), fields[b"event"].decode(),
                                fields[b"data"].decode()))
    return events


async def set_feedback(redis: Redis, names: Names, task_id: str, *, accepted: bool,
                       tests_passed: bool | None, keep_s: int) -> dict[str, Any]:
    """Store the outcome labels of a task's answer (the last ones given count)."""
    now = time.time()
    feedback = {"accepted": accepted, "tests_passed": tests_passed, "at": now}
    # The labels first, then the index that calibration reads (another slot on a cluster).
    await redis.hset(names.task(task_id), "feedback", json.dumps(feedback))  # type: ignore[misc]
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zadd(names.task_feedback(), {task_id: now})
        pipe.zremrangebyscore(names.task_feedback(), "-inf", now - keep_s)
        await pipe.execute()
    return feedback


# --- workers' heartbeats -------------------------------------------------------------------

async def with_feedback(redis: Redis, names: Names) -> list[dict[str, Any]]:
    """Every kept task that has feedback, oldest first (for ``calibrate --from-feedback``)."""
    ids = await redis.zrange(names.task_feedback(), 0, -1)
    found = [await get(redis, names, i.decode()) for i in ids]
    return [t for t in found if t is not None and t.get("feedback")]


async def beat(redis: Redis, names: Names, worker: str, *, ttl_s: float,
               info: dict[str, Any]) -> None:
    """A worker says it is alive (a key that expires after ``ttl_s``, and the workers' index)."""
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:  # one slot; atomic is not needed
        pipe.set(names.worker_heartbeat(worker), json.dumps({**info, "at": now}),
                 px=max(1, int(ttl_s * 1000)))
        pipe.zadd(names.workers(), {worker: now + ttl_s})
        pipe.zremrangebyscore(names.workers(), "-inf", now)
        await pipe.execute()


async def leave(redis: Redis, names: Names, worker: str) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.delete(names.worker_heartbeat(worker))
        pipe.zrem(names.workers(), worker)
        await pipe.execute()


async def live_workers(redis: Redis, names: Names) -> list[dict[str, Any]]:
    """Workers whose heartbeat has not expired (what ``/readyz`` asks for)."""
    ids = await redis.zrangebyscore(names.workers(), time.time(), "+inf")
    if not ids:
        return []
    raws = await redis.mget([names.worker_heartbeat(i.decode()) for i in ids])
    return [{"worker": i.decode(), **json.loads(r)} for i, r in zip(ids, raws, strict=True) if r]


async def note_holds(redis: Redis, names: Names, task_id: str,
                     held: list[budgets.Reservation], *, attempt: int) -> None:
    """Keep the budget reservations attempt ``attempt`` took for one cloud call, with the
    task: if its worker dies mid call, the next attempt settles them (:func:`holds`)."""
    field = f"holds:{attempt}"
    kept = json.loads(await redis.hget(names.task(task_id), field) or "[]")
    kept.append([[r.key, r.id, r.amount_usd] for r in held])
    await redis.hset(names.task(task_id), field, json.dumps(kept))


# KEYS: task. ARGV: attempt, amount, the call's id. Noted only while the attempt is the task's
# latest; a call's note sent again (a client re-sending a command whose reply it lost) once.
_NOTE_SETTLED = """
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') ~= tonumber(ARGV[1]) then return 0 end
if redis.call('HSETNX', KEYS[1], 'noted:' .. ARGV[3], ARGV[2]) == 0 then return 1 end
redis.call('HINCRBYFLOAT', KEYS[1], 'settled:' .. ARGV[1], ARGV[2])
return 1
"""


async def note_settled(redis: Redis, names: Names, task_id: str, usd: float, call: str, *,
                       attempt: int) -> bool:
    """Keep what attempt ``attempt``'s cloud call is charged, before its budget is charged:
    if its worker dies (or its store fails) before the attempt's ledger entry is written, the
    next attempt records that amount (:func:`settled`), the one its budget was, or will be,
    settled at. False, noting nothing, when a later attempt has begun (this one's worker lost
    its claim on the task while it ran): that attempt may be recording this one as lost at
    what it found, so this one's budget is charged only with its ledger entry (the claim
    decides which of the two records it: :class:`router.store.ledger.Claim`)."""
    noted = await redis.eval(_NOTE_SETTLED, 1, names.task(task_id), attempt, usd, call)  # type: ignore[misc]
    return bool(noted)


async def settled(redis: Redis, names: Names, task_id: str, *, attempt: int) -> float | None:
    """What :func:`note_settled` kept for ``attempt``; None when its call was never settled."""
    raw = await redis.hget(names.task(task_id), f"settled:{attempt}")
    return None if raw is None else float(raw)


async def holds(redis: Redis, names: Names, task_id: str, *,
                attempt: int) -> list[list[budgets.Reservation]]:
    """The reservations attempt ``attempt`` took, one list per cloud call, in order."""
    kept = json.loads(await redis.hget(names.task(task_id), f"holds:{attempt}") or "[]")
    return [[budgets.Reservation(key, rid, float(amount)) for key, rid, amount in call]
            for call in kept]


async def attempt_events(redis: Redis, names: Names, task_id: str, *,
                         attempt: int) -> list[tuple[str, dict[str, Any]]]:
    """The progress events attempt ``attempt`` wrote (those between its ``started`` event and
    the next one), as (kind, data)."""
    found: list[tuple[str, dict[str, Any]]] = []
    started = 0
    for _id, fields in await redis.xrange(names.task_events(task_id)):
        kind = fields[b"event"].decode()
        if kind == "started":
            started += 1
            continue
        if started == attempt:
            found.append((kind, json.loads(fields[b"data"])))
    return found
