"""Who a run is for, resolved once per request, the same for every transport: the key, the
team it is served and charged as, the team's policy, the local-only rule and the budget gate.

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
from router.store.apikeys import ApiKey
from router.store.names import Names


@dataclass(frozen=True)
class Caller:
    """One request's caller: ``key`` (None: auth off, or the admin key, then ``key_id`` says
    so), ``team`` (served and charged as), the team's ``policy``, and the ``gate`` its cloud
    calls reserve their spend on (None: neither the key nor the team has a budget)."""

    team: str
    key: ApiKey | None
    key_id: str | None
    policy: PolicyConfig
    gate: BudgetGate | None

    @classmethod
    def resolve(cls, redis: Redis, names: Names, *, key: ApiKey | None, key_id: str | None,
                team: str, policies: PoliciesConfig, cloud: CloudConfig) -> Caller:
        """The caller of a request by ``key`` for ``team``, its policy merged once."""
        policy = policies.for_team(team)
        return cls(team=team, key=key, key_id=key_id, policy=policy,
                   gate=gate_for(redis, names, key, team, policy, cloud))

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
