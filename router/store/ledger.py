"""The cost ledger: one entry per routed request, written exactly once, with per-day rollups
per team, route and reason updated in the same atomic step (one Lua script), so the usage API
reads a handful of hashes instead of scanning entries.

Every key is its team's (one ``{team}`` hash tag, so the script touches one slot of a Redis
Cluster, and teams spread over its nodes); a read across teams (the admin key's) fans out over
the set of teams that have entries and merges. An entry is keyed by its team and request id; a
second write of the same id (a redelivered task, a retried write) changes nothing and returns
False. Entries are built from a typed route record by
:func:`router.run.outcome.ledger_entry`; this module only stores and reads them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from router.store.names import Names

GroupBy = Literal["day", "team", "route", "reason", "session"]
Route = Literal["local", "cloud"]
METRICS = ("tasks", "local", "cloud", "escalated", "prompt_tokens", "completion_tokens",
           "local_tokens", "cloud_tokens", "cost_usd", "counterfactual_usd",
           "escalated_local_tokens", "escalated_local_ms", "latency_ms")
# Upper bounds (ms) of the latency histogram's buckets (the last one is open: +Inf), and the
# confidence histogram's bins (width 1/CONFIDENCE_BINS from 0).
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000, 40000, 80000, 160000)
CONFIDENCE_BINS = 20

# An attempt's claim (:class:`Claim`): held by the attempt itself, it refuses every other
# record of that attempt; held by a lost-recorder, it lets another lost-recorder in.
_CLAIM_RULE = """
local function claim_refuses(key, by)
  local held = redis.call('GET', key)
  return held and not (held == 'lost' and by == 'lost')
end
"""

# KEYS (one team's, one slot): entry, the team's by-time index, rollup, rollup days, key spend,
# record, histograms, sessions[, an attempt's claim]. ARGV: entry JSON, time, id, day, ttl, day
# ordinal, key id, cost, record JSON ('' for none), the index where the histogram pairs start,
# the index where the session pairs start, who claims the attempt ('' without a claim), then
# the rollup pairs, the histogram pairs and the session pairs (none: not an agent's turn).
# Returns 1 when written, 0 when the entry was there, -1 when the attempt's claim refused it.
# The same entry sent again (the client re-sends a command whose reply it lost, as redis-py's
# cluster client does through a failover) was this write's own: 1, nothing added.
_WRITE = _CLAIM_RULE + """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
if #KEYS == 9 and claim_refuses(KEYS[9], ARGV[12]) then return -1 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[5]) then return 0 end
if #KEYS == 9 then redis.call('SET', KEYS[9], ARGV[12], 'EX', ARGV[5]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2] - ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[4])
local split = tonumber(ARGV[10])
local sessions = tonumber(ARGV[11])
for i = 13, split - 1, 2 do redis.call('HINCRBYFLOAT', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[3], ARGV[5])
if ARGV[7] ~= '' then
  redis.call('HINCRBYFLOAT', KEYS[5], ARGV[7], ARGV[8])
  redis.call('EXPIRE', KEYS[5], ARGV[5])
end
if ARGV[9] ~= '' then redis.call('SET', KEYS[6], ARGV[9], 'EX', ARGV[5]) end
if split < sessions then
  for i = split, sessions - 1, 2 do redis.call('HINCRBYFLOAT', KEYS[7], ARGV[i], ARGV[i + 1]) end
  redis.call('EXPIRE', KEYS[7], ARGV[5])
end
if sessions <= #ARGV then
  for i = sessions, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[8], ARGV[i], ARGV[i + 1]) end
  redis.call('EXPIRE', KEYS[8], ARGV[5])
