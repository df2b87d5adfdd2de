"""API keys: one per client, each serving one team. Stored hashed (SHA-256 of a 256-bit
random secret: a slow hash adds nothing to a secret nobody can guess); the secret is shown
once, at creation. A key carries the team's limits: a budget in USD per period, requests and
tokens per minute, local-only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from router.store.ledger import key_spend
from router.store.names import Names

TEAM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
TEAM_RULE = "1-63 characters: lower-case letters, digits, '-' and '_', starting with a letter or digit"
Period = Literal["day", "month"]

# KEYS (one slot, names.py's {apikeys} tag): the key's hash, the lookup by secret hash, the ids.
# ARGV: id, secret hash, then field pairs. A script rather than MULTI/EXEC: the same one step
# on one server and on a cluster (whose client here pipelines without transactions).
_CREATE = """
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""


class InvalidKeyRequest(ValueError):
    """A key cannot be created as asked; ``field`` names the field, and so does the message."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ApiKey:
    id: str
    team: str
    created_at: float
    budget_usd: float | None = None
    period: Period = "month"
    rpm: int | None = None
    tpm: int | None = None
    local_only: bool = False
    revoked: bool = False

    def public(self) -> dict[str, Any]:
        """What may be shown: everything but the secret (which is not stored anyway)."""
        return asdict(self)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_team(team: str) -> str:
    if not isinstance(team, str) or not TEAM_NAME.match(team):
        raise InvalidKeyRequest("team", f"{team!r} is not a valid team name ({TEAM_RULE})")
    return team


async def create_key(redis: Redis, names: Names, *, team: str, budget_usd: float | None = None,
                     period: Period = "month", rpm: int | None = None, tpm: int | None = None,
                     local_only: bool = False) -> tuple[ApiKey, str]:
    """Create a key; returns it and its secret (the only time the secret exists in clear)."""
    check_team(team)
    if budget_usd is not None and not budget_usd >= 0:
        raise InvalidKeyRequest("budget_usd", "must be 0 or more")
    if period not in ("day", "month"):
        raise InvalidKeyRequest("period", "use day or month")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and value < 1:
            raise InvalidKeyRequest(name, "must be 1 or more (leave it out for no limit)")
    key = ApiKey(id=secrets.token_hex(6), team=team, created_at=time.time(),
                 budget_usd=budget_usd, period=period, rpm=rpm, tpm=tpm, local_only=local_only)
    secret = f"sk-sc-{key.id}-{secrets.token_urlsafe(32)}"
    pairs = [item for k, v in asdict(key).items() for item in (k, _encode(v))]
    keys = [names.api_key(key.id), names.api_key_by_hash(), names.api_key_ids()]
    await redis.eval(_CREATE, len(keys), *keys, key.id, hash_secret(secret),  # type: ignore[misc]
                     *pairs)
    return key, secret


async def lookup(redis: Redis, names: Names, secret: str) -> ApiKey | None:
    """The live key a secret belongs to, or None (unknown or revoked)."""
    key_id = await redis.hget(names.api_key_by_hash(), hash_secret(secret))
    if key_id is None:
        return None
    key = await get_key(redis, names, key_id.decode())
    return None if key is None or key.revoked else key


async def get_key(redis: Redis, names: Names, key_id: str) -> ApiKey | None:
    raw = await redis.hgetall(names.api_key(key_id))
    return _decode(raw) if raw else None


async def list_keys(redis: Redis, names: Names, *, team: str | None = None) -> list[ApiKey]:
    ids = sorted(i.decode() for i in await redis.smembers(names.api_key_ids()))
    keys = [k for k in [await get_key(redis, names, i) for i in ids] if k is not None]
    keys = [k for k in keys if team is None or k.team == team]
    return sorted(keys, key=lambda k: k.created_at)


async def revoke(redis: Redis, names: Names, key_id: str) -> bool:
    """Revoke a key (kept, marked revoked, so its ledger entries still name it)."""
    if not await redis.exists(names.api_key(key_id)):
        return False
    await redis.hset(names.api_key(key_id), "revoked", "1")
    return True


def _encode(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _decode(raw: dict[bytes, bytes]) -> ApiKey:
    data = {k.decode(): v.decode() for k, v in raw.items()}

    def number(name: str, kind: type) -> Any:
        return kind(data[name]) if data.get(name) else None

    return ApiKey(id=data["id"], team=data["team"], created_at=float(data["created_at"]),
                  budget_usd=number("budget_usd", float),
                  period="day" if data.get("period") == "day" else "month",
                  rpm=number("rpm", int), tpm=number("tpm", int),
                  local_only=data.get("local_only") == "1", revoked=data.get("revoked") == "1")


async def with_spend(redis: Redis, names: Names, keys: list[ApiKey]) -> list[dict[str, Any]]:
    """Each key's public fields and its cloud spend this month (from the ledger: every team's
    keys, or the one team all of ``keys`` serve)."""
    month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    teams = {k.team for k in keys}
    spend = await key_spend(redis, names, month, team=teams.pop() if len(teams) == 1 else None)
    return [{**k.public(), "spend_usd_this_month": round(spend.get(k.id, 0.0), 6)} for k in keys]
