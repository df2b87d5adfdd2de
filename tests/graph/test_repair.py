"""Local repair before escalation: the judge gives a failing local answer back to the local
model with what failed, up to the policy's ``repair_rounds``, through the compiled graph. Both
tiers are scripted here (fast); `test_repair_with_the_real_model` runs the real 0.5B coder."""

from __future__ import annotations

import pytest

from agents.base import Message
from agents.errors import BackendUnavailable
from policies.config import PoliciesConfig, PolicyConfig
from router.checks.sandbox import Sandbox
from router.graph import decide, repair
from router.graph.context import RouterContext
from router.graph.graph import build_graph, run_task
from tests.helpers import Scripted

PROMPT = '''Complete this function.

def square(x):
    """Return x squared.

    Examples:
    square(3) == 9
    square(-2) == 4
    """
'''
WRONG = "```python\ndef square(x):\n    return x * 2\n```"
WRONG_AGAIN = "```python\ndef square(x):\n    return x + x\n```"
RIGHT = "```python\ndef square(x):\n    return x * x\n```"
BROKEN = "```python\ndef square(x)\n    return x * x\n```"
CLOUD = "```python\ndef square(x):\n    return x ** 2\n```"
POLICIES = PoliciesConfig(teams={"vault": {"local_only": True}, "once": {"repair_rounds": 1},
                                 "never": {"repair_rounds": 0}})


def context(local: Scripted, cloud: Scripted, sandbox: Sandbox) -> RouterContext:
    return RouterContext(local=local, cloud=cloud, policies=POLICIES, local_window=4096,
                         price_as="claude-sonnet-4-5", count_tokens=lambda t: len(t) // 4 + 1,
                         sandbox=sandbox)


def route(local: Scripted, cloud: Scripted, sandbox: Sandbox, **task: object):
    return run_task(build_graph(), {"prompt": PROMPT, "max_tokens": 200, **task},  # type: ignore[typeddict-item]
                    context(local, cloud, sandbox))


def test_a_repaired_answer_is_served_locally(sandbox: Sandbox) -> None:
    local, cloud = Scripted(WRONG, RIGHT), Scripted(CLOUD)
    answer = route(local, cloud, sandbox)
    record = answer.record
    assert answer.text == RIGHT and record["final"] == "local"
    assert record["reason"] == "confident" and "repaired" in record["flags"]
    assert cloud.requests == []
    [attempt] = record["local_attempts"]
    assert attempt["round"] == 1 and attempt["trigger"] == "failed_examples"
    assert attempt["examples_passed"] is True
    assert record["tokens"]["repair_completion"] == attempt["completion_tokens"] > 0
    assert record["tokens"]["repair_prompt"] == attempt["prompt_tokens"] > 0
    assert "repair" in record["timings_ms"]
    # What the local model was told: the task again, the failing example, expected and
    # actual (not its own code: shown that, the 0.5B model repeats it).
    [turn] = local.requests[1].messages
    assert turn.role == "user" and turn.content.startswith(PROMPT)
    assert "square(3) should return 9; it returned 6" in turn.content
    assert "return x * 2" not in turn.content


def test_the_other_repair_styles_show_the_failing_code() -> None:
    checks = {"syntax_errors": 0, "execution": {"passed": False, "runs": [
        {"kind": "examples", "passed": False, "detail": "0/1 tests passed; test_example_1: "
         "AssertionError: square(3) should return 9; it returned 6"}]}}
    task = [Message("user", PROMPT)]
    turn = repair.messages(task, WRONG, checks, style="turn")
    assert [m.role for m in turn] == ["user", "assistant", "user"] and turn[1].content == WRONG
    [rewrite] = repair.messages(task, WRONG, checks, style="rewrite")
    assert "return x * 2" in rewrite.content and "it returned 6" in rewrite.content


