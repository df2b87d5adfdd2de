"""The outcome of one run: its route record (typed) and the ledger entry written from it.

Every way a run ends writes its ledger entry through :func:`write_ledger`, once per request
id: a routed answer, a direct one (a request that named its tier), and a run stopped midway
(the client left, the task was cancelled or ran past its time). The entry's figures come from
the record's typed fields; the record itself is kept with the entry, for a dashboard to open.

A record has three constructors::

    RouteRecord.routed(graph_record)      the graph's record node built it (every signal)
    RouteRecord.direct(route=..., ...)    the request named its tier: nothing was decided
    RouteRecord.stopped(reason, ...)      the run stopped before it answered: what ran
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from router.store import ledger
from router.store.names import Names

Route = Literal["local", "cloud"]
# Why a run stopped before it answered; each is also the record's reason and finish reason.
# ``worker_stopped``: its worker shut down (the task runs again); ``worker_lost``: its worker
# died mid run (the task runs again; the record is what its progress events showed);
# ``server_stopping``: a stream the server cut when it stopped (router/run/stopping.py).
StopReason = Literal["client_disconnected", "cancelled", "timeout", "worker_stopped",
                     "worker_lost", "server_stopping"]


class Tokens(BaseModel):
    """A record's token counts: the prompt, the answer served, and what the local model
    generated (an escalated run's local attempt); the graph adds its breakdown (snippets,
    repair rounds, samples) as further fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    prompt: int
    completion: int
    local_completion: int = 0
    # the prompt as the cloud counted it (0: no cloud call), and of those, the tokens read
    # from and written to its prompt cache
    cloud_prompt: int = 0
    cloud_cache_read: int = 0
    cloud_cache_write: int = 0


class RouteRecord(BaseModel):
    """Why a task went where it went, what it cost and what the cloud would have cost.

    The fields the ledger and the wire adapters read are typed; the rest of the explanation
    (signals, thresholds, judge, attempts, models, flags, notes) travels as further fields,
    so :meth:`to_json` is the object the API returns as ``smallcode.route``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    final: Route
    reason: str
    escalated: bool
    tokens: Tokens
    cost_usd: float
    counterfactual_cost_usd: float
    confidence: float | None = None
    task_type: str | None = None
    finish_reason: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    agent: dict[str, Any] | None = None  # an agent's turn: its session, tools and calls

    @classmethod
    def routed(cls, record: dict[str, Any]) -> RouteRecord:
        """The record the graph's ``record`` node built (:mod:`router.graph.record`)."""
        return cls.model_validate(record)

    @classmethod
    def direct(cls, *, route: Route, prompt_tokens: int, completion_tokens: int,
               cost_usd: float, counterfactual_usd: float, backend: str | None = None,
               finish_reason: str | None = None, reason: str = "requested",
               detail: str | None = None, local_completion_tokens: int | None = None,
               **extra: Any) -> RouteRecord:
        """The record of a request that named its tier (``local``, ``cloud``): the same
        object a routed request's record is, so a client always reads ``route.final``.
        ``extra``: fields of the record beyond the common ones (a completion's cache use)."""
        local_completion = (local_completion_tokens if local_completion_tokens is not None
                            else completion_tokens if route == "local" else 0)
        return cls.model_validate({
            "final": route, "reason": reason, "escalated": False,
            "detail": detail or f"the request asked for model {route!r}",
            "confidence": None, "threshold": None, "signals": {}, "task_type": None,
            "files": [], "local_attempts": [], "timings_ms": {},
            "models": {route: backend} if backend else {},
            "tokens": {"prompt": prompt_tokens, "completion": completion_tokens,
                       "local_completion": local_completion},
            "finish_reason": finish_reason, "flags": [], "notes": [],
            "cost_usd": cost_usd, "counterfactual_cost_usd": counterfactual_usd, **extra})

    @classmethod
    def stopped(cls, reason: StopReason, *, prompt_tokens: int, local_tokens: int,
                cloud_tokens: int, cost_usd: float, counterfactual_usd: float,
                requested: Route | None = None) -> RouteRecord:
        """The record of a run stopped before it answered: the tier that was generating
        (the cloud once it had streamed or been charged), the tokens each tier streamed, and
        ``cost_usd``, what its budgets were charged for it. ``requested``: the tier a direct
        request named (its reason stays ``requested``); None for a routed run (its reason is
        why it stopped)."""
        final: Route = requested or ("cloud" if cloud_tokens or cost_usd > 0 else "local")
        return cls.direct(route=final, prompt_tokens=prompt_tokens,
                          completion_tokens=local_tokens + cloud_tokens,
                          local_completion_tokens=local_tokens, cost_usd=cost_usd,
                          counterfactual_usd=counterfactual_usd, finish_reason=reason,
                          reason="requested" if requested else reason,
                          detail=None if requested else
                          f"the run stopped before it answered ({reason})")

    def to_json(self) -> dict[str, Any]:
        """The record as the API returns it (``smallcode.route``) and the ledger keeps it."""
        return self.model_dump()


def ledger_entry(*, request_id: str, team: str, key_id: str | None, source: str,
                 record: RouteRecord, latency_ms: float, at: float | None = None,
                 status: str = "done") -> dict[str, Any]:
    """The ledger entry of one request (:mod:`router.store.ledger` stores it): its route,
    reason, tokens per tier, spend and counterfactual, from ``record``."""
    tokens, final, escalated = record.tokens, record.final, record.escalated
    return {
        "id": request_id, "time": at if at is not None else time.time(), "team": team,
        "key_id": key_id, "source": source, "status": status,
        "task_type": record.task_type, "route": final,
        "reason": record.reason, "escalated": escalated,
        "confidence": record.confidence,
        "tokens": {"prompt": tokens.prompt, "completion": tokens.completion,
                   "local": (tokens.prompt + tokens.local_completion)
                   if (final == "local" or escalated) else 0,
                   "cloud": (tokens.prompt + tokens.completion) if final == "cloud" else 0,
                   "local_completion": tokens.local_completion,
                   "cloud_cache_read": tokens.cloud_cache_read,
                   "cloud_cache_write": tokens.cloud_cache_write},
        "cost_usd": float(record.cost_usd),
        "counterfactual_usd": float(record.counterfactual_cost_usd),
        "escalated_local_ms": float(record.timings_ms.get("local_generate", 0.0))
        if escalated else 0.0,
        "latency_ms": round(latency_ms, 1),
        "session": (record.agent or {}).get("session"),
    }


async def write_ledger(redis: Redis, names: Names, *, request_id: str, team: str,
                       key_id: str | None, source: str, record: RouteRecord, latency_ms: float,
                       retention_days: int, status: str = "done",
                       claim: ledger.Claim | None = None) -> dict[str, Any] | None:
    """Write the ledger entry of one run's end, with its record, once per ``request_id``:
    the entry when it was new, None when that id was written already (a re-run) or a task
    attempt's ``claim`` refused it."""
    entry = ledger_entry(request_id=request_id, team=team, key_id=key_id, source=source,
                         record=record, latency_ms=latency_ms, status=status)
    written = await ledger.write_entry(redis, names, entry, retention_days=retention_days,
                                       record=record.to_json(), claim=claim)
    return entry if written else None
