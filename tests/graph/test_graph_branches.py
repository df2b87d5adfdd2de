"""Every branch of the routing graph, through the compiled graph, with both tiers scripted
(fast: no model runs; the checks run in the real sandbox). The slow tests in test_routing.py
take the same branches with the real models."""

from __future__ import annotations

from typing import Any

import pytest

from agents.base import Message
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.checks.sandbox import Sandbox
from router.graph.context import RouterContext
from router.graph.errors import BudgetExceeded, InvalidTask
from router.graph.graph import RoutedAnswer, build_graph, run_task

GOOD = "```python\ndef add(a, b):\n    return a + b\n```"
CLOUD = "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```"
TASK = "Write a Python function add(a, b) that returns a + b."
POLICIES = PoliciesConfig(teams={
    "vault": {"local_only": True},
    "shadow": {"shadow_route": "local"},
    "pinned": {"task_type_routes": {"review": "cloud"}},
    "norepair": {"repair_rounds": 0},
    "refuse": {"over_budget": "refuse"},
    "clientprompt": {"local_edit_prompt": "client"},
})


class Broke:
    """A budget gate with nothing left (the service's gate says the same over budget)."""

    retry_after_s = 60
    settled_usd = 0.0

    def reserve(self, usd: float) -> object | None:
        return None

    def settle(self, token: object, usd: float) -> None:  # pragma: no cover - never reserved
        raise AssertionError("nothing was reserved")

    def release(self, token: object) -> None:  # pragma: no cover - never reserved
        raise AssertionError("nothing was reserved")


def route(local: Scripted, cloud: Scripted, sandbox: Sandbox | None = None, *,
          window: int = 4096, gate: Any = None, **task: Any) -> RoutedAnswer:
    context = RouterContext(local=local, cloud=cloud, policies=POLICIES, local_window=window,
                            price_as="claude-sonnet-4-5",
                            count_tokens=lambda t: len(t) // 4 + 1, sandbox=sandbox,
                            cloud_gate=gate)
    return run_task(build_graph(), {"prompt": TASK, "max_tokens": 128, **task}, context)


def test_a_confident_answer_stays_local() -> None:
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    answer = route(local, cloud)
    assert (answer.text, answer.record["final"], answer.record["reason"]) == (GOOD, "local", "confident")
    assert answer.record["confidence"] >= answer.record["threshold"]
    assert cloud.requests == []


def test_an_unsure_answer_escalates_with_low_confidence() -> None:
    local, cloud = Scripted(GOOD, logprob=-2.5), Scripted(CLOUD)
    answer = route(local, cloud)
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (CLOUD, "cloud", "low_confidence")
    assert record["escalated"] and record["confidence"] < record["threshold"]
    assert len(local.requests) == 1 and len(cloud.requests) == 1


def test_a_floundering_answer_is_aborted_early() -> None:
    local, cloud = Scripted("x" * 400, logprob=-4.0), Scripted(CLOUD)
    record = route(local, cloud).record
    assert (record["final"], record["reason"]) == ("cloud", "early_abort")
    assert record["tokens"]["saved_by_early_abort"] > 0


def test_a_failing_example_escalates_when_repair_is_off(sandbox: Sandbox) -> None:
    prompt = "def add(a, b):\n    \"\"\"Add.\n    >>> add(2, 3)\n    5\n    \"\"\"\n"
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    local, cloud = Scripted(wrong), Scripted(CLOUD)
    record = route(local, cloud, sandbox, prompt=prompt, team="norepair").record
    assert (record["final"], record["reason"]) == ("cloud", "failed_checks")
    assert record["local_attempts"] == []


def test_multi_file_goes_to_the_cloud_without_a_local_attempt() -> None:
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    files = [{"path": f"m{i}.py", "content": "x = 1\n"} for i in range(2)]
    record = route(local, cloud, files=files).record
    assert (record["final"], record["reason"], record["escalated"]) == ("cloud", "multi_file", False)
    assert local.requests == []


def test_a_task_over_the_local_window_goes_to_the_cloud() -> None:
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    record = route(local, cloud, window=256, prompt="word " * 400).record
    assert (record["final"], record["reason"]) == ("cloud", "context")
    assert local.requests == []


def test_a_local_only_team_keeps_a_weak_answer_local_and_flags_it() -> None:
    local, cloud = Scripted(GOOD, logprob=-2.5), Scripted(CLOUD)
    record = route(local, cloud, team="vault").record
    assert (record["final"], record["reason"]) == ("local", "privacy")
    assert "low_confidence" in record["flags"] and cloud.requests == []


@pytest.mark.parametrize("forced", ["local", "cloud"])
def test_a_forced_route_is_taken(forced: str) -> None:
    local, cloud = Scripted(GOOD, logprob=-2.5), Scripted(CLOUD)
    record = route(local, cloud, route=forced).record
    assert (record["final"], record["reason"]) == (forced, "forced")
    assert bool(cloud.requests) == (forced == "cloud") and bool(local.requests) == (forced == "local")


