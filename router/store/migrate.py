"""Moving a store written before keys were tagged for a Redis Cluster to the names of
:mod:`router.store.names`: the API keys (``apikey:<id>``, ``apikeys``, ``apikey-hashes``, now
under one ``{apikeys}`` tag) and the ledger (one global ``ledger:…`` layout, now per team under
``ledger:{<team>}:…``). Run once at start-up (``smallcode serve``, the one-off commands); with
nothing of the old layout left it costs one EXISTS.

Each old key is copied, then deleted, so a run stopped half way is finished by the next: a
copied API key or entry is written again unchanged, while a rollup, histogram, session or
key-spend hash is moved whole by one script per old key (its increments are never applied
twice). Expiry times carry over. A store that never had the old layout (every cluster: the old
layout could not run on one) has nothing to move.

Async tasks moved later (:func:`upgrade_tasks`): a task's record and events from ``task:<id>``
to ``task:{<shard>}:<id>``, idempotency keys under their shard, and the jobs waiting in the old
queue (``<prefix>:queue``, arq's keys named by the bare task id) to the new queue and job ids.
Stop the workers of the old version first: a job one of them is running stays under its old
names (its task is then run again from the new queue only if it was still queued). Done once:
a marker key (``Names.layout``) says so, so later starts cost one EXISTS.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from router.store.names import TASK_ID, Names

log = logging.getLogger("smallcode.redis")

# KEYS: the old hash, then the new per-team hashes; ARGV: the old hash's TTL in ms (-1: none),
# then per new key the count of its field pairs, then all the pairs in key order. One slot
# only on one server, which is where an old layout can be.
_SPLIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local at = 2 + #KEYS - 1
for k = 2, #KEYS do
  local pairs = tonumber(ARGV[k])
  for i = 1, pairs do
    redis.call('HINCRBYFLOAT', KEYS[k], ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[k], ARGV[1]) end
end
redis.call('DEL', KEYS[1])
return 1
"""


class _Old:
    """The old layout's names (before the cluster hash tags)."""

    def __init__(self, prefix: str) -> None:
        self.p = prefix

    def api_key(self, key_id: str) -> str:
        return f"{self.p}:apikey:{key_id}"

    def api_key_ids(self) -> str:
        return f"{self.p}:apikeys"

    def api_key_by_hash(self) -> str:
        return f"{self.p}:apikey-hashes"

    def ledger(self, rest: str) -> str:
        return f"{self.p}:ledger:{rest}"


async def upgrade(redis: Redis, names: Names) -> bool:
    """Move what the old layout holds to the new names; True when there was something."""
    old = _Old(names.prefix)
    if not await redis.exists(old.api_key_ids(), old.api_key_by_hash(), old.ledger("by-time"),
                              old.ledger("rollup-days")):
        return False
    teams_of_keys = await _api_keys(redis, names, old)
    await _ledger(redis, names, old, teams_of_keys)
    log.info("moved the keys and the ledger under %s: to their cluster-ready names",
             names.prefix)
    return True


TASKS_LAYOUT = "tasks-by-shard"


async def upgrade_tasks(redis: Redis, names: Names) -> int:
    """Move the tasks of the old layout (see the module's words); returns how many keys moved.
    A RENAME per key (expiry kept): the old layout is on one server, where any two keys may
    be renamed into each other."""
    if await redis.exists(names.layout()):
        return 0
    p = names.prefix
    moved = 0
    async for raw in redis.scan_iter(match=f"{p}:task:task-*", count=1000):
        task_id = raw.decode().rsplit(":", 1)[1]
        if TASK_ID.match(task_id):
            moved += await _rename(redis, raw.decode(), names.task(task_id))
            moved += await _rename(redis, f"{p}:task-events:{task_id}",
                                   names.task_events(task_id))
    async for raw in redis.scan_iter(match=f"{p}:idempotency:*", count=1000):
        rest = raw.decode()[len(f"{p}:idempotency:"):]
        if not rest.startswith("{"):  # not of the new layout already
            team, _, key = rest.partition(":")
            moved += await _rename(redis, raw.decode(), names.idempotency(team, key))
    old_queue = f"{p}:queue"
    for raw_id, score in await redis.zrange(old_queue, 0, -1, withscores=True):
        task_id = raw_id.decode()
        for arq_prefix in (job_key_prefix, retry_key_prefix, in_progress_key_prefix):
            moved += await _rename(redis, arq_prefix + task_id,
                                   arq_prefix + names.job_id(task_id))
        await redis.zadd(names.queue(), {names.job_id(task_id): score})
        await redis.zrem(old_queue, raw_id)
        moved += 1
    await redis.delete(old_queue, f"{p}:workers")  # heartbeats: beaten again under new names
    await redis.set(names.layout(), TASKS_LAYOUT)
    if moved:
        log.info("moved %d task keys under %s to their cluster-ready names", moved, p)
    return moved


