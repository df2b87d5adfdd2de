"""Report figures on hand-made records: APGR, the held-out split, simulated routing."""

from __future__ import annotations

import pytest

from policies.calibration import Outcome, sweep
from router.evals.report import apgr, headline, held_out, oracle, simulate
from router.evals.run import effective_confidence
from tests.evals.records import record

OUTCOMES = [Outcome(0.9, True, True), Outcome(0.8, True, True), Outcome(0.3, False, True),
            Outcome(0.1, False, False)]


def test_apgr_by_hand() -> None:
    # shares 0, .25, .5, .75, 1 with pass@1 .5, .5, .75, .75, .75: area .65625
    assert apgr(sweep(OUTCOMES), weak=0.5, strong=0.75) == pytest.approx(0.625)


def test_apgr_of_a_perfect_ranking_is_higher() -> None:
    ranked = [Outcome(0.9, True, True), Outcome(0.8, True, True), Outcome(0.1, False, True),
              Outcome(0.3, False, False)]
    assert apgr(sweep(ranked), weak=0.5, strong=0.75) == pytest.approx(0.875)


def test_apgr_undefined_when_the_tiers_tie() -> None:
    assert apgr(sweep(OUTCOMES), weak=0.5, strong=0.5) is None


def test_thresholds_come_from_the_calibration_half_only() -> None:
    records = [
        record("c1", 0.9, True, True, split="calibrate"),
        record("c2", 0.4, False, True, split="calibrate"),
        record("c3", 0.6, True, True, split="calibrate"),
        record("r1", 0.5, False, True),
        record("r2", 0.7, True, False),
        record("r3", 0.65, False, True),
    ]
    result = held_out(records)
    assert (result["calibrate_n"], result["report_n"]) == (3, 3)
    point = result["variants"]["both"]["at_cloud_quality"]
    # calibration half: t=0.6 sends c2 out and reaches its cloud pass rate (100%)
    assert point["threshold"] == 0.6
    # report half at 0.6: r1 to the cloud (passes), r2 local (passes), r3 local (fails)
    assert point["pass_at_1"] == pytest.approx(2 / 3)
    assert point["cloud_share"] == pytest.approx(1 / 3)
    assert point["savings_vs_cloud"] == pytest.approx(2 / 3)
    assert result["local"] == pytest.approx(1 / 3) and result["cloud"] == pytest.approx(2 / 3)


def test_simulate_sends_unscored_tasks_to_the_cloud() -> None:
    records = [record("a", None, True, False), record("b", 0.9, False, True)]
    result = simulate(records, "both", 0.5)
    assert result["cloud_share"] == 0.5 and result["pass_at_1"] == 0.0


def test_ablation_uses_each_signal() -> None:
    records = [record("a", 0.9, True, True, logprob=0.2, examples=1.0),
               record("b", 0.1, False, True, logprob=0.8, examples=0.0)]
    assert simulate(records, "logprob_only", 0.5)["pass_at_1"] == 0.5
    assert simulate(records, "execution_only", 0.5)["pass_at_1"] == 1.0
    assert simulate(records, "both", 0.5)["pass_at_1"] == 1.0


def test_headline_costs_and_savings() -> None:
    records = [record("a", 0.9, True, True), record("b", 0.1, False, True, routed="cloud"),
               record("c", 0.8, True, True), record("d", 0.7, True, True)]
    summary = headline(records)
    assert summary["pass_at_1"] == {"local": 0.75, "cloud": 1.0, "routed": 1.0}
    assert summary["cloud_share"] == 0.25
    assert summary["cost_usd"]["cloud"] == pytest.approx(0.04)
    assert summary["savings_vs_cloud"] == pytest.approx(0.75)
    assert oracle(records) == {"pass_at_1": 1.0, "cloud_share": 0.25}


def test_effective_confidence_folds_in_threshold_free_escalations() -> None:
    signals = {"checks_failed": False, "router_score": 0.7}
    assert effective_confidence(signals, {"final": "local", "reason": "confident"}) == 0.7
    assert effective_confidence(signals, {"final": "cloud", "reason": "low_confidence"}) == 0.7
    assert effective_confidence(signals, {"final": "cloud", "reason": "early_abort"}) == 0.0
    assert effective_confidence({**signals, "checks_failed": True},
                                {"final": "cloud", "reason": "failed_checks"}) == 0.0
    assert effective_confidence({**signals, "router_score": None},
                                {"final": "cloud", "reason": "low_confidence"}) is None