def test_a_task_type_pinned_to_the_cloud_goes_there() -> None:
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    record = route(local, cloud, team="pinned", type="review").record
    assert (record["final"], record["reason"]) == ("cloud", "task_type") and local.requests == []


def test_shadow_mode_serves_local_and_records_what_auto_would_have_done() -> None:
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    files = [{"path": f"m{i}.py", "content": "x = 1\n"} for i in range(2)]
    record = route(local, cloud, team="shadow", files=files).record
    assert (record["final"], record["reason"]) == ("local", "forced")
    assert record["shadow"] == {"served": "local", "auto_route": "cloud", "auto_reason": "multi_file"}
    assert "served_local_by_shadow" in record["flags"] and cloud.requests == []


def test_over_budget_serves_the_local_answer_or_refuses() -> None:
    local, cloud = Scripted(GOOD, logprob=-2.5), Scripted(CLOUD)
    record = route(local, cloud, gate=Broke()).record
    assert (record["final"], record["reason"]) == ("local", "budget") and cloud.requests == []
    with pytest.raises(BudgetExceeded):
        route(Scripted(GOOD, logprob=-2.5), Scripted(CLOUD), gate=Broke(), team="refuse")


# --- a chat's earlier turns: messages, not the task ----------------------------------------

AIDER_SYSTEM = ("Act as an expert software developer. Always use best practices. Reply with "
                "edits in this form:\npath/to/filename.js\n```\n// entire file content\n```")
EXAMPLE_TURNS = [
    {"role": "user", "content": "Change get_factorial() to use math.factorial"},
    {"role": "assistant", "content": "mathweb/flask/app.py\n```python\n<<<<<<< SEARCH\n"
                                     "from flask import Flask\n=======\nimport math\n"
                                     "from flask import Flask\n>>>>>>> REPLACE\n```"},
]


WHOLE = "show_greeting.py\n```python\ndef add(a, b):\n    return a + b\n```"


def test_paths_in_the_system_prompt_and_example_turns_do_not_make_a_task_multi_file() -> None:
    local, cloud = Scripted(WHOLE), Scripted(CLOUD)
    record = route(local, cloud, system=AIDER_SYSTEM, history=EXAMPLE_TURNS, team="clientprompt",
                   prompt="Write a function add(a, b) in show_greeting.py").record
    assert record["final"] == "local" and record["reason"] == "confident"
    assert record["files"] == [{"path": "show_greeting.py", "source": "prompt"}]
    # The earlier turns reached the model as turns, in order, after the system prompt.
    assert record["signals"]["checks"]["edit_format"]["passed"] is True
    [request] = local.requests
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert request.messages[1] == Message("user", EXAMPLE_TURNS[0]["content"])


def test_an_answer_that_breaks_the_clients_edit_format_escalates() -> None:
    invented = "path/to/filename.js\n```\n// entire file content ...\n```"
    local, cloud = Scripted(invented), Scripted(CLOUD)
    record = route(local, cloud, system=AIDER_SYSTEM, history=EXAMPLE_TURNS,
                   prompt="Write a function add(a, b) in show_greeting.py").record
    assert (record["final"], record["reason"]) == ("cloud", "failed_checks")
    assert record["signals"]["checks"]["edit_format"]["problems"] == [
        "names path/to/filename.js, which the client did not send"]


# Aider (0.86, whole-file format) also appends its reminder, from its system prompt, to the task.
REMINDER = ("To suggest changes to a file you MUST return the entire content of the updated "
            "file.\nYou MUST use this *file listing* format:\n\npath/to/filename.js\n```\n"
            "// entire file content ...\n// ... goes in between\n```\n\nEvery *file listing* "
            "MUST use this format:\n- First line: the filename with any originally provided path")
SENT_SHAPES = [{"role": "user", "content": "I have *added these files to the chat* so you can go "
                "ahead and edit them.\n\nshapes.py\n```\ndef area(s):\n    return s * s\n```"},
               {"role": "assistant", "content": "Ok, any changes I propose will be to those files."}]


def test_the_reminder_a_client_repeats_in_the_task_is_not_the_task() -> None:
    whole_shapes = "shapes.py\n```python\ndef area(s):\n    return s ** 2\n```"
    local, cloud = Scripted(whole_shapes), Scripted(CLOUD)
    record = route(local, cloud, system="Act as an expert software developer.\n" + REMINDER,
                   history=SENT_SHAPES,
                   prompt="In shapes.py, make area use s ** 2.\n\n" + REMINDER).record
    assert (record["final"], record["reason"]) == ("local", "confident")
    assert [f["path"] for f in record["files"]] == ["shapes.py"]
    # and an answer that writes the reminder's example file is still refused
    invented = "path/to/filename.js\n```\n// entire file content ...\n```"
    record = route(Scripted(invented), Scripted(CLOUD),
                   system="Act as an expert software developer.\n" + REMINDER,
                   history=SENT_SHAPES,
                   prompt="In shapes.py, make area use s ** 2.\n\n" + REMINDER).record
    assert (record["final"], record["reason"]) == ("cloud", "failed_checks")
    assert "names path/to/filename.js, which the client did not send" in \
        record["signals"]["checks"]["edit_format"]["problems"]


