"""``/v1/usage`` (totals from the ledger's rollups), ``/v1/usage/entries`` (raw entries,
newest first, paged; ``/v1/usage/entries/{id}`` one with its full route record),
``/v1/usage/histograms`` (latency per route, confidence of local answers kept and escalated)
and ``/v1/usage/budgets`` (budget used vs budget): what cost dashboards read (the one at
``/dashboard``, Grafana's JSON datasource, scripts). A team key sees its own team, the admin
key every team."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query
from redis.asyncio import Redis

from policies.budget import Period, period_key
from router.service.deps import CallerDep, NamesDep, RedisDep, SettingsDep
from router.service.errors import APIError
from router.store import budgets, ledger
from router.store.names import Names

router = APIRouter(prefix="/v1/usage", tags=["usage"])
MAX_DAYS = 400


def parse_day(value: str | None, field: str, default: dt.date) -> dt.date:
    if value is None:
        return default
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise APIError(400, f"{field}: {value!r} is not a date; use YYYY-MM-DD",
                       param=field) from None


def window(start: str | None, end: str | None) -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(dt.UTC).date()
    last = parse_day(end, "to", today)
    first = parse_day(start, "from", last - dt.timedelta(days=29))
    if first > last:
        raise APIError(400, "from: must not be after `to`", param="from")
    if (last - first).days >= MAX_DAYS:
        raise APIError(400, f"from: at most {MAX_DAYS} days at once", param="from")
    return first, last


def team_filter(caller: Any, team: str | None) -> str | None:
    if caller.team is not None:
        if team is not None and team != caller.team:
            raise APIError(404, f"no usage for team {team!r} with this key", param="team",
                           code="not_found")
        return str(caller.team)
    return team


@router.get("")
async def usage(caller: CallerDep, redis: RedisDep, names: NamesDep, settings: SettingsDep,
                start: str | None = Query(None, alias="from"),
                end: str | None = Query(None, alias="to"),
                group_by: ledger.GroupBy | None = None,
                team: str | None = None, route: ledger.Route | None = None,
                limit: int | None = Query(None, ge=1, le=1000, description=(
                    "with group_by=session: the costliest sessions only"))) -> dict[str, Any]:
    """Totals for the window, and, with ``group_by``, per group. Per session (agent turns):
    each session's team and the first and last day it ran, the costliest first, at most
    ``limit`` of them (``has_more``), with ``sessions``: how many, and their totals."""
    first, last = window(start, end)
    scope = team_filter(caller, team)
    rows = await ledger.rollup_rows(redis, names, first=first, last=last, team=scope,
                                    route=route)
    price = settings.usage.local_usd_per_hour
    body = {"object": "usage", "from": first.isoformat(), "to": last.isoformat(),
            "team": scope, "route": route, "group_by": group_by,
            "totals": ledger.summarize(rows, None, local_usd_per_hour=price)[0]}
    if limit is not None and group_by != "session":
        raise APIError(400, "limit: only with group_by=session", param="limit")
    if group_by != "session":
        return {**body, "data": ledger.summarize(rows, group_by, local_usd_per_hour=price)
                if group_by else []}
    if route is not None:  # every route: not kept per session
        raise APIError(400, "route: cannot be combined with group_by=session", param="route")
    turns = await ledger.session_rows(redis, names, first=first, last=last, team=scope)
    sessions = ledger.summarize_sessions(turns, local_usd_per_hour=price)
    shown = sessions[:limit] if limit is not None else sessions
    return {**body, "data": shown, "has_more": len(shown) < len(sessions),
            "sessions": {"count": len(sessions),
                         **ledger.summarize(turns, None, local_usd_per_hour=price)[0]}}


@router.get("/entries")
async def entries(caller: CallerDep, redis: RedisDep, names: NamesDep,
                  start: str | None = Query(None, alias="from"),
                  end: str | None = Query(None, alias="to"),
                  team: str | None = None, route: ledger.Route | None = None,
                  limit: int = Query(50, ge=1, le=500),
                  before: float | None = Query(None, description="the `time` of the last "
                                               "entry of the previous page")) -> dict[str, Any]:
    first, last = window(start, end)
    scope = team_filter(caller, team)
    start_ts = dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()
    end_ts = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
    page = await ledger.page_entries(redis, names, team=scope, start=start_ts, end=end_ts,
                                     limit=limit + 1, before=before, route=route)
    more = len(page) > limit
    page = page[:limit]
    return {"object": "list", "data": page, "has_more": more,
            "next_before": page[-1]["time"] if more and page else None}


@router.get("/entries/{entry_id}")
async def entry(entry_id: str, caller: CallerDep, redis: RedisDep,
                names: NamesDep) -> dict[str, Any]:
    """One entry with the full route record it was written with (``record`` null for an
    entry written before records were kept)."""
    # A team key reads its own team's keys; the admin key looks in every team's.
    found = await ledger.get_entry(redis, names, entry_id, team=caller.team)
    if found is None or not caller.sees(found["team"]):
        raise APIError(404, f"no usage entry {entry_id!r}", type_="not_found_error",
                       param="id", code="not_found")
    return {"object": "usage.entry", **found,
            "record": await ledger.get_record(redis, names, entry_id, team=found["team"])}


@router.get("/histograms")
async def histograms(caller: CallerDep, redis: RedisDep, names: NamesDep,
                     start: str | None = Query(None, alias="from"),
                     end: str | None = Query(None, alias="to"),
                     team: str | None = None,
                     route: ledger.Route | None = None) -> dict[str, Any]:
    """Latency per route (counts per bucket; ``le``: upper bounds in ms) and the confidence
    of local answers the judge kept and escalated (counts per bin of ``width``): whether the
    threshold sits where it should."""
    first, last = window(start, end)
    scope = team_filter(caller, team)
    found = await ledger.histograms(redis, names, first=first, last=last, team=scope,
                                    route=route)
    return {"object": "usage.histograms", "from": first.isoformat(), "to": last.isoformat(),
            "team": scope, "route": route, **found}


@router.get("/budgets")
async def budget_use(caller: CallerDep, redis: RedisDep, names: NamesDep,
                     settings: SettingsDep, team: str | None = None) -> dict[str, Any]:
    """Each budget that applies, used vs limit in its current period: the team budgets
    (``policies``) of the caller's team (the admin key: every team named in the policies,
    or that has usage in the last 30 days, when the default policy sets a budget), and the
    caller's key's own budget."""
    scope = team_filter(caller, team)
    policies = settings.policies
    if scope is not None:
        teams = [scope]
    else:
        teams = sorted(policies.teams)
        if policies.default.budget_usd is not None:
            first, last = window(None, None)
            rows = await ledger.rollup_rows(redis, names, first=first, last=last, team=None)
            teams = sorted({*teams, *(row.team for row in rows)})
    now = dt.datetime.now(dt.UTC)
    data = []
    for name in teams:
        policy = policies.for_team(name)
        if policy.budget_usd is not None:
            data.append(await _budget(redis, names, scope_name=f"team:{name}", kind="team",
                                      owner=name, limit=policy.budget_usd,
                                      period=policy.budget_period, now=now))
    key = caller.key
    if key is not None and key.budget_usd is not None:
        data.append(await _budget(redis, names, scope_name=f"key:{key.id}", kind="key",
                                  owner=key.id, limit=key.budget_usd, period=key.period,
                                  now=now))
    return {"object": "usage.budgets", "team": scope, "data": data}


async def _budget(redis: Redis, names: Names, *, scope_name: str, kind: str, owner: str,
                  limit: float, period: Period, now: dt.datetime) -> dict[str, Any]:
    held = await budgets.state(redis, names, scope=scope_name, period=period, limit_usd=limit,
                               now=now)
    return {"scope": kind, ("team" if kind == "team" else "key_id"): owner, "period": period,
            "period_key": period_key(period, now), "budget_usd": limit,
            "spent_usd": round(held.spent_usd, 6), "reserved_usd": round(held.reserved_usd, 6),
            "left_usd": round(held.left_usd, 6),
            "used_pct": round(100 * held.spent_usd / limit, 2) if limit else 0.0}
