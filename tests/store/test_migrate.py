"""A store written with the keys of before ``redis.cluster`` (one global ledger layout, API
keys untagged) is moved to the per-team names at start-up: its keys still work, its usage
still adds up, per team, and a second run finds nothing to move."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from router.run.outcome import RouteRecord, ledger_entry
from router.store import apikeys, ledger, migrate
from router.store.names import Names

P = "old"


def entry_of(team: str, request_id: str, key_id: str, cost: float, at: float) -> dict[str, Any]:
    record = {"final": "cloud", "reason": "low_confidence", "escalated": True,
              "tokens": {"prompt": 10, "completion": 5, "local_completion": 3},
              "cost_usd": cost, "counterfactual_cost_usd": cost, "timings_ms": {}}
    entry = ledger_entry(request_id=request_id, team=team, key_id=key_id, source="chat",
                         record=RouteRecord.routed(record), latency_ms=120)
    return {**entry, "time": at, "session": "s1" if team == "alpha" else None}


async def write_old(redis: Redis, entry: dict[str, Any]) -> None:
    """What the ledger's write did before: one global layout."""
    day = ledger.day_of(entry["time"])
    team = entry["team"]
    await redis.set(f"{P}:ledger:entry:{entry['id']}", json.dumps(entry), ex=86400)
    await redis.set(f"{P}:ledger:record:{entry['id']}", json.dumps({"id": entry["id"]}),
                    ex=86400)
    await redis.zadd(f"{P}:ledger:by-time", {entry["id"]: entry["time"]})
    await redis.zadd(f"{P}:ledger:by-time:{team}", {entry["id"]: entry["time"]})
    await redis.zadd(f"{P}:ledger:rollup-days", {day: dt.date.fromisoformat(day).toordinal()})
    group = f"{team}|{entry['route']}|{entry['reason']}"
    for metric, amount in ledger._increments(entry).items():
        await redis.hincrbyfloat(f"{P}:ledger:rollup:{day}", f"{group}|{metric}", amount)
        if entry.get("session"):
            await redis.hincrbyfloat(f"{P}:ledger:sessions:{day}",
                                     f"{team}|{entry['session']}|{metric}", amount)
    await redis.expire(f"{P}:ledger:rollup:{day}", 86400)
    for field, amount in ledger._histogram_increments(entry).items():
        await redis.hincrbyfloat(f"{P}:ledger:histograms:{day}", field, amount)
    await redis.hincrbyfloat(f"{P}:ledger:key-spend:{day[:7]}", entry["key_id"],
                             entry["cost_usd"])


async def old_key(redis: Redis, key_id: str, team: str, secret: str) -> None:
    await redis.hset(f"{P}:apikey:{key_id}", mapping={
        "id": key_id, "team": team, "created_at": repr(time.time()), "budget_usd": "",
        "period": "month", "rpm": "", "tpm": "", "local_only": "0", "revoked": "0"})
    await redis.hset(f"{P}:apikey-hashes", apikeys.hash_secret(secret), key_id)
    await redis.sadd(f"{P}:apikeys", key_id)


async def _upgrade(url: str) -> dict[str, Any]:
    redis = Redis.from_url(url)
    names = Names(P)
    now = time.time()
    try:
        await old_key(redis, "ka", "alpha", "sk-a")
        await old_key(redis, "kb", "beta", "sk-b")
        for team, rid, key_id, cost, at in (("alpha", "r1", "ka", 0.01, now - 3),
                                            ("beta", "r2", "kb", 0.02, now - 2),
                                            ("alpha", "r3", "ka", 0.04, now - 1)):
            await write_old(redis, entry_of(team, rid, key_id, cost, at))
        moved = await migrate.upgrade(redis, names)
        again = await migrate.upgrade(redis, names)
        day = dt.date.fromisoformat(ledger.day_of(now))
        rows = await ledger.rollup_rows(redis, names, first=day, last=day, team=None)
        sessions = await ledger.session_rows(redis, names, first=day, last=day, team=None)
        found = await apikeys.lookup(redis, names, "sk-b")
        return {
            "moved": moved, "again": again,
            "left": sorted(k.decode() for k in await redis.keys(f"{P}:*")
                           if b"{" not in k and not k.endswith(b"ledger:teams")),
            "lookup": found.team if found else None,
            "listed": [k.id for k in await apikeys.list_keys(redis, names)],
            "entries": [e["id"] for e in await ledger.page_entries(
                redis, names, team=None, start=0, end=now + 1, limit=10)],
            "alpha": [e["id"] for e in await ledger.page_entries(
                redis, names, team="alpha", start=0, end=now + 1, limit=10)],
            "record": await ledger.get_record(redis, names, "r2"),
            "by_team": {r["team"]: (r["tasks"], r["cloud_spend_usd"])
                        for r in ledger.summarize(rows, "team")},
            "sessions": [(r.team, r.session, r.metrics["tasks"]) for r in sessions],
            "spend": await ledger.key_spend(redis, names, day.isoformat()[:7], team="alpha"),
            "latency": sum(sum(c) for c in (await ledger.histograms(
                redis, names, first=day, last=day, team="beta"))["latency_ms"]["routes"].values()),
            "ttl": await redis.ttl(names.entry("beta", "r2")),
        }
    finally:
        await redis.aclose()


