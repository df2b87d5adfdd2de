"""The intake's text check (router/graph/validation.py ``unencodable_field``): the first string
that is not Unicode text is named by its path, deep in an agent turn's tools or conversation,
whatever the task holds."""

from __future__ import annotations

from typing import Any

import pytest

from router.graph.validation import unencodable_field

TOOL = {"type": "function", "function": {"name": "read_file", "parameters": {
    "type": "object", "properties": {"path": {"type": "string", "description": "a path"}}}}}


@pytest.mark.parametrize(("task", "field"), [
    ({"prompt": "fix it", "tools": [TOOL], "conversation": [{"role": "user", "content": "é 日本"}]},
     None),
    ({"prompt": "fix \ud800 it"}, "prompt"),
    ({"prompt": "x", "tools": [TOOL, {"type": "function", "function": {"name": "w", "parameters": {
        "properties": {"p": {"description": "bad \udfff"}}}}}]},
     "tools[1].function.parameters.properties.p.description"),
    ({"prompt": "x", "conversation": [{"role": "user", "content": "ok"},
                                      {"role": "tool", "content": "lone \ud83d"}]},
     "conversation[1].content"),
    ({"prompt": "x", "meta": {"bad \ud800 key": 1}}, "meta"),  # a path never echoes bad text
])
def test_the_first_string_that_is_not_text_is_named(task: dict[str, Any],
                                                    field: str | None) -> None:
    assert unencodable_field(task, "") == field


def test_a_task_that_is_not_plain_json_is_still_checked() -> None:
    assert unencodable_field({"prompt": "x", "when": object(), "files": ("a", "b")}, "") is None
    assert unencodable_field({"prompt": "x", "when": object(), "files": ("a", "\ud800")},
                             "") == "files[1]"