def test_an_answer_still_failing_after_every_round_escalates(sandbox: Sandbox) -> None:
    local, cloud = Scripted(WRONG, WRONG_AGAIN, WRONG), Scripted(CLOUD)
    answer = route(local, cloud, sandbox)
    record = answer.record
    assert answer.text == CLOUD and record["final"] == "cloud"
    assert record["reason"] == "failed_checks" and record["escalated"]
    assert [a["round"] for a in record["local_attempts"]] == [1, 2]  # the default: 2 rounds
    assert [a["examples_passed"] for a in record["local_attempts"]] == [False, False]
    assert len(local.requests) == 3 and len(cloud.requests) == 1
    assert "repaired" not in record["flags"]


def test_a_forced_local_route_is_repaired_and_stays_local(sandbox: Sandbox) -> None:
    """``route: local``, which a local-only key's every task gets: repaired like the rest."""
    local, cloud = Scripted(WRONG, RIGHT), Scripted(CLOUD)
    answer = route(local, cloud, sandbox, route="local")
    record = answer.record
    assert answer.text == RIGHT and (record["final"], record["reason"]) == ("local", "forced")
    assert "repaired" in record["flags"] and cloud.requests == []
    assert [a["examples_passed"] for a in record["local_attempts"]] == [True]


def test_a_forced_local_answer_failing_every_round_is_served_local(sandbox: Sandbox) -> None:
    local, cloud = Scripted(WRONG, WRONG_AGAIN, WRONG), Scripted(CLOUD)
    record = route(local, cloud, sandbox, route="local").record
    assert (record["final"], record["reason"]) == ("local", "forced") and cloud.requests == []
    assert len(local.requests) == 3 and "repaired" not in record["flags"]


def test_a_round_that_repeats_the_answer_ends_the_repair(sandbox: Sandbox) -> None:
    # Greedy decoding given the same turn again would repeat itself: escalate at once.
    local, cloud = Scripted(WRONG, WRONG, RIGHT), Scripted(CLOUD)
    record = route(local, cloud, sandbox).record
    assert record["final"] == "cloud" and len(local.requests) == 2
    [attempt] = record["local_attempts"]
    assert attempt["unchanged"] is True


def test_repair_rounds_is_a_policy_setting(sandbox: Sandbox) -> None:
    local = Scripted(WRONG, WRONG_AGAIN, RIGHT)
    record = route(local, Scripted(CLOUD), sandbox, team="once").record
    assert record["final"] == "cloud" and len(record["local_attempts"]) == 1
    local = Scripted(WRONG, RIGHT)
    record = route(local, Scripted(CLOUD), sandbox, team="never").record
    assert record["final"] == "cloud" and record["local_attempts"] == []
    assert len(local.requests) == 1


def test_code_that_does_not_parse_is_repaired_with_the_parser_message(sandbox: Sandbox) -> None:
    local = Scripted(BROKEN, RIGHT)
    answer = route(local, Scripted(CLOUD), sandbox)
    assert answer.text == RIGHT and answer.record["local_attempts"][0]["trigger"] == "syntax_error"
    assert "does not parse: expected ':'" in local.requests[1].messages[-1].content


def test_a_local_only_team_is_repaired_and_never_reaches_the_cloud(sandbox: Sandbox) -> None:
    local, cloud = Scripted(WRONG, WRONG_AGAIN), Scripted(CLOUD)
    answer = route(local, cloud, sandbox, team="vault")
    assert answer.record["final"] == "local" and cloud.requests == []
    assert len(answer.record["local_attempts"]) == 2
    assert "low_confidence" in answer.record["flags"]


DIED = BackendUnavailable("local server http://127.0.0.1:9/v1 did not answer "
                          "(RemoteProtocolError)")


def test_a_local_server_dying_mid_repair_escalates_the_answer_it_had(sandbox: Sandbox) -> None:
    """The failing answer cannot be repaired (its server died mid-round): the judge's
    verdict on it stands, and the task is answered, not failed (seen in the topology run)."""
    local, cloud = Scripted(WRONG, DIED, RIGHT), Scripted(CLOUD)
    answer = route(local, cloud, sandbox)
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (CLOUD, "cloud", "failed_checks")
    [attempt] = record["local_attempts"]  # no second round on a dead server
    assert "did not answer" in attempt["local_unavailable"] and attempt["completion_tokens"] == 0
    assert len(local.requests) == 2 and "repaired" not in record["flags"]


