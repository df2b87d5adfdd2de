"""The learned judge and sampling agreement through the compiled graph, both tiers scripted
(fast: no model runs; the checks and the samples' calls run in the real sandbox), and
`smallcode calibrate --fit` writing a model file the router then loads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from agents.errors import BackendUnavailable
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.checks.sandbox import Sandbox
from router.graph import judge_model
from router.graph.context import RouterContext
from router.graph.graph import RoutedAnswer, build_graph, run_task
from router.settings import ConfigError, load_settings
from tests.helpers import smallcode

GOOD = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
SAME = "```python\ndef add(a: int, b: int) -> int:\n    return sum((a, b))\n```"
MINUS = "```python\ndef add(a: int, b: int) -> int:\n    return a - b\n```"
TIMES = "```python\ndef add(a: int, b: int) -> int:\n    return a * b\n```"
CLOUD = "```python\ndef add(a, b):\n    return a + b\n```"
STUB = ('def add(a: int, b: int) -> int:\n    """The sum of a and b; works for negative '
        'numbers too."""\n')


def fitted(tmp_path: Path) -> Path:
    """A learned judge fitted on answers whose worst stretch predicts whether they are right."""
    rows, labels = [], []
    for i in range(40):
        lp = -0.02 if i % 2 else -1.5 - i / 40
        logprob = judge_model.logprob_features([lp] * 30)
        rows.append(judge_model.features(logprob=logprob, syntax_errors=0, code_blocks=1,
                                         examples=None, repair_rounds=0, task_type="generate",
                                         prompt_tokens=40, files=0))
        labels.append(bool(i % 2))
    model = judge_model.fit(rows, labels, threshold=0.5)  # type: ignore[arg-type]
    path = tmp_path / "judge.json"
    judge_model.save(model, path)
    return path


