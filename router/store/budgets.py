"""Budgets that hold under concurrency: before a cloud call the worst-case cost is reserved
atomically (a Lua script compares spent + reserved + amount with the limit and reserves in
one step); afterwards the reservation is settled to the actual cost, or released on failure.
A reservation that is never settled (a crashed process) expires with its period's key.

One hash per scope and period: ``spent``, ``reserved`` and one ``r:<id>`` field per open
reservation.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from policies.budget import Period, period_end, period_key
from router.store.names import Names

_RESERVE = """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local amount = tonumber(ARGV[2])
if spent + reserved + amount > tonumber(ARGV[1]) + 1e-12 then return 0 end
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', ARGV[2])
redis.call('HSET', KEYS[1], 'r:' .. ARGV[3], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return 1
"""

_SETTLE = """
local amount = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if not amount then return 0 end
redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', -tonumber(amount))
redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
return 1
"""

KEEP_AFTER_PERIOD_S = 40 * 86400  # keep a period's figures for reports after it ends


@dataclass(frozen=True)
class Reservation:
    key: str
    id: str
    amount_usd: float


@dataclass(frozen=True)
class BudgetState:
    limit_usd: float
    spent_usd: float
    reserved_usd: float
    open_reservations: int

    @property
    def left_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)


async def reserve(redis: Redis, names: Names, *, scope: str, period: Period, limit_usd: float,
                  amount_usd: float, now: dt.datetime | None = None) -> Reservation | None:
    """Reserve ``amount_usd`` of the scope's budget; None when it would go over."""
    now = now or dt.datetime.now(dt.UTC)
    key = names.budget(scope, period_key(period, now))
    expire_at = int(period_end(period, now).timestamp()) + KEEP_AFTER_PERIOD_S
    reservation = Reservation(key, secrets.token_hex(8), amount_usd)
    ok = await redis.eval(_RESERVE, 1, key, limit_usd, amount_usd,  # type: ignore[misc]
                          reservation.id, expire_at)
    return reservation if ok else None


async def settle(redis: Redis, reservation: Reservation, actual_usd: float) -> bool:
    """Turn a reservation into the actual spend; False when it was already settled."""
    done = await redis.eval(_SETTLE, 1, reservation.key, reservation.id, actual_usd)  # type: ignore[misc]
    return bool(done)


async def release(redis: Redis, reservation: Reservation) -> bool:
    """Give a reservation back (the call failed: nothing was spent)."""
    return await settle(redis, reservation, 0.0)


async def state(redis: Redis, names: Names, *, scope: str, period: Period, limit_usd: float,
                now: dt.datetime | None = None) -> BudgetState:
    now = now or dt.datetime.now(dt.UTC)
    raw = await redis.hgetall(names.budget(scope, period_key(period, now)))  # type: ignore[misc]
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return BudgetState(limit_usd=limit_usd, spent_usd=float(data.get("spent", 0)),
                       reserved_usd=float(data.get("reserved", 0)),
                       open_reservations=sum(1 for k in data if k.startswith("r:")))
