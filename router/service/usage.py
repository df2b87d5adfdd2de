"""``/v1/usage`` (totals from the ledger's rollups) and ``/v1/usage/entries`` (raw entries,
newest first, paged): what cost dashboards read. A team key sees its own team, the admin key
every team."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query

from router.service.deps import CallerDep, NamesDep, RedisDep
from router.service.errors import APIError
from router.store import ledger

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
async def usage(caller: CallerDep, redis: RedisDep, names: NamesDep,
                start: str | None = Query(None, alias="from"),
                end: str | None = Query(None, alias="to"),
                group_by: ledger.GroupBy | None = None,
                team: str | None = None) -> dict[str, Any]:
    first, last = window(start, end)
    scope = team_filter(caller, team)
    rows = await ledger.rollup_rows(redis, names, first=first, last=last, team=scope)
    return {"object": "usage", "from": first.isoformat(), "to": last.isoformat(),
            "team": scope, "group_by": group_by, "totals": ledger.summarize(rows, None)[0],
            "data": ledger.summarize(rows, group_by) if group_by else []}


@router.get("/entries")
async def entries(caller: CallerDep, redis: RedisDep, names: NamesDep,
                  start: str | None = Query(None, alias="from"),
                  end: str | None = Query(None, alias="to"),
                  team: str | None = None, limit: int = Query(50, ge=1, le=500),
                  before: float | None = Query(None, description="the `time` of the last "
                                               "entry of the previous page")) -> dict[str, Any]:
    first, last = window(start, end)
    scope = team_filter(caller, team)
    start_ts = dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()
    end_ts = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
    page = await ledger.page_entries(redis, names, team=scope, start=start_ts, end=end_ts,
                                     limit=limit + 1, before=before)
    more = len(page) > limit
    page = page[:limit]
    return {"object": "list", "data": page, "has_more": more,
            "next_before": page[-1]["time"] if more and page else None}
