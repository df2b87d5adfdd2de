"""What every generating request goes through besides the model: its key's rate limits first,
then, once it has run, one ledger entry (exactly once, by request id), the metrics and the
tokens-per-minute count."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Request

from router.service import admission
from router.service.deps import Caller
from router.service.errors import APIError
from router.store import ledger

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


def direct_record(*, route: str, prompt_tokens: int, completion_tokens: int, cost_usd: float,
                  counterfactual_usd: float, backend: str | None = None,
                  finish_reason: str | None = None) -> dict[str, Any]:
    """The route record of a request that named its tier (``local``, ``cloud``): the same
    object a routed request's record is, so a client always reads ``route.final``."""
    return {"final": route, "reason": "requested", "escalated": False,
            "detail": f"the request asked for model {route!r}",
            "confidence": None, "threshold": None, "signals": {}, "task_type": None,
            "files": [], "local_attempts": [], "timings_ms": {},
            "models": {route: backend} if backend else {},
            "tokens": {"prompt": prompt_tokens, "completion": completion_tokens,
                       "local_completion": completion_tokens if route == "local" else 0},
            "finish_reason": finish_reason, "flags": [], "notes": [],
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