def test_a_local_only_team_whose_server_dies_mid_repair_gets_the_answer_it_had(
        sandbox: Sandbox) -> None:
    local, cloud = Scripted(WRONG, DIED), Scripted(CLOUD)
    answer = route(local, cloud, sandbox, team="vault")
    assert (answer.text, answer.record["final"]) == (WRONG, "local") and cloud.requests == []
    assert "low_confidence" in answer.record["flags"]
    assert "repaired" not in answer.record["flags"]


@pytest.mark.parametrize(("trigger", "attempts", "decided", "fits", "expected"), [
    ("failed_examples", 0, False, True, True),
    ("syntax_error", 1, False, True, True),
    (None, 0, False, True, False),
    ("failed_examples", 2, False, True, False),  # rounds spent
    ("failed_examples", 0, True, True, False),  # a hard rule decided
    ("failed_examples", 0, False, False, False),  # the turn would not fit the window
])
def test_should_repair(trigger: str | None, attempts: int, decided: bool, fits: bool,
                       expected: bool) -> None:
    assert decide.should_repair(policy=PolicyConfig(repair_rounds=2), trigger=trigger,
                                attempts=attempts, decided=decided, fits=fits) is expected
    assert decide.should_repair(policy=PolicyConfig(repair_rounds=2), trigger=trigger,
                                attempts=attempts, decided=decided, fits=fits,
                                stalled=True) is False


def test_the_judge_score_blends_checks_into_confidence() -> None:
    assert decide.judge_score(None, syntax_errors=0, examples_passed=True) is None
    assert decide.judge_score(0.6, syntax_errors=1, examples_passed=None) == 0.3
    assert decide.judge_score(0.6, syntax_errors=0, examples_passed=True) == 0.9
    assert decide.judge_score(0.95, syntax_errors=0, examples_passed=False) == 0.95


def test_feedback_names_the_failure() -> None:
    checks = {"syntax_errors": 0, "execution": {"passed": False, "runs": [
        {"kind": "examples", "passed": False,
         "detail": "1/2 tests passed; test_example_2: AssertionError: f(2) should return 4; "
                   "it returned 5"}]}}
    assert repair.trigger(checks) == "failed_examples"
    text = repair.feedback(checks, WRONG)
    assert "examples: 1/2 tests passed; f(2) should return 4; it returned 5" in text
    assert repair.failure(checks, WRONG) in text
    assert repair.trigger({"syntax_errors": 0}) is None
    assert repair.syntax_error("def f(:\n  pass") is not None
    assert repair.syntax_error("x = 1") is None


def test_a_missing_name_that_a_snippet_showed_is_given_its_import_line() -> None:
    problems = ["undefined name 'parse_dict_header' (line 4): import or define it",
                "undefined name 'Generator' (line 1): import or define it"]
    checks = {"syntax_errors": 0, "names": problems, "execution": {"passed": False, "runs": [
        {"kind": "names", "passed": False, "detail": "; ".join(problems)}]}}
    used = [{"module": "requests.utils", "symbol": "parse_dict_header"},
            {"module": "requests.auth", "symbol": "HTTPBasicAuth.__call__"},
            {"module": None, "symbol": "helper"}]
    imports = repair.snippet_imports(used)
    assert imports == {"parse_dict_header": "from requests.utils import parse_dict_header",
                       "HTTPBasicAuth": "from requests.auth import HTTPBasicAuth"}
    told = repair.failure(checks, "", imports)
    assert told.endswith("Import them with the lines shown: "
                         "`from requests.utils import parse_dict_header`.")
    [hint] = repair.messages([Message("user", PROMPT)], "", checks, imports=imports)
    assert "`from requests.utils import parse_dict_header`" in hint.content
    # names no snippet showed: the plain advice
    assert repair.failure(checks, "").endswith("Add the missing imports.")
