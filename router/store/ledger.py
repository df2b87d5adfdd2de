"""The cost ledger: one entry per routed request, written exactly once, with per-day rollups
per team, route and reason updated in the same atomic step (one Lua script), so the usage API
reads a handful of hashes instead of scanning entries.

An entry is keyed by its request id; a second write of the same id (a redelivered task, a
retried write) changes nothing and returns False.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from router.store.names import Names

GroupBy = Literal["day", "team", "route", "reason"]
METRICS = ("tasks", "local", "cloud", "escalated", "prompt_tokens", "completion_tokens",
           "local_tokens", "cloud_tokens", "cost_usd", "counterfactual_usd",
           "escalated_local_tokens", "escalated_local_ms", "latency_ms")

_WRITE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[5]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2] - ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2] - ARGV[5])
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[4])
for i = 9, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[4], ARGV[5])
if ARGV[7] ~= '' then
  redis.call('HINCRBYFLOAT', KEYS[6], ARGV[7], ARGV[8])
  redis.call('EXPIRE', KEYS[6], ARGV[5])
end
return 1
"""


def build_entry(*, request_id: str, team: str, key_id: str | None, source: str,
                record: dict[str, Any], latency_ms: float, at: float | None = None,
                status: str = "done") -> dict[str, Any]:
    """A ledger entry from a route record (see :func:`router.graph.record.build_record`)."""
    tokens = record.get("tokens", {})
    final = record.get("final", "local")
    escalated = bool(record.get("escalated"))
    prompt, completion = int(tokens.get("prompt", 0)), int(tokens.get("completion", 0))
    local_completion = int(tokens.get("local_completion", 0))
    timings = record.get("timings_ms", {})
    return {
        "id": request_id, "time": at if at is not None else time.time(), "team": team,
        "key_id": key_id, "source": source, "status": status,
        "task_type": record.get("task_type"), "route": final,
        "reason": record.get("reason", "unknown"), "escalated": escalated,
        "confidence": record.get("confidence"),
        "tokens": {"prompt": prompt, "completion": completion,
                   "local": (prompt + local_completion) if (final == "local" or escalated) else 0,
                   "cloud": (prompt + completion) if final == "cloud" else 0,
                   "local_completion": local_completion},
        "cost_usd": float(record.get("cost_usd") or 0.0),
        "counterfactual_usd": float(record.get("counterfactual_cost_usd") or 0.0),
        "escalated_local_ms": float(timings.get("local_generate", 0.0)) if escalated else 0.0,
        "latency_ms": round(latency_ms, 1),
    }


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


async def write_entry(redis: Redis, names: Names, entry: dict[str, Any], *,
                      retention_days: int) -> bool:
    """Write ``entry`` once; True when it was new, False when its id was already written."""
    day = day_of(entry["time"])
    group = f"{entry['team']}|{entry['route']}|{entry['reason']}"
    args: list[Any] = [json.dumps(entry), entry["time"], entry["id"], day,
                       retention_days * 86400, dt.date.fromisoformat(day).toordinal(),
                       entry["key_id"] or "", entry["cost_usd"]]
    for metric, amount in _increments(entry).items():
        args += [f"{group}|{metric}", amount]
    keys = [names.entry(entry["id"]), names.entries(), names.team_entries(entry["team"]),
            names.rollup(day), names.rollup_days(), names.key_spend(day[:7])]
    written = await redis.eval(_WRITE, len(keys), *keys, *args)  # type: ignore[misc]
    return bool(written)


async def get_entry(redis: Redis, names: Names, request_id: str) -> dict[str, Any] | None:
    raw = await redis.get(names.entry(request_id))
    return json.loads(raw) if raw else None


async def page_entries(redis: Redis, names: Names, *, team: str | None, start: float, end: float,
                       limit: int, before: float | None = None) -> list[dict[str, Any]]:
    """Entries newest first, in [start, end), at most ``limit``, older than ``before``."""
    index = names.team_entries(team) if team else names.entries()
    top = f"({before}" if before is not None else f"({end}"
    ids = await redis.zrevrangebyscore(index, top, start, start=0, num=limit)
    if not ids:
        return []
    raws = await redis.mget([names.entry(i.decode()) for i in ids])
    return [json.loads(r) for r in raws if r]


@dataclass(frozen=True)
class Row:
    day: str
    team: str
    route: str
    reason: str
    metrics: dict[str, float]


async def rollup_rows(redis: Redis, names: Names, *, first: dt.date, last: dt.date,
                      team: str | None) -> list[Row]:
    """The per-day rollup rows from ``first`` to ``last`` (inclusive), for one team or all."""
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    async with redis.pipeline(transaction=False) as pipe:  # one round trip for every day
        for day in days:
            pipe.hgetall(names.rollup(day.isoformat()))
        raws = await pipe.execute()
    rows = []
    for day, raw in zip(days, raws, strict=True):
        grouped: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
        for field, value in raw.items():
            row_team, route, reason, metric = field.decode().rsplit("|", 3)
            if team is None or row_team == team:
                grouped[(row_team, route, reason)][metric] = float(value)
        rows += [Row(day.isoformat(), *group, metrics) for group, metrics in grouped.items()]
    return rows


def summarize(rows: Iterable[Row], group_by: GroupBy | None) -> list[dict[str, Any]]:
    """Usage per group: counts, tokens, spend, the all-cloud counterfactual, savings."""
    groups: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(METRICS, 0.0))
    for row in rows:
        name = getattr(row, group_by) if group_by else "all"
        for metric, value in row.metrics.items():
            if metric in METRICS:
                groups[name][metric] += value
    if not groups and group_by is None:
        groups["all"] = dict.fromkeys(METRICS, 0.0)
    return [{**({group_by: name} if group_by else {}), **usage_figures(totals)}
            for name, totals in sorted(groups.items())]


def usage_figures(totals: dict[str, float]) -> dict[str, Any]:
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
                                     "ms": round(totals["escalated_local_ms"], 1)},
        "latency_ms_mean": round(totals["latency_ms"] / tasks, 1) if tasks else 0.0,
    }


async def key_spend(redis: Redis, names: Names, month: str) -> dict[str, float]:
    """Cloud spend per key id in a month (``YYYY-MM``)."""
    raw = await redis.hgetall(names.key_spend(month))
    return {k.decode(): float(v) for k, v in raw.items()}
