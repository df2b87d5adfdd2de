"""`smallcode usage`: the ledger's totals per day (and team), as a table, CSV or JSON, for
finance tools."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import sys
from typing import Any

from router.settings import load_settings
from router.store import ledger, migrate
from router.store.config import RedisSettings
from router.store.connect import client, command_redis
from router.store.names import Names

COLUMNS = ("day", "team", "tasks", "local", "cloud", "escalated", "cloud_spend_usd",
           "counterfactual_usd", "savings_usd", "savings_pct")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("usage", help="spend, savings and offload per day and team")
    parser.add_argument("--team")
    parser.add_argument("--from", dest="start", type=dt.date.fromisoformat,
                        help="first day, YYYY-MM-DD (default: 29 days before --to)")
    parser.add_argument("--to", dest="end", type=dt.date.fromisoformat,
                        help="last day, YYYY-MM-DD (default: today, UTC)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--csv", action="store_true")
    output.add_argument("--json", action="store_true")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    last = args.end or dt.datetime.now(dt.UTC).date()
    first = args.start or last - dt.timedelta(days=29)
    if first > last:
        print("smallcode: --from must not be after --to", file=sys.stderr)
        return 2
    with command_redis(settings.redis.url, settings.data_dir) as url:
        rows = asyncio.run(_rows(settings.redis, url, first, last, args.team))
    if args.json:
        print(json.dumps({"from": first.isoformat(), "to": last.isoformat(), "rows": rows}))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print("  ".join(f"{c:>12}" for c in COLUMNS))
        for row in rows:
            print("  ".join(f"{row[c]!s:>12}" for c in COLUMNS))
    return 0


async def _rows(store: RedisSettings, url: str, first: dt.date, last: dt.date,
                team: str | None) -> list[dict[str, Any]]:
    redis = client(store, url=url)
    try:
        await migrate.upgrade(redis, Names(store.prefix))  # keys of an older layout
        rows = await ledger.rollup_rows(redis, Names(store.prefix), first=first, last=last, team=team)
    finally:
        await redis.aclose()
    out = []
    for (day, row_team), group in sorted(_by_day_team(rows).items()):
        out.append({"day": day, "team": row_team, **ledger.summarize(group, None)[0]})
    return out


def _by_day_team(rows: list[Any]) -> dict[tuple[str, str], list[Any]]:
    groups: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        groups.setdefault((row.day, row.team), []).append(row)
    return groups