end
return 1
"""


def _increments(entry: dict[str, Any]) -> dict[str, float]:
    tokens = entry["tokens"]
    escalated = entry["escalated"]
    return {
        "tasks": 1, "local": int(entry["route"] == "local"), "cloud": int(entry["route"] == "cloud"),
        "escalated": int(escalated), "prompt_tokens": tokens["prompt"],
        "completion_tokens": tokens["completion"], "local_tokens": tokens["local"],
        "cloud_tokens": tokens["cloud"], "cost_usd": entry["cost_usd"],
        "counterfactual_usd": entry["counterfactual_usd"],
        "escalated_local_tokens": tokens["prompt"] + tokens["local_completion"] if escalated else 0,
        "escalated_local_ms": entry["escalated_local_ms"], "latency_ms": entry["latency_ms"],
    }


def day_of(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).date().isoformat()


def _histogram_increments(entry: dict[str, Any]) -> dict[str, float]:
    """The entry's place in the day's histograms: its latency under its route, and, for a
    local answer the judge scored, its confidence under ``kept`` or ``escalated``."""
    team = entry["team"]
    bucket = next((str(b) for b in LATENCY_BUCKETS_MS if entry["latency_ms"] <= b), "+Inf")
    out = {f"{team}|latency_ms|{entry['route']}|{bucket}": 1.0}
    confidence = entry.get("confidence")
    if confidence is not None and (entry["route"] == "local" or entry["escalated"]):
        series = "escalated" if entry["escalated"] else "kept"
        index = min(CONFIDENCE_BINS - 1, max(0, int(float(confidence) * CONFIDENCE_BINS)))
        out[f"{team}|confidence|{series}|{index}"] = 1.0
    return out


@dataclass(frozen=True)
class Claim:
    """Who records one attempt of a task: the attempt itself (``by="self"``: its answer, or
    what it ran when it was stopped) or a later attempt that found it lost (``by="lost"``).
    An attempt's cloud call is in the ledger once: when its worker lost its claim on the task
    (its store away past the lease) while still running, the next attempt may record it as
    lost while it goes on to record itself; whichever writes first holds the claim, and the
    other's write is refused. Lost-recorders share theirs (a second one finishes what a
    first one, killed midway, began)."""

    task_id: str
    attempt: int
    by: Literal["self", "lost"]


async def write_entry(redis: Redis, names: Names, entry: dict[str, Any], *,
                      retention_days: int, record: dict[str, Any] | None = None,
                      claim: Claim | None = None) -> bool:
    """Write ``entry`` once (with its full route ``record``, when given, for a dashboard to
    open); True when it was new, False when its id was already written, or when ``claim``
    (a task attempt's: :class:`Claim`) refused it."""
    day = day_of(entry["time"])
    group = f"{entry['team']}|{entry['route']}|{entry['reason']}"
    rollup: list[Any] = []
    for metric, amount in _increments(entry).items():
        rollup += [f"{group}|{metric}", amount]
    histogram: list[Any] = []
    for field, amount in _histogram_increments(entry).items():
        histogram += [field, amount]
    session: list[Any] = []
    if entry.get("session"):  # an agent's turn: its session's totals too
        for metric, amount in _increments(entry).items():
            session += [f"{entry['team']}|{entry['session']}|{metric}", amount]
    args: list[Any] = [json.dumps(entry), entry["time"], entry["id"], day,
                       retention_days * 86400, dt.date.fromisoformat(day).toordinal(),
                       entry["key_id"] or "", entry["cost_usd"],
                       json.dumps(record) if record is not None else "",
                       13 + len(rollup), 13 + len(rollup) + len(histogram),
                       claim.by if claim is not None else "",
                       *rollup, *histogram, *session]
    team = entry["team"]
    keys = [names.entry(team, entry["id"]), names.team_entries(team), names.rollup(team, day),
            names.rollup_days(team), names.key_spend(team, day[:7]),
            names.entry_record(team, entry["id"]), names.histograms(team, day),
            names.sessions(team, day)]
    if claim is not None:
        keys.append(names.attempt_claim(team, claim.task_id, claim.attempt))
    # The team is known before its first entry is (a read across teams never misses one);
    # idempotent, so a retried write adds nothing. Its own command: another slot.
    await redis.sadd(names.ledger_teams(), team)  # type: ignore[misc]
    written = await redis.eval(_WRITE, len(keys), *keys, *args)  # type: ignore[misc]
    return int(written) == 1


# KEYS: an attempt's claim. ARGV: ttl. Taken for a lost-recorder unless the attempt has it.
_CLAIM_LOST = _CLAIM_RULE + """
if claim_refuses(KEYS[1], 'lost') then return 0 end
redis.call('SET', KEYS[1], 'lost', 'EX', ARGV[1])
return 1
"""


async def claim_lost(redis: Redis, names: Names, team: str, task_id: str, attempt: int, *,
                     retention_days: int) -> bool:
    """Claim attempt ``attempt`` of ``task_id`` for recording it as lost (before settling
    what it held); False when the attempt recorded itself."""
    key = names.attempt_claim(team, task_id, attempt)
    return bool(await redis.eval(_CLAIM_LOST, 1, key, retention_days * 86400))  # type: ignore[misc]


async def teams(redis: Redis, names: Names) -> list[str]:
    """The teams that have ledger entries (or had: a team whose entries expired stays)."""
    return sorted(t.decode() for t in await redis.smembers(names.ledger_teams()))  # type: ignore[misc]


async def _scope(redis: Redis, names: Names, team: str | None) -> list[str]:
    return [team] if team is not None else await teams(redis, names)


async def _get_json(redis: Redis, keys: list[str]) -> dict[str, Any] | None:
    """The first of ``keys`` that exists, as JSON (each read alone: they may be on
    different slots)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        raws = await pipe.execute()
    found = next((raw for raw in raws if raw), None)
    return json.loads(found) if found else None


async def get_entry(redis: Redis, names: Names, request_id: str, *,
                    team: str | None = None) -> dict[str, Any] | None:
    """The entry of ``request_id``, of ``team`` or (None) of whichever team wrote it."""
    scope = await _scope(redis, names, team)
    return await _get_json(redis, [names.entry(t, request_id) for t in scope])


async def get_record(redis: Redis, names: Names, request_id: str, *,
                     team: str | None = None) -> dict[str, Any] | None:
    """The full route record kept with an entry; None when none was (or it expired)."""
    scope = await _scope(redis, names, team)
    return await _get_json(redis, [names.entry_record(t, request_id) for t in scope])


async def page_entries(redis: Redis, names: Names, *, team: str | None, start: float, end: float,
                       limit: int, before: float | None = None,
                       route: Route | None = None) -> list[dict[str, Any]]:
    """Entries newest first, in [start, end), at most ``limit``, older than ``before``, of one
    route or both; of one team, or of every team (each team's newest ``limit``, merged: the
    newest ``limit`` of all are among them)."""
    if team is None:
        pages = await asyncio.gather(*(
            page_entries(redis, names, team=t, start=start, end=end, limit=limit,
                         before=before, route=route) for t in await teams(redis, names)))
        merged = sorted((e for page in pages for e in page), key=lambda e: e["time"],
                        reverse=True)
        return merged[:limit]
    index = names.team_entries(team)
    top = f"({before}" if before is not None else f"({end}"
    batch = limit if route is None else max(limit * 2, 50)
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        found = await redis.zrevrangebyscore(index, top, start, start=0, num=batch,
                                             withscores=True)
        if not found:
            break
        raws = await redis.mget([names.entry(team, i.decode()) for i, _ in found])
        for raw in raws:
            if raw:
                entry = json.loads(raw)
                if route is None or entry["route"] == route:
                    out.append(entry)
        if len(found) < batch:
            break
        top = f"({found[-1][1]}"
    return out[:limit]


@dataclass(frozen=True)
class Row:
    day: str
    team: str
    route: str
    reason: str
    metrics: dict[str, float]
    session: str = ""


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


async def _hashes(redis: Redis, keys: list[str]) -> list[dict[bytes, bytes]]:
    """HGETALL of each key, in one round trip (on a cluster: one per node that holds some)."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        return list(await pipe.execute())


async def rollup_rows(redis: Redis, names: Names, *, first: dt.date, last: dt.date,
                      team: str | None, route: Route | None = None) -> list[Row]:
    """The per-day rollup rows from ``first`` to ``last`` (inclusive), for one team or all,
    one route or both."""
    days = _days(first, last)
    cells = [(t, day) for t in await _scope(redis, names, team) for day in days]
    raws = await _hashes(redis, [names.rollup(t, day.isoformat()) for t, day in cells])
    rows = []
    for (_team, day), raw in zip(cells, raws, strict=True):
        grouped: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        for field, value in raw.items():
            row_team, row_route, reason, metric = field.decode().rsplit("|", 3)
            if (team is None or row_team == team) and (route is None or row_route == route):
                grouped[(row_team, row_route, reason)][metric] = float(value)
        rows += [Row(day.isoformat(), *group, metrics) for group, metrics in grouped.items()]
    return rows


async def session_rows(redis: Redis, names: Names, *, first: dt.date, last: dt.date,
                       team: str | None) -> list[Row]:
    """The per-day totals of each agent session from ``first`` to ``last`` (inclusive), for
    one team or all (route and reason are not kept per session)."""
    days = _days(first, last)
    cells = [(t, day) for t in await _scope(redis, names, team) for day in days]
    raws = await _hashes(redis, [names.sessions(t, day.isoformat()) for t, day in cells])
    rows = []
    for (_team, day), raw in zip(cells, raws, strict=True):
        grouped: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        for field, value in raw.items():
            # A team name has no '|' (apikeys.TEAM_RULE); a client's session id may.
            row_team, rest = field.decode().split("|", 1)
            session, metric = rest.rsplit("|", 1)
            if team is None or row_team == team:
                grouped[(row_team, session)][metric] = float(value)
        rows += [Row(day.isoformat(), row_team, "", "", metrics, session)
                 for (row_team, session), metrics in grouped.items()]
    return rows


def summarize(rows: Iterable[Row], group_by: GroupBy | None, *,
              local_usd_per_hour: float = 0.0) -> list[dict[str, Any]]:
    """Usage per group: counts, tokens, spend, the all-cloud counterfactual, savings; the
    local time of escalated attempts priced at ``local_usd_per_hour``."""
    groups: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(METRICS, 0.0))
    for row in rows:
        name = getattr(row, group_by) if group_by else "all"
        for metric, value in row.metrics.items():
            if metric in METRICS:
                groups[name][metric] += value
    if not groups and group_by is None:
        groups["all"] = dict.fromkeys(METRICS, 0.0)
    return [{**({group_by: name} if group_by else {}),
             **usage_figures(totals, local_usd_per_hour=local_usd_per_hour)}
            for name, totals in sorted(groups.items())]


