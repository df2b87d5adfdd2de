"""What the intake keeps of a turn by its content (router/graph/known.py): an agent's tools
(checked, named, counted) and an instruction's task type and files. A turn that resends the
same content is served from what was kept; a change of content, however small, is seen."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.graph import agent_turn
from router.graph.context import RouterContext
from router.graph.errors import InvalidTask
from router.graph.graph import RoutedAnswer, build_graph, run_task
from router.graph.known import Known

READ = {"type": "function", "function": {
    "name": "read_file", "description": "Read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                   "required": ["path"], "minProperties": 1}}}
ASK = "Fix the bug in calc.py: add must return a + b."


def count(text: str) -> int:
    return len(text) // 4 + 1


def route(**task: Any) -> RoutedAnswer:
    cloud = Scripted("Done.")
    cloud.supports_tools = True
    context = RouterContext(local=Scripted("Done."), cloud=cloud, policies=PoliciesConfig(),
                            local_window=4096, price_as="claude-sonnet-4-5",
                            count_tokens=count)
    turn = {"prompt": ASK, "max_tokens": 128, "tools": [READ],
            "conversation": [{"role": "user", "content": ASK}], **task}
    return run_task(build_graph(), turn, context)


def changed(tool: dict[str, Any], **parameters: Any) -> dict[str, Any]:
    out = copy.deepcopy(tool)
    out["function"]["parameters"].update(parameters)
    return out


def test_a_tool_set_seen_valid_then_sent_with_a_bad_schema_is_refused() -> None:
    route()  # the valid set is checked and kept
    before = agent_turn.TOOL_SETS.computed
    route()
    assert agent_turn.TOOL_SETS.computed == before, "the same tools were checked again"
    # ``true`` where ``1`` was: equal in Python, not the same JSON, and not a JSON Schema
    with pytest.raises(InvalidTask) as refused:
        route(tools=[changed(READ, minProperties=True)])
    assert refused.value.field == "tools[0].function.parameters"


def test_a_tool_set_is_counted_again_when_its_content_changes() -> None:
    short = route().record["tokens"]["prompt"]
    assert route().record["tokens"]["prompt"] == short
    longer = copy.deepcopy(READ)
    longer["function"]["description"] = "Read a file " + "from the repository " * 50
    assert route(tools=[longer]).record["tokens"]["prompt"] > short + 200


def test_a_tool_choice_names_the_tools_of_its_own_turn() -> None:
    write = {"type": "function", "function": {"name": "write_file",
                                              "parameters": {"type": "object"}}}
    choice = {"type": "function", "function": {"name": "write_file"}}
    assert route(tools=[READ, write], tool_choice=choice).record["final"] in ("local", "cloud")
    with pytest.raises(InvalidTask) as refused:  # the names kept are those of this set
        route(tools=[READ], tool_choice=choice)
    assert refused.value.field == "tool_choice"


def test_a_repeated_instruction_keeps_its_type_and_files_and_a_new_one_gets_its_own() -> None:
    first = route(prompt="Fix the bug in calc.py").record
    again = route(prompt="Fix the bug in calc.py").record
    other = route(prompt="Write unit tests for shapes.py").record
    assert (first["task_type"], again["task_type"], other["task_type"]) == ("debug", "debug",
                                                                             "test")
    assert [f["path"] for f in again["files"]] == ["calc.py"]
    assert [f["path"] for f in other["files"]] == ["shapes.py"]


def test_what_is_kept_is_bounded_and_the_latest_used_stay() -> None:
    computed: list[str] = []

    def compute(key: str) -> Any:
        computed.append(key)
        return key.upper()

    known = Known(max_entries=2)
    for key in ["a", "b", "a", "c", "a", "b"]:
        assert known.get(key, lambda key=key: compute(key)) == key.upper()  # type: ignore[misc]
    assert computed == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came


def test_a_failed_check_keeps_nothing() -> None:
    known = Known()

    def refuse() -> None:
        raise InvalidTask("tools", "bad")

    for _ in range(2):
        with pytest.raises(InvalidTask):
            known.get("bad", refuse)
    assert known.computed == 0