def route(local: Scripted, cloud: Scripted, sandbox: Sandbox | None, team: dict[str, Any],
          **task: Any) -> RoutedAnswer:
    context = RouterContext(local=local, cloud=cloud, policies=PoliciesConfig(teams={"t": team}),
                            local_window=4096, price_as="claude-sonnet-4-5",
                            count_tokens=lambda t: len(t) // 4 + 1, sandbox=sandbox)
    return run_task(build_graph(), {"prompt": STUB, "max_tokens": 128, "team": "t", **task},
                    context)


def test_the_learned_judge_keeps_a_sure_answer_and_says_so(tmp_path: Path) -> None:
    model = str(fitted(tmp_path))
    record = route(Scripted(GOOD, logprob=-0.02), Scripted(CLOUD), None,
                   {"judge_model": model}).record
    assert (record["final"], record["reason"]) == ("local", "confident")
    assert record["judge"]["name"] == "learned" and record["judge"]["model"] == model
    assert record["confidence"] == record["judge"]["probability"] > 0.5
    assert record["threshold"] == 0.5
    assert set(record["signals"]["judge_features"]) == set(judge_model.FEATURES)


def test_the_learned_judge_escalates_below_its_threshold(tmp_path: Path) -> None:
    model = str(fitted(tmp_path))
    cloud = Scripted(CLOUD)
    answer = route(Scripted(GOOD, logprob=-1.8), cloud, None, {"judge_model": model})
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (CLOUD, "cloud", "low_confidence")
    assert record["judge"]["probability"] < record["judge"]["threshold"] == 0.5
    # A team's own threshold overrides the model file's.
    record = route(Scripted(GOOD, logprob=-1.8), Scripted(CLOUD), None,
                   {"judge_model": model, "judge_threshold": 0.0}).record
    assert (record["final"], record["threshold"]) == ("local", 0.0)


def test_without_a_model_the_fixed_judge_decides_and_says_so() -> None:
    record = route(Scripted(GOOD), Scripted(CLOUD), None, {}).record
    assert record["judge"]["name"] == "fixed" and record["threshold"] == 0.55
    assert record["agreement"] is None
    # what a learned judge would have seen is kept, so feedback on the task can fit one
    assert set(record["signals"]["judge_features"]) == set(judge_model.FEATURES)


def test_the_learned_judge_does_not_extrapolate_past_what_it_was_fitted_on(
        tmp_path: Path) -> None:
    """Fitted on 30-60 token prompts where longer ones were wrong more often, the model
    scores a 4,000-token prompt (a client's system prompt) as a 60-token one, not as lost."""
    rows, labels = [], []
    for i in range(60):
        right = i % 3 != 0
        logprob = judge_model.logprob_features([-0.05 if right else -1.2] * 30)
        rows.append(judge_model.features(logprob=logprob, syntax_errors=0, code_blocks=1,
                                         examples=None, repair_rounds=0, task_type="complete",
                                         prompt_tokens=30 + (i * 7 % 31) + (0 if right else 10),
                                         files=0))
        labels.append(right)
    model = judge_model.fit(rows, labels)  # type: ignore[arg-type]
    assert model.weights()["log_prompt_tokens"] < 0
    sure = {**rows[1], "log_prompt_tokens": math.log1p(70)}  # type: ignore[dict-item]
    huge = {**rows[1], "log_prompt_tokens": math.log1p(4000)}  # type: ignore[dict-item]
    assert model.probability(huge) == pytest.approx(model.probability(sure))
    path = tmp_path / "judge.json"
    judge_model.save(model, path)  # the range travels in the file
    assert judge_model.load(str(path)).probability(huge) == pytest.approx(
        model.probability(huge), abs=1e-4)


def test_the_shipped_model_loads_and_scores_between_0_and_1() -> None:
    model = judge_model.load(judge_model.BUILTIN)
    assert model.features == judge_model.FEATURES and 0 < model.threshold < 1
    sure = judge_model.features(logprob=judge_model.logprob_features([-0.01] * 50),
                                syntax_errors=0, code_blocks=1,
                                examples={"passed": True, "ran": 3, "failed": 0},
                                repair_rounds=0, task_type="complete", prompt_tokens=150,
                                files=0)
    unsure = {**sure, **judge_model.logprob_features([-2.0] * 50),  # type: ignore[dict-item]
              "examples_passed": 0.0, "examples_failed": 1.0, "examples_pass_rate": 0.0}
    assert model.probability(sure) > model.threshold > model.probability(unsure)  # type: ignore[arg-type]


def test_a_bad_model_path_fails_at_start_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"policies:\n  default:\n    judge_model: {tmp_path / 'missing.json'}\n")
    with pytest.raises(ConfigError, match=r"policies\.default\.judge_model"):
        load_settings(config)
    (tmp_path / "bad.json").write_text('{"format": 1, "features": ["nope"]}')
    config.write_text(f"policies:\n  teams:\n    a:\n      judge_model: {tmp_path / 'bad.json'}\n")
    with pytest.raises(ConfigError, match=r"policies\.teams\.a\.judge_model"):
        load_settings(config)


def test_answers_that_disagree_escalate(sandbox: Sandbox) -> None:
    local, cloud = Scripted(GOOD, MINUS, TIMES), Scripted(CLOUD)
    answer = route(local, cloud, sandbox, {"sample_k": 3})
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (CLOUD, "cloud", "disagreement")
    assert record["agreement"]["clusters"] == [1, 1, 1] and not record["agreement"]["majority"]
    assert [r.temperature for r in local.requests] == [0.0, 0.7, 0.7]
    assert record["tokens"]["sample_completion"] > 0 and "sample" in record["timings_ms"]


def test_a_majority_is_served_even_when_the_greedy_answer_is_not_in_it(
        sandbox: Sandbox) -> None:
    answer = route(Scripted(MINUS, GOOD, SAME), Scripted(CLOUD), sandbox, {"sample_k": 3})
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (GOOD, "local", "confident")
    assert record["agreement"]["clusters"] == [2, 1] and record["agreement"]["chosen"] == 1