def summarize_sessions(rows: Iterable[Row], *,
                       local_usd_per_hour: float = 0.0) -> list[dict[str, Any]]:
    """Each agent session's usage (a session is its team's: one id in two teams is two
    sessions) with the first and last day it ran, the costliest first (then the latest,
    then the busiest)."""
    groups: dict[tuple[str, str], dict[str, float]] = defaultdict(
        lambda: dict.fromkeys(METRICS, 0.0))
    days: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in rows:
        for metric, value in row.metrics.items():
            if metric in METRICS:
                groups[(row.team, row.session)][metric] += value
        days[(row.team, row.session)].append(row.day)
    out = [{"session": session, "team": team, "first_day": min(days[(team, session)]),
            "last_day": max(days[(team, session)]),
            **usage_figures(totals, local_usd_per_hour=local_usd_per_hour)}
           for (team, session), totals in sorted(groups.items())]
    out.sort(key=lambda s: (s["cloud_spend_usd"], s["last_day"], s["tasks"]), reverse=True)
    return out


def usage_figures(totals: dict[str, float], *, local_usd_per_hour: float = 0.0) -> dict[str, Any]:
    tasks = int(totals["tasks"])
    spend, counterfactual = totals["cost_usd"], totals["counterfactual_usd"]
    savings = counterfactual - spend
    return {
        "tasks": tasks, "local": int(totals["local"]), "cloud": int(totals["cloud"]),
        "escalated": int(totals["escalated"]),
        "local_share": round(totals["local"] / tasks, 4) if tasks else 0.0,
        "escalation_rate": round(totals["escalated"] / tasks, 4) if tasks else 0.0,
        "tokens": {"prompt": int(totals["prompt_tokens"]),
                   "completion": int(totals["completion_tokens"]),
                   "local": int(totals["local_tokens"]), "cloud": int(totals["cloud_tokens"])},
        "cloud_spend_usd": round(spend, 6), "counterfactual_usd": round(counterfactual, 6),
        "savings_usd": round(savings, 6),
        "savings_pct": round(100 * savings / counterfactual, 2) if counterfactual else 0.0,
        "escalated_local_attempts": {"tokens": int(totals["escalated_local_tokens"]),
                                     "ms": round(totals["escalated_local_ms"], 1),
                                     "usd": round(totals["escalated_local_ms"] / 3.6e6
                                                  * local_usd_per_hour, 6)},
        "latency_ms_mean": round(totals["latency_ms"] / tasks, 1) if tasks else 0.0,
    }


