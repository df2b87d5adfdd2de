"""Prometheus metrics of one API process (``/metrics``), in a registry of the app's own (no
module-level globals, so two apps in one process do not share counters).

Totals that must agree across processes (tasks, spend, savings per team) come from the ledger
through ``/v1/usage``; these series are for alerting and latency.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)


class Metrics:
    def __init__(self) -> None:
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
        self.queue_depth = Gauge("smallcode_queue_depth", "tasks waiting in the queue (from Redis: "
                                 "the same on every process)", registry=self.registry)
        self.workers = Gauge("smallcode_workers_alive", "workers whose heartbeat is current (from "
                             "Redis)", registry=self.registry)
        self.first_token = Histogram("smallcode_time_to_first_token_seconds",
                                     "time until the client could see the first token (a routed "
                                     "answer is judged whole first)", ["route"],
                                     buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.latency = Histogram("smallcode_request_seconds", "request latency, total",
                                 ["route"], buckets=LATENCY_BUCKETS_S, registry=self.registry)

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
