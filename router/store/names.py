"""Every Redis key the service uses, in one place (as arq keeps its prefixes in one module).

Each name starts with the deployment's prefix (``redis.prefix``). Keys one Lua script touches
together share a ``{team}`` hash tag where they are per team, so the script stays on one slot
under Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    prefix: str

    # API keys: one hash per key id; a lookup from the secret's hash to the id.
    def api_key(self, key_id: str) -> str:
        return f"{self.prefix}:apikey:{key_id}"

    def api_key_ids(self) -> str:
        return f"{self.prefix}:apikeys"

    def api_key_by_hash(self) -> str:
        return f"{self.prefix}:apikey-hashes"

    # Budgets: spent and reserved USD of a scope (team or key) in one period.
    def budget(self, scope: str, period: str) -> str:
        return f"{self.prefix}:budget:{{{scope}}}:{period}"

    # The ledger: one entry per request id, a time index, per-day rollups.
    def entry(self, request_id: str) -> str:
        return f"{self.prefix}:ledger:entry:{request_id}"

    def entries(self) -> str:
        return f"{self.prefix}:ledger:by-time"

    def team_entries(self, team: str) -> str:
        return f"{self.prefix}:ledger:by-time:{team}"

    def rollup(self, day: str) -> str:
        return f"{self.prefix}:ledger:rollup:{day}"

    def key_spend(self, month: str) -> str:
        return f"{self.prefix}:ledger:key-spend:{month}"

    def rollup_days(self) -> str:
        return f"{self.prefix}:ledger:rollup-days"

    def entry_record(self, request_id: str) -> str:
        """The full route record of a ledger entry (what a dashboard row opens)."""
        return f"{self.prefix}:ledger:record:{request_id}"

    def sessions(self, day: str) -> str:
        """Per-day totals of each agent session (fields ``team|session|metric``)."""
        return f"{self.prefix}:ledger:sessions:{day}"

    def histograms(self, day: str) -> str:
        """Per-day histograms: latency per route, confidence of local answers kept and
        escalated (fields ``team|kind|series|bucket``)."""
        return f"{self.prefix}:ledger:histograms:{day}"

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