def test_an_old_store_is_moved_to_the_per_team_names_once(redis_url: str) -> None:
    found = asyncio.run(_upgrade(redis_url))
    assert found["moved"] is True and found["again"] is False
    assert found["left"] == []  # nothing of the old layout stays
    assert found["lookup"] == "beta" and sorted(found["listed"]) == ["ka", "kb"]
    assert found["entries"] == ["r3", "r2", "r1"] and found["alpha"] == ["r3", "r1"]
    assert found["record"] == {"id": "r2"}
    assert found["by_team"] == {"alpha": (2, pytest.approx(0.05)), "beta": (1, 0.02)}
    assert found["sessions"] == [("alpha", "s1", 2.0)]
    assert found["spend"] == pytest.approx({"ka": 0.05})
    assert found["latency"] == 1
    assert 0 < found["ttl"] <= 86400  # the time it had left carries over


async def _upgrade_tasks(url: str) -> dict[str, Any]:
    """Tasks as the old layout wrote them (untagged keys, a job in the old queue named by the
    bare task id), moved; then read back through the store as the service reads them."""
    from arq.connections import ArqRedis

    from router.run.runner import JOB
    from router.store import tasks

    names = Names(P)
    redis = Redis.from_url(url)
    old_queue = ArqRedis.from_url(url)
    try:
        done_id, queued_id = "task-" + "a" * 32, "task-" + "b" * 32
        for task_id, status in ((done_id, "done"), (queued_id, "queued")):
            await redis.hset(f"{P}:task:{task_id}", mapping={  # type: ignore[misc]
                "id": task_id, "team": "alpha", "key_id": "", "status": status,
                "created_at": repr(time.time()), "request": "{}",
                "request_hash": tasks.request_hash({}),
                "attempts": "0", "idempotency_key": ""})
            await redis.expire(f"{P}:task:{task_id}", 3600)
            await redis.xadd(f"{P}:task-events:{task_id}", {"event": "queued", "data": "{}"})
        await redis.set(f"{P}:idempotency:alpha:ci-run-7", done_id, ex=3600)
        await old_queue.enqueue_job(JOB, queued_id, _job_id=queued_id, _queue_name=f"{P}:queue")
        moved = await migrate.upgrade_tasks(redis, names)
        again = await migrate.upgrade_tasks(redis, names)
        replayed = await tasks.create(redis, names, team="alpha", key_id=None, request={},
                                      keep_s=3600, idempotency_key="ci-run-7")
        return {
            "moved": moved, "again": again,
            "done": await tasks.get(redis, names, done_id),
            "events": await tasks.read_events(redis, names, queued_id, after="0", block_ms=None),
            "ttl": await redis.ttl(names.task(done_id)),
            "replayed": (replayed.task["id"], replayed.new),
            "queue": await redis.zrange(names.queue(), 0, -1),
            "job": await redis.exists("arq:job:" + names.job_id(queued_id)),
            "old": await redis.keys(f"{P}:task:task-*") + await redis.keys(f"{P}:queue"),
            "done_id": done_id, "queued_id": queued_id,
        }
    finally:
        await old_queue.aclose()
        await redis.aclose()


def test_old_tasks_and_queued_jobs_move_to_the_sharded_names_once(redis_url: str) -> None:
    found = asyncio.run(_upgrade_tasks(redis_url))
    names = Names(P)
    assert found["moved"] >= 7 and found["again"] == 0
    assert found["done"]["status"] == "done" and 0 < found["ttl"] <= 3600  # expiry kept
    assert [e.event for e in found["events"]] == ["queued"]
    assert found["replayed"] == (found["done_id"], False)  # the old Idempotency-Key still works
    assert found["queue"] == [names.job_id(found["queued_id"]).encode()]
    assert found["job"] == 1 and found["old"] == []
