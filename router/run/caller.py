"""Who a run is for, resolved once per request, the same for every transport: the key, the
team it is served and charged as, the team's policy, the local-only rule, the budget gate and
the key's rate limits (:meth:`Caller.admit` before a run, :meth:`Caller.charge` after it).

This is the one place where a local-only key is enforced: its tasks are forced local
(:meth:`Caller.task`) and a request naming the cloud tier is refused
(:meth:`Caller.cloud_refusal`). The graph's policy node enforces the team's own privacy rules
(a local-only team, repo or path) on every routed task.

Build it on the event loop (the budget gate talks to the loop's Redis client).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from agents.config import CloudConfig
from policies.config import PoliciesConfig, PolicyConfig
from router.graph.context import RouterContext
from router.run.budget import BudgetGate, gate_for
from router.run.outcome import RouteRecord
from router.run.ratelimit import RateLimited, RateLimits
from router.store.apikeys import ApiKey
from router.store.names import Names


@dataclass(frozen=True)
class Caller:
    """One request's caller: ``key`` (None: auth off, or the admin key, then ``key_id`` says
    so), ``team`` (served and charged as), the team's ``policy``, and the ``gate`` its cloud
    calls reserve their spend on (None: neither the key nor the team has a budget), and the
    rate ``limits`` its key is held to (None: none are kept here, as in the task worker)."""

    team: str
    key: ApiKey | None
    key_id: str | None
    policy: PolicyConfig
    gate: BudgetGate | None
    limits: RateLimits | None = None

    @classmethod
    def resolve(cls, redis: Redis, names: Names, *, key: ApiKey | None, key_id: str | None,
                team: str, policies: PoliciesConfig, cloud: CloudConfig,
                limits: RateLimits | None = None) -> Caller:
        """The caller of a request by ``key`` for ``team``, its policy merged once."""
        policy = policies.for_team(team)
        return cls(team=team, key=key, key_id=key_id, policy=policy,
                   gate=gate_for(redis, names, key, team, policy, cloud), limits=limits)

    async def admit(self) -> None:
        """Count this request against its key's rate limits; :class:`RateLimited` when it is
        over one (then nothing is counted)."""
        if self.key is None or self.limits is None:
            return
        over = await self.limits.admit(self.key)
        if over is not None:
            raise RateLimited(*over)

    async def charge(self, record: RouteRecord) -> None:
        """Count the tokens a run used (after it ran) against its key's tokens per minute."""
        if self.key is not None and self.limits is not None:
            await self.limits.charge_tokens(self.key,
                                            record.tokens.prompt + record.tokens.completion)

    @property
    def local_only_key(self) -> bool:
        return self.key is not None and self.key.local_only

    def task(self, task: dict[str, Any]) -> dict[str, Any]:
        """``task`` as this caller may run it: the caller's team; forced local for a
        local-only key (its tasks never reach the cloud)."""
        out = {**task, "team": self.team}
        if self.local_only_key:
            out["route"] = "local"
        return out

    def context(self, context: RouterContext) -> RouterContext:
        """The graph's context for this caller's run: its team's policy as resolved here, its
        cloud calls through its gate."""
        return dataclasses.replace(context, cloud_gate=self.gate, policy=self.policy)

    def cloud_refusal(self) -> Literal["key", "team"] | None:
        """Why this caller may not name the cloud tier: its key is local-only, or its team
        is (privacy policy); None: it may."""
        if self.local_only_key:
            return "key"
        if self.policy.local_only:
            return "team"
        return None