def test_a_local_server_dying_between_samples_leaves_the_judge_the_first_answer(
        sandbox: Sandbox) -> None:
    died = BackendUnavailable("local server http://127.0.0.1:9/v1 did not answer")
    local = Scripted(GOOD, SAME, died, GOOD)
    answer = route(local, Scripted(CLOUD), sandbox, {"sample_k": 3})
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (GOOD, "local", "confident")
    assert record["agreement"]["majority"] is None and len(local.requests) == 3
    assert "did not answer" in record["agreement"]["local_unavailable"]
    assert record["tokens"]["sample_completion"] > 0  # the sample it did get is counted


def test_sampling_is_skipped_where_the_task_has_examples(sandbox: Sandbox) -> None:
    prompt = STUB.replace('too."""', 'too.\n    >>> add(2, 3)\n    5\n    """')
    local = Scripted(GOOD, MINUS, TIMES)
    record = route(local, Scripted(CLOUD), sandbox, {"sample_k": 3}, prompt=prompt).record
    assert (record["final"], record["agreement"]) == ("local", None) and len(local.requests) == 1


def features_file(tmp_path: Path) -> Path:
    """Records as `smallcode eval features` writes them (HumanEval ids, cloud answers)."""
    path = tmp_path / "features.jsonl"
    lines = []
    for i in range(40):
        lp = -0.02 if i % 3 else -1.2
        local = {"answer": "", "passed": bool(i % 3), "tokens": {"prompt": 100, "completion": 20},
                 "lp": [lp] * 20, "top": [[lp, math.log(max(1e-9, 1 - math.exp(lp)))]] * 20}
        lines.append(json.dumps({
            "task_id": f"HumanEval/{i}", "set": "humaneval", "split": "calibrate",
            "local": local, "cloud": {"passed": True},
            "checks": {"syntax_errors": 0, "code_blocks": 1, "examples": None}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_calibrate_fit_writes_a_model_the_router_loads(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("# keep me\npolicies:\n  default:\n    confidence_threshold: 0.55\n")
    out = tmp_path / "judge.json"
    result = smallcode("--config", str(config), "calibrate", str(features_file(tmp_path)),
                       "--fit", "--target-cloud-share", "0.35", "--model-out", str(out),
                       "--write", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["n"] == 40 and summary["expected_cloud_share"] <= 0.35
    assert summary["expected_quality"] == 1.0  # the unsure third goes to the cloud
    settings = load_settings(config)
    assert settings.policies.default.judge_model == str(out.resolve())
    model = judge_model.load(str(out))
    assert model.threshold == pytest.approx(summary["threshold"])
    assert model.weights()["lp_mean"] > 0  # surer answers are likelier right


def test_calibrate_fit_refuses_a_file_without_features(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    path.write_text('{"task_id": "x", "confidence": 0.5, "local_passed": true}\n')
    result = smallcode("calibrate", str(path), "--fit", "--target-cloud-share", "0.2")
    assert result.returncode == 2 and "eval features" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_learned_judge_weighs_failed_examples_instead_of_always_escalating(
        tmp_path: Path, sandbox: Sandbox) -> None:
    model = str(fitted(tmp_path))
    prompt = STUB.replace('too."""', 'too.\n    >>> add(2, 3)\n    5\n    """')
    team = {"judge_model": model, "repair_rounds": 0}
    record = route(Scripted(MINUS, logprob=-0.02), Scripted(CLOUD), sandbox,
                   {**team, "judge_threshold": 0.0}, prompt=prompt).record
    assert record["signals"]["checks"]["execution"]["passed"] is False
    assert (record["final"], record["reason"]) == ("local", "confident")
    assert record["signals"]["judge_features"]["examples_failed"] == 1.0
    record = route(Scripted(MINUS, logprob=-0.02), Scripted(CLOUD), sandbox,
                   {**team, "judge_threshold": 1.0}, prompt=prompt).record
    assert (record["final"], record["reason"]) == ("cloud", "failed_checks")
    assert "probability right" in record["detail"]