async def key_spend(redis: Redis, names: Names, month: str, *,
                    team: str | None = None) -> dict[str, float]:
    """Cloud spend per key id in a month (``YYYY-MM``), of one team's keys or every team's."""
    spend: dict[str, float] = defaultdict(float)
    for raw in await _hashes(redis, [names.key_spend(t, month)
                                     for t in await _scope(redis, names, team)]):
        for key_id, value in raw.items():
            spend[key_id.decode()] += float(value)
    return dict(spend)


async def histograms(redis: Redis, names: Names, *, first: dt.date, last: dt.date,
                     team: str | None, route: Route | None = None) -> dict[str, Any]:
    """Latency per route (counts per bucket, upper bounds in ms) and the confidence of local
    answers kept and escalated (counts per bin), from ``first`` to ``last`` inclusive."""
    days = _days(first, last)
    raws = await _hashes(redis, [names.histograms(t, day.isoformat())
                                 for t in await _scope(redis, names, team) for day in days])
    labels = [*(str(b) for b in LATENCY_BUCKETS_MS), "+Inf"]
    latency: dict[str, list[int]] = {}
    confidence = {"kept": [0] * CONFIDENCE_BINS, "escalated": [0] * CONFIDENCE_BINS}
    for raw in raws:
        for field, value in raw.items():
            row_team, kind, series, bucket = field.decode().rsplit("|", 3)
            if team is not None and row_team != team:
                continue
            count = int(float(value))
            if kind == "latency_ms" and bucket in labels and (route is None or series == route):
                counts = latency.setdefault(series, [0] * len(labels))
                counts[labels.index(bucket)] += count
            elif kind == "confidence" and series in confidence and bucket.isdigit() \
                    and int(bucket) < CONFIDENCE_BINS \
                    and (route is None or (series == "kept") == (route == "local")):
                confidence[series][int(bucket)] += count
    width = 1 / CONFIDENCE_BINS
    return {
        "latency_ms": {"le": labels, "routes": dict(sorted(latency.items()))},
        "confidence": {"bins": [round(i * width, 4) for i in range(CONFIDENCE_BINS)],
                       "width": width, **confidence},
    }
