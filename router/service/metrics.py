"""Prometheus metrics of one process (``/metrics``), in a registry of its own (no
module-level globals, so two apps in one process do not share counters).

Several processes: each is its own scrape target (an API replica's ``/metrics``; a
``smallcode worker``'s on ``tasks.metrics_port``), the counters and histograms of each count
what that process ran (a request it answered, a task it ran: each ledger entry in exactly one
process), and a sum over the targets is the deployment's (what docs/grafana-dashboard.json
does; Prometheus's ``instance`` label keeps the targets' series apart). The two gauges read
from Redis (queue depth, live workers) are the same on every API process and absent from a
worker's: the dashboard takes their max. Totals that must agree to the cent (tasks, spend,
savings per team) come from the ledger through ``/v1/usage``; these series are for alerting
and latency.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)


@runtime_checkable
class ServerTier(Protocol):
    """A local tier of servers (:class:`agents.pool.LocalPool`,
    :class:`agents.remote.RemoteLocalBackend`): ``members()`` describes each; the in-process
    model has none."""

    def members(self) -> list[dict[str, object]]: ...


def servers_of(backend: object) -> list[dict[str, object]]:
    """Each server of a local tier (url, up, problem; a pool adds in_flight, requests,
    failures); empty for the in-process model."""
    return backend.members() if isinstance(backend, ServerTier) else []


class LocalMembers(Collector):
    """The local tier's servers, read from the backend at each scrape (what the pool knows
    now: no probe, so a scrape never waits on a server)."""

    def __init__(self) -> None:
        self.backend: object = None

    def collect(self) -> Iterator[Metric]:
        members = servers_of(self.backend)
        if not members:
            return  # the in-process model: no series at all
        up = GaugeMetricFamily("smallcode_local_member_up", "1 while the local server takes "
                               "requests, 0 while it is left out", labels=["url"])
        busy = GaugeMetricFamily("smallcode_local_member_in_flight", "requests this process "
                                 "has in flight on the local server", labels=["url"])
        sent = CounterMetricFamily("smallcode_local_member_requests", "requests this process "
                                   "sent the local server", labels=["url"])
        failed = CounterMetricFamily("smallcode_local_member_failures", "requests that failed "
                                     "on the local server (it was then left out)",
                                     labels=["url"])
        for member in members:
            url = str(member["url"])
            up.add_metric([url], 1.0 if member.get("up") else 0.0)
            for family, key in ((busy, "in_flight"), (sent, "requests"), (failed, "failures")):
                value = member.get(key)
                if isinstance(value, int):
                    family.add_metric([url], value)
        yield from (up, busy, sent, failed)


class Metrics:
    def __init__(self, *, queue_gauges: bool = True) -> None:
        """``queue_gauges``: the queue depth and live workers (an API process sets them from
        Redis at each scrape; a worker has none)."""
        self.registry = CollectorRegistry()
        self.requests = Counter("smallcode_requests", "routed requests", ["team", "route", "reason"],
                                registry=self.registry)
        self.escalations = Counter("smallcode_escalations", "local answers escalated to the cloud",
                                   ["team", "reason"], registry=self.registry)
        self.tokens = Counter("smallcode_tokens", "tokens by tier and kind", ["team", "tier", "kind"],
                              registry=self.registry)
        self.spend = Counter("smallcode_cloud_spend_usd", "cloud spend in USD", ["team"],
                             registry=self.registry)
        self.counterfactual = Counter("smallcode_counterfactual_usd",
                                      "what the same requests would have cost all-cloud",
                                      ["team"], registry=self.registry)
        gauges = self.registry if queue_gauges else None
        self.queue_depth = Gauge("smallcode_queue_depth", "tasks waiting in the queue (from Redis: "
                                 "the same on every process)", registry=gauges)
        self.workers = Gauge("smallcode_workers_alive", "workers whose heartbeat is current (from "
                             "Redis)", registry=gauges)
        self.first_token = Histogram("smallcode_time_to_first_token_seconds",
                                     "time until the client could see the first token (a routed "
                                     "answer is judged whole first)", ["route"],
                                     buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.latency = Histogram("smallcode_request_seconds", "request latency, total",
                                 ["route"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self._local = LocalMembers()
        self.registry.register(self._local)

    def watch_local(self, backend: object) -> None:
        """Show each server of this local tier (``smallcode_local_member_*{url=...}``)."""
        self._local.backend = backend

    def observe(self, entry: dict[str, Any], first_token_ms: float | None = None) -> None:
        """Count one ledger entry (see :func:`router.run.outcome.ledger_entry`)."""
        team, route, reason = entry["team"], entry["route"], entry["reason"]
        self.requests.labels(team, route, reason).inc()
        if entry["escalated"]:
            self.escalations.labels(team, reason).inc()
        tokens = entry["tokens"]
        tier = "cloud" if route == "cloud" else "local"
        self.tokens.labels(team, tier, "prompt").inc(tokens["prompt"])
        self.tokens.labels(team, tier, "completion").inc(tokens["completion"])
        self.spend.labels(team).inc(entry["cost_usd"])
        self.counterfactual.labels(team).inc(entry["counterfactual_usd"])
        self.latency.labels(route).observe(entry["latency_ms"] / 1000)
        first = entry["latency_ms"] if first_token_ms is None else first_token_ms
        self.first_token.labels(route).observe(first / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
