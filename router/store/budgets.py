"""Budgets that hold under concurrency: before a cloud call the worst-case cost is reserved
atomically (a Lua script compares spent + reserved + amount with the limit and reserves in
one step); afterwards the reservation is settled to the actual cost, or released on failure.

A reservation carries a deadline (``hold_s``: the longest its cloud call may take). One that
is never settled (its process was killed mid call) is reaped once past it: released, so the
budget stops refusing for a call that will never settle, by every reservation and every read
of that budget (in the same script: no scan, no extra process). A call that was only slow and
settles after its reservation was reaped is still charged (``x:<id>`` remembers it, once).

One hash per scope and period: ``spent``, ``reserved``, ``reaped`` (a count), and per open
reservation ``r:<id>`` (its amount) and ``d:<id>`` (its deadline, Redis's clock).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from policies.budget import Period, period_end, period_key
from router.store.names import Names

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
"""

# Release every reservation of KEYS[1] past its deadline (its caller died mid call).
_REAP = """
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local field = fields[i]
  if string.sub(field, 1, 2) == 'd:' and tonumber(fields[i + 1]) < now then
    local id = string.sub(field, 3)
    local amount = redis.call('HGET', KEYS[1], 'r:' .. id)
    redis.call('HDEL', KEYS[1], field, 'r:' .. id)
    if amount then
      redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', -tonumber(amount))
      redis.call('HSET', KEYS[1], 'x:' .. id, amount)
      redis.call('HINCRBY', KEYS[1], 'reaped', 1)
    end
  end
end
"""

# A reservation sent again (the client re-sends a command whose reply it lost, as redis-py's
# cluster client does through a failover) is the one it made: held once.
_RESERVE = _NOW + _REAP + """
if redis.call('HEXISTS', KEYS[1], 'r:' .. ARGV[3]) == 1 then return 1 end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
local amount = tonumber(ARGV[2])
if spent + reserved + amount > tonumber(ARGV[1]) + 1e-12 then return 0 end
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', ARGV[2])
redis.call('HSET', KEYS[1], 'r:' .. ARGV[3], ARGV[2], 'd:' .. ARGV[3], now + tonumber(ARGV[5]))
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return 1
"""

_SETTLE = """
local amount = redis.call('HGET', KEYS[1], 'r:' .. ARGV[1])
if amount then
  redis.call('HDEL', KEYS[1], 'r:' .. ARGV[1], 'd:' .. ARGV[1])
  redis.call('HINCRBYFLOAT', KEYS[1], 'reserved', -tonumber(amount))
elseif redis.call('HDEL', KEYS[1], 'x:' .. ARGV[1]) == 0 then
  return 0
end
redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
return 1
"""

_STATE = _NOW + _REAP + """
return redis.call('HGETALL', KEYS[1])
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
    reaped: int = 0  # reservations released past their deadline (their callers died)

    @property
    def left_usd(self) -> float:
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)


async def reserve(redis: Redis, names: Names, *, scope: str, period: Period, limit_usd: float,
                  amount_usd: float, hold_s: float,
                  now: dt.datetime | None = None) -> Reservation | None:
    """Reserve ``amount_usd`` of the scope's budget for at most ``hold_s`` seconds (then a
    later reservation or read reaps it); None when it would go over."""
    now = now or dt.datetime.now(dt.UTC)
    key = names.budget(scope, period_key(period, now))
    expire_at = int(period_end(period, now).timestamp()) + KEEP_AFTER_PERIOD_S
    reservation = Reservation(key, secrets.token_hex(8), amount_usd)
    ok = await redis.eval(_RESERVE, 1, key, limit_usd, amount_usd,  # type: ignore[misc]
                          reservation.id, expire_at, hold_s)
    return reservation if ok else None


async def settle(redis: Redis, reservation: Reservation, actual_usd: float) -> bool:
    """Turn a reservation into the actual spend (even one reaped meanwhile: the call was
    slow, not dead); False when it was already settled."""
    done = await redis.eval(_SETTLE, 1, reservation.key, reservation.id, actual_usd)  # type: ignore[misc]
    return bool(done)


async def release(redis: Redis, reservation: Reservation) -> bool:
    """Give a reservation back (the call failed: nothing was spent)."""
    return await settle(redis, reservation, 0.0)


async def state(redis: Redis, names: Names, *, scope: str, period: Period, limit_usd: float,
                now: dt.datetime | None = None) -> BudgetState:
    """The scope's budget now, reservations past their deadline reaped first."""
    now = now or dt.datetime.now(dt.UTC)
    raw = await redis.eval(_STATE, 1, names.budget(scope, period_key(period, now)))  # type: ignore[misc]
    data = {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw), 2)}
    return BudgetState(limit_usd=limit_usd, spent_usd=float(data.get("spent", 0)),
                       reserved_usd=float(data.get("reserved", 0)),
                       open_reservations=sum(1 for k in data if k.startswith("r:")),
                       reaped=int(data.get("reaped", 0)))
