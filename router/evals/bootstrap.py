"""Bootstrap intervals on routed figures: resample the problems, recompute, take percentiles.

A routed run over n problems is, per problem, three facts: whether the answer served passed,
whether it went to the cloud, and whether the cloud-only answer passed (:class:`Decision`).
Every figure of the judge tables is a mean of these, so one resample of problem indices
(with replacement, the same indices for every figure: the difference "routed minus
cloud-only" is paired) gives every figure at once. The thresholds stay where they were
calibrated: the interval is what the scored problems' sampling allows, not the calibration's.
A seeded :class:`random.Random` makes the intervals the same on every run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

#: The figures an interval is given for.
FIGURES = ("pass_at_1", "cloud_share", "minus_cloud")
LEVEL = 0.95


@dataclass(frozen=True)
class Decision:
    passed: bool  # the answer served (local, or the cloud's when escalated) passed
    cloud: bool  # escalated
    cloud_passed: bool  # the cloud-only answer to the same problem passed


def figures(rows: Sequence[Decision]) -> dict[str, float]:
    """pass@1, cloud share and routed minus cloud-only pass@1 (in points of 1)."""
    n = len(rows)
    passed = sum(r.passed for r in rows) / n
    return {"pass_at_1": passed, "cloud_share": sum(r.cloud for r in rows) / n,
            "minus_cloud": passed - sum(r.cloud_passed for r in rows) / n}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, linear between the two nearest ranks."""
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def intervals(rows: Sequence[Decision], *, resamples: int, seed: int = 0,
              level: float = LEVEL) -> dict[str, tuple[float, float]]:
    """The percentile bootstrap's ``level`` interval of each of :data:`FIGURES`, from
    ``resamples`` resamples of the problems drawn by ``random.Random(seed)``."""
    if resamples < 1 or not rows:
        raise ValueError("intervals need at least one resample and one problem")
    n = len(rows)
    drawn: dict[str, list[float]] = {name: [] for name in FIGURES}
    passed = [int(r.passed) for r in rows].__getitem__
    cloud = [int(r.cloud) for r in rows].__getitem__
    cloud_passed = [int(r.cloud_passed) for r in rows].__getitem__
    for sample in draws(n, resamples, seed):
        routed = sum(map(passed, sample)) / n
        drawn["pass_at_1"].append(routed)
        drawn["cloud_share"].append(sum(map(cloud, sample)) / n)
        drawn["minus_cloud"].append(routed - sum(map(cloud_passed, sample)) / n)
    tail = (1 - level) / 2
    found = {}
    for name, values in drawn.items():
        values.sort()
        found[name] = (percentile(values, tail), percentile(values, 1 - tail))
    return found


@lru_cache(maxsize=16)
def draws(n: int, resamples: int, seed: int) -> tuple[tuple[int, ...], ...]:
    """The resamples of ``n`` problem indices that ``random.Random(seed)`` draws: the same
    for every figure of a table (pure: cached)."""
    rng = random.Random(seed)
    return tuple(tuple(rng.choices(range(n), k=n)) for _ in range(resamples))


def rate_interval(hits: Sequence[bool], *, resamples: int, seed: int = 0,
                  level: float = LEVEL) -> tuple[float, float]:
    """The interval of one pass rate (local-only, cloud-only, the oracle), resampled with the
    same draws as :func:`intervals` for the same seed and number of problems."""
    rows = [Decision(bool(h), False, False) for h in hits]
    return intervals(rows, resamples=resamples, seed=seed, level=level)["pass_at_1"]
