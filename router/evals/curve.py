"""The cost–quality curve of recorded runs: cloud share (x) against pass@1 (y) over the
confidence-threshold sweep, with local-only, cloud-only and the oracle marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policies.calibration import Calibration, CalibrationError, calibrate, sweep
from router.evals.report import VARIANTS, Record, oracle, outcomes, pass_at_1

LABELS = {"both": "router (logprobs + execution checks)", "logprob_only": "logprobs only",
          "execution_only": "execution checks only"}


def cheapest_at_cloud_quality(records: Sequence[Record]) -> Calibration | None:
    """The threshold reaching cloud-only pass@1 with the smallest cloud share; None when no
    threshold reaches it."""
    try:
        return calibrate(outcomes(records), target_quality=pass_at_1(records, "cloud") or 0.0)
    except CalibrationError:
        return None


def draw(records: Sequence[Record], png: Path, *, title: str = "HumanEval") -> None:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(7, 5), dpi=120)
    axes = figure.subplots()
    for variant, style in (("both", "-"), ("logprob_only", "--"), ("execution_only", ":")):
        points = sorted((p.expected_cloud_share, p.expected_quality)
                        for p in sweep(outcomes(records, variant)))
        axes.plot([x for x, _ in points], [y for _, y in points], style, marker=".",
                  label=LABELS[variant])
    local, cloud = pass_at_1(records, "local") or 0.0, pass_at_1(records, "cloud") or 0.0
    best = oracle(records)
    routed = [float(r["routed"]["route"] == "cloud") for r in records]
    axes.scatter([0.0], [local], marker="s", s=60, color="grey", zorder=3, label="local only")
    axes.scatter([1.0], [cloud], marker="s", s=60, color="red", zorder=3, label="cloud only")
    axes.scatter([best["cloud_share"] or 0.0], [best["pass_at_1"] or 0.0], marker="*", s=140, color="gold",
                 edgecolor="black", zorder=3, label="oracle (best of both)")
    axes.scatter([sum(routed) / len(routed)], [pass_at_1(records, "routed") or 0.0], marker="o", s=60,
                 color="green", zorder=3, label=f"routed as run (t={records[0]['routed']['threshold']})")
    axes.axhline(cloud, color="red", linewidth=0.6, linestyle="--")
    axes.set_xlabel("share of tasks sent to the cloud")
    axes.set_ylabel("pass@1")
    axes.set_xlim(-0.02, 1.02)
    axes.set_title(f"{title}: cost–quality over the confidence threshold ({len(records)} problems)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)


def summary(records: Sequence[Record], png: Path) -> dict[str, Any]:
    point = cheapest_at_cloud_quality(records)
    return {
        "png": str(png),
        "n": len(records),
        "pass_at_1": {"local": pass_at_1(records, "local"), "cloud": pass_at_1(records, "cloud"),
                      "oracle": oracle(records)["pass_at_1"]},
        "threshold_at_cloud_quality": None if point is None else {
            "threshold": point.threshold, "cloud_share": point.expected_cloud_share,
            "pass_at_1": point.expected_quality},
        "variants": list(VARIANTS),
    }