async def _rename(redis: Redis, source: str, target: str) -> int:
    try:
        await redis.rename(source, target)
    except ResponseError:  # no such key (expired, or never written)
        return 0
    return 1


async def _api_keys(redis: Redis, names: Names, old: _Old) -> dict[str, str]:
    """Move every API key; returns each key id's team (what key spend is filed under)."""
    teams: dict[str, str] = {}
    for raw_id in await redis.smembers(old.api_key_ids()):  # type: ignore[misc]
        key_id = raw_id.decode()
        fields = await redis.hgetall(old.api_key(key_id))  # type: ignore[misc]
        if fields:
            await redis.hset(names.api_key(key_id), mapping=fields)  # type: ignore[misc]
            teams[key_id] = fields.get(b"team", b"").decode()
        await redis.sadd(names.api_key_ids(), key_id)  # type: ignore[misc]
        await redis.delete(old.api_key(key_id))
    lookup = await redis.hgetall(old.api_key_by_hash())  # type: ignore[misc]
    if lookup:
        await redis.hset(names.api_key_by_hash(), mapping=lookup)  # type: ignore[misc]
    await redis.delete(old.api_key_by_hash(), old.api_key_ids())
    return teams


async def _copy(redis: Redis, source: str, target: str) -> None:
    """A string key to its new name with the time it had left."""
    raw = await redis.get(source)
    if raw is not None:
        ttl_ms = await redis.pttl(source)
        await redis.set(target, raw, px=ttl_ms if ttl_ms > 0 else None)
    await redis.delete(source)


async def _ledger(redis: Redis, names: Names, old: _Old, teams_of_keys: dict[str, str]) -> None:
    index = old.ledger("by-time")
    for raw_id, score in await redis.zrange(index, 0, -1, withscores=True):
        request_id = raw_id.decode()
        raw = await redis.get(old.ledger(f"entry:{request_id}"))
        if raw is not None:
            team = json.loads(raw)["team"]
            await redis.sadd(names.ledger_teams(), team)  # type: ignore[misc]
            await redis.zadd(names.team_entries(team), {request_id: score})
            await _copy(redis, old.ledger(f"record:{request_id}"),
                        names.entry_record(team, request_id))
            await _copy(redis, old.ledger(f"entry:{request_id}"), names.entry(team, request_id))
        await redis.zrem(index, raw_id)
    await redis.delete(index)
    async for raw_key in redis.scan_iter(match=old.ledger("by-time:*")):
        await redis.delete(raw_key)  # the old per-team indexes: rebuilt above
    days = await redis.zrange(old.ledger("rollup-days"), 0, -1, withscores=True)
    for kind in ("rollup", "sessions", "histograms", "key-spend"):
        async for raw_key in redis.scan_iter(match=old.ledger(f"{kind}:*")):
            await _split(redis, names, raw_key.decode(), kind, teams_of_keys, days)
    await redis.delete(old.ledger("rollup-days"))


async def _split(redis: Redis, names: Names, key: str, kind: str,
                 teams_of_keys: dict[str, str], days: list[tuple[bytes, float]]) -> None:
    """One old all-teams hash to one hash per team (fields keep their ``team|…`` form; key
    spend, filed by key id, goes to the key's team)."""
    period = key.rsplit(":", 1)[1]
    by_team: dict[str, list[bytes]] = defaultdict(list)
    for field, value in (await redis.hgetall(key)).items():  # type: ignore[misc]
        # Key spend is filed by key id (its key's team); the others' fields start with the team.
        team = (teams_of_keys.get(field.decode(), "") if kind == "key-spend"
                else field.decode().split("|", 1)[0])
        if team:
            by_team[team] += [field, value]
    targets = {team: _target(names, kind, team, period) for team in by_team}
    counts = [len(by_team[t]) // 2 for t in targets]
    pairs = [item for t in targets for item in by_team[t]]
    await redis.eval(_SPLIT, 1 + len(targets), key, *targets.values(),  # type: ignore[misc]
                     await redis.pttl(key), *counts, *pairs)
    for team in targets:
        await redis.sadd(names.ledger_teams(), team)  # type: ignore[misc]
        if kind == "rollup":
            ordinal = next((s for d, s in days if d.decode() == period), None)
            if ordinal is not None:
                await redis.zadd(names.rollup_days(team), {period: ordinal})


def _target(names: Names, kind: str, team: str, period: str) -> str:
    if kind == "rollup":
        return names.rollup(team, period)
    if kind == "sessions":
        return names.sessions(team, period)
    if kind == "histograms":
        return names.histograms(team, period)
    return names.key_spend(team, period)
