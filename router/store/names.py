"""Every Redis key the service uses, in one place (as arq keeps its prefixes in one module).

Each name starts with the deployment's prefix (``redis.prefix``). On a Redis Cluster a Lua
script or a MULTI/EXEC may only touch keys of one hash slot, so the keys that one step touches
together share a hash tag (the part in braces, which alone decides the slot)::

    <prefix>:
      {apikeys}:key:<id>, {apikeys}:ids, {apikeys}:by-hash
            one tag: create_key's script writes all three at once
      budget:{<scope>}:<period>
            one key per script (reserve, settle, state), a tag per scope (team:<t>, key:<id>)
      ledger:{<team>}:entry:<id>, :record:<id>, :by-time, :rollup:<day>, :rollup-days,
                      :sessions:<day>, :histograms:<day>, :key-spend:<month>
            one tag per team: the ledger's write script touches that team's keys only
      ledger:teams
            the teams with entries, added by its own command; a read across teams fans out
      session:{<team>}:<session>
            one key (the tier serving an agent's open tool exchange)
      ratelimit:...
            the limits library's windows: one key per script
      queue, task:<id>, task-events:<id>, idempotency:<team>:<key>, task-feedback,
      worker:<id>, workers (and arq's arq:job:<id>, arq:in-progress:<id>, ...)
            untagged: async tasks run on one server only (docs/deploy.md says what a
            cluster needs)

Sharding is by team: a team's ledger lives on the node that owns its slot, and teams spread
over the cluster's nodes; API keys all sit on one slot (their lookup is cached per process).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    prefix: str

    # API keys: one hash per key id, the ids, a lookup from the secret's hash to the id.
    def api_key(self, key_id: str) -> str:
        return f"{self.prefix}:{{apikeys}}:key:{key_id}"

    def api_key_ids(self) -> str:
        return f"{self.prefix}:{{apikeys}}:ids"

    def api_key_by_hash(self) -> str:
        return f"{self.prefix}:{{apikeys}}:by-hash"

    # Budgets: spent and reserved USD of a scope (team or key) in one period.
    def budget(self, scope: str, period: str) -> str:
        return f"{self.prefix}:budget:{{{scope}}}:{period}"

    # The ledger, per team: one entry per request id, a time index, per-day rollups.
    def _ledger(self, team: str) -> str:
        return f"{self.prefix}:ledger:{{{team}}}"

    def ledger_teams(self) -> str:
        """The teams that have ledger entries (what a read across teams fans out over)."""
        return f"{self.prefix}:ledger:teams"

    def entry(self, team: str, request_id: str) -> str:
        return f"{self._ledger(team)}:entry:{request_id}"

    def team_entries(self, team: str) -> str:
        """The team's entry ids scored by time."""
        return f"{self._ledger(team)}:by-time"

    def rollup(self, team: str, day: str) -> str:
        return f"{self._ledger(team)}:rollup:{day}"

    def key_spend(self, team: str, month: str) -> str:
        """Cloud spend per key id of the team's keys in a month."""
        return f"{self._ledger(team)}:key-spend:{month}"

    def rollup_days(self, team: str) -> str:
        return f"{self._ledger(team)}:rollup-days"

    def entry_record(self, team: str, request_id: str) -> str:
        """The full route record of a ledger entry (what a dashboard row opens)."""
        return f"{self._ledger(team)}:record:{request_id}"

    def sessions(self, team: str, day: str) -> str:
        """Per-day totals of each of the team's agent sessions (fields
        ``team|session|metric``)."""
        return f"{self._ledger(team)}:sessions:{day}"

    def histograms(self, team: str, day: str) -> str:
        """Per-day histograms: latency per route, confidence of local answers kept and
        escalated (fields ``team|kind|series|bucket``)."""
        return f"{self._ledger(team)}:histograms:{day}"

    # Rate limits (the `limits` library's keys live under this prefix).
    def rate_limits(self) -> str:
        return f"{self.prefix}:ratelimit"

    # Tasks: arq's queue name, the task records, idempotency keys, events.
    def queue(self) -> str:
        return f"{self.prefix}:queue"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    def task_events(self, task_id: str) -> str:
        return f"{self.prefix}:task-events:{task_id}"

    def idempotency(self, team: str, key: str) -> str:
        return f"{self.prefix}:idempotency:{team}:{key}"

    def task_feedback(self) -> str:
        """Ids of tasks with feedback, scored by when it came (what calibration reads)."""
        return f"{self.prefix}:task-feedback"

    # Agent sessions: the tier serving a session's open tool exchange.
    def session_tier(self, team: str, session: str) -> str:
        return f"{self.prefix}:session:{{{team}}}:{session}"

    def worker_heartbeat(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    def workers(self) -> str:
        return f"{self.prefix}:workers"
