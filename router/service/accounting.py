"""What every generating request goes through besides the model: its key's rate limits first,
then, once it has run, one ledger entry (exactly once, by request id), the metrics and the
tokens-per-minute count."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Request

from router.service.deps import Caller
from router.service.errors import APIError
from router.store import ledger

log = logging.getLogger("smallcode.api")


async def admit(request: Request, caller: Caller) -> None:
    """Refuse with 429 and ``Retry-After`` when the key is over a rate limit."""
    if caller.key is None:
        return
    over = await request.app.state.rate_limits.admit(caller.key)
    if over is not None:
        which, retry_after = over
        raise APIError(429, f"this key is over its {which} limit; retry in {retry_after} s",
                       type_="rate_limit_error", code="rate_limited",
                       headers={"Retry-After": str(retry_after)})


def direct_record(*, route: str, prompt_tokens: int, completion_tokens: int, cost_usd: float,
                  counterfactual_usd: float) -> dict[str, Any]:
    """The route record's accounting part for a request that named its tier (local, cloud)."""
    return {"final": route, "reason": "requested", "escalated": False,
            "tokens": {"prompt": prompt_tokens, "completion": completion_tokens,
                       "local_completion": completion_tokens if route == "local" else 0},
            "cost_usd": cost_usd, "counterfactual_cost_usd": counterfactual_usd}


async def account(request: Request, caller: Caller, *, request_id: str, team: str, source: str,
                  record: dict[str, Any], started: float,
                  first_token_ms: float | None = None) -> None:
    """Write the request's ledger entry once, count it in the metrics and the key's tokens."""
    state = request.app.state
    entry = ledger.build_entry(request_id=request_id, team=team, key_id=caller.key_id,
                               source=source, record=record,
                               latency_ms=(time.perf_counter() - started) * 1000)
    written = await ledger.write_entry(state.redis, state.names, entry,
                                       retention_days=state.settings.redis.retention_days,
                                       record=record)
    if written:
        state.metrics.observe(entry, first_token_ms)
    if caller.key is not None:
        tokens = entry["tokens"]["prompt"] + entry["tokens"]["completion"]
        await state.rate_limits.charge_tokens(caller.key, tokens)
