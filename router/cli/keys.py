"""`smallcode keys create|list|revoke`: team API keys, straight in Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from router.settings import load_settings
from router.store import apikeys, migrate
from router.store.config import RedisSettings
from router.store.connect import client, command_redis
from router.store.names import Names


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("keys", help="create, list and revoke team API keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key for a team (the key is shown once)")
    create.add_argument("--team", required=True)
    create.add_argument("--budget-usd", type=float, help="cloud budget per period, in USD")
    create.add_argument("--period", choices=("day", "month"), default="month")
    create.add_argument("--rpm", type=int, help="requests per minute")
    create.add_argument("--tpm", type=int, help="tokens per minute")
    create.add_argument("--local-only", action="store_true", help="never send this key's tasks "
                        "to the cloud")
    create.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--team")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("id")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with command_redis(settings.redis.url, settings.data_dir) as url:
        return asyncio.run(_run(args, settings.redis, url))


async def _run(args: argparse.Namespace, store: RedisSettings, url: str) -> int:
    names = Names(store.prefix)
    redis = client(store, url=url)
    try:
        await migrate.upgrade(redis, names)  # keys of an older layout
        if args.action == "create":
            try:
                key, secret = await apikeys.create_key(
                    redis, names, team=args.team, budget_usd=args.budget_usd, period=args.period,
                    rpm=args.rpm, tpm=args.tpm, local_only=args.local_only)
            except apikeys.InvalidKeyRequest as exc:
                print(f"smallcode: {exc}")
                return 2
            if args.json:
                print(json.dumps({"team": key.team, "key": secret, "id": key.id}))
            else:
                print(f"key {key.id} for team {key.team} (shown once, store it now):\n{secret}")
            return 0
        if args.action == "list":
            shown = await apikeys.with_spend(
                redis, names, await apikeys.list_keys(redis, names, team=args.team))
            if args.json:
                print(json.dumps(shown))
            else:
                for item in shown:
                    print(_line(item))
            return 0
        if not await apikeys.revoke(redis, names, args.id):
            print(f"smallcode: no key with id {args.id!r} (see `smallcode keys list`)")
            return 1
        print(f"revoked {args.id}")
        return 0
    finally:
        await redis.aclose()


def _line(key: dict[str, Any]) -> str:
    limits = [f"budget ${key['budget_usd']:g}/{key['period']}" if key["budget_usd"] is not None
              else "no budget"]
    limits += [f"{key[n]} {n}" for n in ("rpm", "tpm") if key[n] is not None]
    if key["local_only"]:
        limits.append("local only")
    state = " (revoked)" if key["revoked"] else ""
    return (f"{key['id']}  team={key['team']}  {', '.join(limits)}  "
            f"spent ${key['spend_usd_this_month']:.4f} this month{state}")
