"""Hand-made result records, shaped like the lines `smallcode eval humaneval` writes."""

from __future__ import annotations

from typing import Any


def record(task_id: str, score: float | None, local: bool, cloud: bool, *,
           split: str = "report", logprob: float | None = None,
           examples: float | None = None, routed: str = "local",
           cloud_cost: float = 0.01) -> dict[str, Any]:
    routed_passed = cloud if routed == "cloud" else local
    return {
        "task_id": task_id, "split": split, "confidence": score,
        "local_passed": local, "cloud_passed": cloud, "routed_passed": routed_passed,
        "signals": {"logprob_confidence": score if logprob is None else logprob,
                    "examples_score": examples},
        "local": {"passed": local, "latency_ms": 1000.0, "cost_usd": 0.0},
        "cloud": {"passed": cloud, "latency_ms": 3000.0, "cost_usd": cloud_cost},
        "routed": {"route": routed, "passed": routed_passed, "threshold": 0.55,
                   "cost_usd": cloud_cost if routed == "cloud" else 0.0,
                   "latency_ms": 4000.0 if routed == "cloud" else 1000.0},
        "models": {"local": "l", "cloud": "c", "priced_as": "claude-sonnet-4-5"},
    }
