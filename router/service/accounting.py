"""What every generating request goes through besides the model: its key's rate limits first,
then, once it has run, one ledger entry (exactly once, by request id), the metrics and the
tokens-per-minute count."""

from __future__ import annotations

import logging
import time

from fastapi import Request

from router.run.caller import Caller as RunCaller
from router.run.outcome import RouteRecord, write_ledger
from router.service import admission
from router.service.deps import Caller
from router.service.errors import APIError

log = logging.getLogger("smallcode.api")


async def admit(request: Request, caller: Caller) -> None:
    """Refuse with 429 and ``Retry-After`` when the key is over a rate limit, or when the
    process holds ``server.max_generating`` generating requests already."""
    if caller.key is not None:
        over = await request.app.state.rate_limits.admit(caller.key)
        if over is not None:
            which, retry_after = over
            raise APIError(429, f"this key is over its {which} limit; retry in {retry_after} s",
                           type_="rate_limit_error", code="rate_limited",
                           headers={"Retry-After": str(retry_after)})
    admission.enter(request)


async def account(request: Request, caller: RunCaller, *, request_id: str, source: str,
                  record: RouteRecord, started: float,
                  first_token_ms: float | None = None) -> None:
    """Write the request's ledger entry once, count it in the metrics and the key's tokens."""
    state = request.app.state
    entry = await write_ledger(state.redis, state.names, request_id=request_id, team=caller.team,
                               key_id=caller.key_id, source=source, record=record,
                               latency_ms=(time.perf_counter() - started) * 1000,
                               retention_days=state.settings.redis.retention_days)
    if entry is not None:
        state.metrics.observe(entry, first_token_ms)
    if caller.key is not None:
        await state.rate_limits.charge_tokens(caller.key,
                                              record.tokens.prompt + record.tokens.completion)
