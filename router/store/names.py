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
                      :sessions:<day>, :histograms:<day>, :key-spend:<month>,
                      :claim:<task id>#<attempt>
            one tag per team: the ledger's write script touches that team's keys only
      ledger:teams
            the teams with entries, added by its own command; a read across teams fans out
      session:{<team>}:<session>
            one key (the tier serving an agent's open tool exchange)
      ratelimit:...
            the limits library's windows: one key per script
      layout
            which moves of an older layout are done (router.store.migrate)
      breaker:{<cloud model>}
            the cloud tier's circuit breaker, shared by every process (one key per script)
      task:{<shard>}:<id>, task-events:{<shard>}:<id>, idempotency:{<shard>}:<team>:<key>
            one tag per task (its shard: 8 hex digits of its id): the scripts that create it
            and move its status touch these only. A task made with an Idempotency-Key gets
            the key's shard (a hash of team and key) in its id, so the lookup of the key and
            the task it names share a slot, and tasks spread over the nodes
      task-feedback
            ids of tasks with feedback (its own commands only)
      queue:{arq:abort}, workers:{arq:abort}, worker:{arq:abort}:<id>
            the task queue (arq's sorted set) and the workers' heartbeats, on the slot of
            arq's own fixed key ``arq:abort``; arq's keys of a job, arq:job:<job id>,
            arq:in-progress:<job id>, arq:retry:<job id>, arq:result:<job id>, are named by
            their job id, <prefix>:{arq:abort}:<task id> (:meth:`Names.job_id`), so every key
            arq's MULTI/EXEC steps touch (a job's keys, the queue, arq:abort) shares one slot
            and one node: :mod:`router.store.queue` opens arq's one-server client there

Sharding is by team: a team's ledger lives on the node that owns its slot, and teams spread
over the cluster's nodes; API keys all sit on one slot (their lookup is cached per process);
task records and events by task; the queue on one slot (one enqueue, one claim and one finish
per task: light next to the events a running task writes, which are on its own slot).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from arq.constants import abort_jobs_ss

# arq's finish step removes a job from this fixed key in the MULTI/EXEC that deletes the job's
# keys and takes it off the queue: the queue and the job ids carry it as their hash tag, so
# all of them hash to its slot (a tag's slot is the slot of the text inside the braces).
QUEUE_TAG = "{" + abort_jobs_ss + "}"
TASK_ID = re.compile(r"^task-[0-9a-f]{32}$")


def new_task_id(shard: str | None = None) -> str:
    """``task-`` and 32 hex digits, the first 8 its shard (random, or ``shard``)."""
    return f"task-{shard or secrets.token_hex(4)}{secrets.token_hex(12)}"


def shard_of_key(team: str, idempotency_key: str) -> str:
    """The shard of the task that a team's Idempotency-Key names (8 hex digits)."""
    return hashlib.sha256(f"{team}\0{idempotency_key}".encode()).hexdigest()[:8]


def task_shard(task_id: str) -> str:
    """The hash tag of a task's keys: its id's shard (any other text, which names no task,
    by a hash of it, so the key stays well formed)."""
    if TASK_ID.match(task_id):
        return task_id[5:13]
    return hashlib.sha256(task_id.encode()).hexdigest()[:8]


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

    def attempt_claim(self, team: str, task_id: str, attempt: int) -> str:
        """Who records attempt ``attempt`` of a task (:class:`router.store.ledger.Claim`)."""
        return f"{self._ledger(team)}:claim:{task_id}#{attempt}"

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

    # Tasks: arq's queue name and job ids, the task records, idempotency keys, events.
    def queue(self) -> str:
        return f"{self.prefix}:queue:{QUEUE_TAG}"

    def job_id(self, task_id: str) -> str:
        """arq's id of the job that runs a task (arq names its keys of the job by it)."""
        return f"{self.prefix}:{QUEUE_TAG}:{task_id}"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{{{task_shard(task_id)}}}:{task_id}"

    def task_events(self, task_id: str) -> str:
        return f"{self.prefix}:task-events:{{{task_shard(task_id)}}}:{task_id}"

    def idempotency(self, team: str, key: str) -> str:
        return f"{self.prefix}:idempotency:{{{shard_of_key(team, key)}}}:{team}:{key}"

    def task_feedback(self) -> str:
        """Ids of tasks with feedback, scored by when it came (what calibration reads)."""
        return f"{self.prefix}:task-feedback"

    # Agent sessions: the tier serving a session's open tool exchange.
    def session_tier(self, team: str, session: str) -> str:
        return f"{self.prefix}:session:{{{team}}}:{session}"

    def layout(self) -> str:
        """Which moves of an older layout are done (:mod:`router.store.migrate`)."""
        return f"{self.prefix}:layout"

    def breaker(self, model: str) -> str:
        """The shared circuit breaker of the cloud model ``model`` (one key per script)."""
        return f"{self.prefix}:breaker:{{{model}}}"

    def worker_heartbeat(self, worker: str) -> str:
        return f"{self.prefix}:worker:{QUEUE_TAG}:{worker}"

    def workers(self) -> str:
        return f"{self.prefix}:workers:{QUEUE_TAG}"
