from __future__ import annotations

import json
from pathlib import Path

import pytest

from policies.calibration import Calibration, Outcome, calibrate, load_outcomes, sweep
from policies.errors import CalibrationError, OutcomesError


def ladder(n: int = 10) -> list[Outcome]:
    # score i/10; the local answer is right from 0.4 up, the cloud always right
    return [Outcome(i / n, local_correct=i >= 4, cloud_correct=True) for i in range(n)]


def test_cloud_share_target_is_the_matching_quantile() -> None:
    result = calibrate(ladder(), target_cloud_share=0.2)
    assert result == Calibration(threshold=0.2, expected_cloud_share=0.2,
                                 expected_quality=0.8, n=10)


def test_unscored_tasks_always_go_to_the_cloud() -> None:
    outcomes = [Outcome(None, False, True), *ladder()]
    share = calibrate(outcomes, target_cloud_share=0.0)
    assert share.threshold == 0.0
    assert share.expected_cloud_share == pytest.approx(1 / 11)
    assert calibrate(outcomes, target_cloud_share=3 / 11).threshold == pytest.approx(0.2)


def test_cloud_share_never_exceeds_target_with_ties() -> None:
    outcomes = [Outcome(0.5, True)] * 5 + [Outcome(0.9, True)] * 5
    result = calibrate(outcomes, target_cloud_share=0.3)
    assert result.expected_cloud_share == 0.0
    assert calibrate(outcomes, target_cloud_share=1.0).expected_cloud_share == 1.0


def test_quality_target_takes_the_smallest_cloud_share() -> None:
    result = calibrate(ladder(), target_quality=1.0)
    assert (result.threshold, result.expected_cloud_share) == (0.4, 0.4)
    assert calibrate(ladder(), target_quality=0.75).expected_cloud_share == 0.2


def test_unknown_cloud_outcomes_count_at_the_measured_cloud_rate() -> None:
    outcomes = [Outcome(0.1, False, True), Outcome(0.2, False, False), Outcome(0.3, False)]
    everything_out = sweep(outcomes)[-1]
    assert everything_out.expected_cloud_share == 1.0
    assert everything_out.expected_quality == pytest.approx((1 + 0 + 0.5) / 3)


def test_unreachable_quality_says_the_best() -> None:
    outcomes = [Outcome(0.9, False, False), Outcome(0.1, True, False)]
    with pytest.raises(CalibrationError, match=r"best expected quality .* is 0\.5"):
        calibrate(outcomes, target_quality=0.9)


def test_sweep_is_ascending_in_cloud_share_and_ends_all_cloud() -> None:
    curve = sweep(ladder())
    assert [p.threshold for p in curve] == [i / 10 for i in range(10)] + [1.0]
    shares = [p.expected_cloud_share for p in curve]
    assert shares == sorted(shares) and shares[0] == 0.0 and shares[-1] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"target_cloud_share": 0.2, "target_quality": 0.9}, {"target_cloud_share": 1.2}],
)
def test_bad_targets(kwargs: dict[str, float]) -> None:
    with pytest.raises(CalibrationError):
        calibrate(ladder(), **kwargs)


def test_no_outcomes() -> None:
    with pytest.raises(CalibrationError, match="no outcomes"):
        calibrate([], target_cloud_share=0.2)


def test_load_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    rows = [
        {"confidence": 0.7, "local_passed": True, "cloud_passed": False},
        {"confidence": None, "local_passed": False, "task_id": "t2"},
    ]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert load_outcomes(path) == [Outcome(0.7, True, False), Outcome(None, False, None)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"confidence": 0.5}', "confidence and local_passed are required"),
        ('{"confidence": 2, "local_passed": true}', "confidence must be a number in"),
        ('{"confidence": "high", "local_passed": true}', "confidence must be a number in"),
        ('{"confidence": 0.5, "local_passed": "yes"}', "local_passed must be true or false"),
        ('{"confidence": 0.5, "local_passed": true, "cloud_passed": 1}', "cloud_passed must"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_bad_line_names_its_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text('{"confidence": 0.1, "local_passed": true}\n\n' + line + "\n")
    with pytest.raises(OutcomesError, match=rf"outcomes\.jsonl:3: {message}"):
        load_outcomes(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OutcomesError, match="cannot read outcomes file"):
        load_outcomes(tmp_path / "absent.jsonl")