def test_files_an_earlier_user_turn_sent_count_as_files_the_task_touches() -> None:
    sent = [{"role": "user", "content": "I added these files to the chat:\n\n"
                                        "app/one.py\n```\nx = 1\n```\n\napp/two.py\n```\ny = 2\n```"},
            {"role": "assistant", "content": "Ok."}]
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    record = route(local, cloud, history=sent, prompt="Rename x to count.").record
    assert (record["final"], record["reason"]) == ("cloud", "multi_file")
    assert {f["path"] for f in record["files"]} == {"app/one.py", "app/two.py"}
    assert {f["source"] for f in record["files"]} == {"history"}


@pytest.mark.parametrize(("history", "field"), [
    ([{"role": "system", "content": "x"}], "history[0].role"),
    ([{"role": "user", "content": 3}], "history[0].content"),
    ("not a list", "history"),
])
def test_a_bad_history_names_the_field(history: Any, field: str) -> None:
    local, cloud = Scripted(GOOD), Scripted(CLOUD)
    with pytest.raises(InvalidTask) as caught:
        route(local, cloud, history=history)
    assert caught.value.field == field and local.requests == []


SHAPES = "def area(s):\n    return s * s\n\n\ndef side(a):\n    return a ** 0.5\n"
SENT_SHAPES_FULL = [{"role": "user", "content": "I have *added these files to the chat* so you "
                     f"can go ahead and edit them.\n\nshapes.py\n```\n{SHAPES}```"},
                    {"role": "assistant", "content": "Ok, any changes I propose will be to those files."}]
AIDER_TASK = "In shapes.py, make area raise ValueError for a negative s.\n\n" + REMINDER
FIXED = ("shapes.py\n```\ndef area(s):\n    if s < 0:\n        raise ValueError(s)\n"
         "    return s * s\n\n\ndef side(a):\n    return a ** 0.5\n```")


def aider_edit(local: Scripted, cloud: Scripted, **task: Any) -> dict[str, Any]:
    return route(local, cloud, system="Act as an expert software developer.\n" + REMINDER,
                 history=SENT_SHAPES_FULL, prompt=AIDER_TASK, **task).record


def test_the_local_model_gets_the_routers_own_prompt_for_aiders_whole_file_format() -> None:
    local, cloud = Scripted(FIXED), Scripted(CLOUD)
    record = aider_edit(local, cloud)
    assert (record["final"], record["reason"]) == ("local", "confident")
    assert record["signals"]["local_prompt"] == "router_edit_format"
    # short: the format's rules, the one file with its content, the task; no example file,
    # no example conversation, no reminder
    [system, user] = local.requests[0].messages
    assert system.role == "system" and "file listing" in system.content
    assert f"shapes.py\n```\n{SHAPES.rstrip()}\n```" in user.content
    assert "make area raise ValueError" in user.content
    assert "path/to/filename.js" not in system.content + user.content
    assert "show_greeting" not in user.content


def test_a_broken_edit_format_is_repaired_locally_before_it_escalates() -> None:
    invented = "path/to/filename.js\n```\n// entire file content ...\n```"
    local, cloud = Scripted(invented, FIXED), Scripted(CLOUD)
    record = aider_edit(local, cloud)
    assert (record["final"], record["reason"]) == ("local", "confident")
    assert "repaired" in record["flags"] and cloud.requests == []
    [attempt] = record["local_attempts"]
    assert attempt["trigger"] == "edit_format"
    # the repair round: the one file it may write, its content, and what was wrong
    [_, user] = local.requests[1].messages
    assert "names path/to/filename.js, which the client did not send" in user.content
    assert "You may write one file only: shapes.py" in user.content
    assert f"shapes.py\n```\n{SHAPES.rstrip()}\n```" in user.content


def test_an_edit_format_still_broken_after_the_repair_rounds_escalates_with_the_clients_prompt() -> None:
    invented = "path/to/filename.js\n```\n// entire file content ...\n```"
    dropped = "shapes.py\n```\ndef area(s):\n    return 0\n```"
    local, cloud = Scripted(invented, dropped, invented), Scripted(CLOUD)
    record = aider_edit(local, cloud)
    assert (record["final"], record["reason"]) == ("cloud", "failed_checks")
    assert [a["trigger"] for a in record["local_attempts"]] == ["edit_format", "edit_format"]
    assert "the new shapes.py drops side" in local.requests[2].messages[1].content
    # the cloud got the client's own messages, its format instructions and all
    [request] = cloud.requests
    assert request.messages[0].content.startswith("Act as an expert software developer.")
    assert request.messages[-1].content.startswith(AIDER_TASK.split("\n")[0])


def test_the_client_prompt_setting_gives_the_local_model_the_clients_messages() -> None:
    local, cloud = Scripted(FIXED), Scripted(CLOUD)
    record = aider_edit(local, cloud, team="clientprompt")
    assert record["signals"]["local_prompt"] == "client"
    assert [m.role for m in local.requests[0].messages] == ["system", "user", "assistant", "user"]
