"""An agent's turn as a routed task: its conversation travels structured (assistant tool
calls, tool results), with the tools the client offers.

Every wire format (OpenAI chat with tools, the Anthropic Messages API, the OpenAI Responses
API) translates its request into the same task fields, plain JSON so that a queued task can
carry them too:

- ``conversation``: OpenAI chat messages, ``{"role": "user"|"assistant"|"tool"|"system",
  "content": str|None, "tool_calls": [{"id", "type": "function", "function": {"name",
  "arguments"}}], "tool_call_id": str, "cache": bool}`` (``cache``: a prompt-cache
  breakpoint the client set at the end of the turn);
- ``tools``: OpenAI function tools; ``tool_choice``; ``parallel_tool_calls``;
- ``prompt``: the instruction the turn works on (the last user text), for the signals.

This module checks them (naming the field) and turns them into the models' messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agents.base import Message, ToolCall
from router.graph.errors import InvalidTask
from router.graph.known import Known, json_digest
from router.graph.tool_calls import schema_problem, tool_name

ROLES = ("system", "user", "assistant", "tool")


def is_agent_turn(task: Mapping[str, Any]) -> bool:
    return "conversation" in task


def validate(task: Mapping[str, Any], *, tools_key: bytes | None = None) -> None:
    """Refuse a conversation or tools that no model could take, naming the field.
    ``tools_key``: the tools' :func:`key`, where the caller has it already."""
    tools = task.get("tools") or []
    if not isinstance(tools, list):
        raise InvalidTask("tools", "must be a list of function tools")
    names = _checked_names(tools, tools_key if tools_key is not None else key(tools))
    choice = task.get("tool_choice")
    if choice is not None and choice not in ("auto", "none", "required"):
        wanted = choice.get("function", {}).get("name") if isinstance(choice, Mapping) else None
        if wanted not in names:
            raise InvalidTask("tool_choice", "must be auto, none, required or "
                              '{"type": "function", "function": {"name": ...}} naming one of '
                              "the tools")
    conversation = task.get("conversation")
    if not isinstance(conversation, list) or not conversation:
        raise InvalidTask("conversation", "must hold the conversation's turns")
    called: set[str] = set()
    for i, turn in enumerate(conversation):
        field = f"conversation[{i}]"
        if not isinstance(turn, Mapping) or turn.get("role") not in ROLES:
            raise InvalidTask(f"{field}.role", f"must be one of {', '.join(ROLES)}")
        content = turn.get("content")
        if content is not None and not isinstance(content, str):
            raise InvalidTask(f"{field}.content", "must be the turn's text")
        if not isinstance(turn.get("cache", False), bool):
            raise InvalidTask(f"{field}.cache", "must be true or false (a prompt-cache "
                              "breakpoint at the end of this turn)")
        for j, call in enumerate(turn.get("tool_calls") or []):
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(call.get("id"), str):
                raise InvalidTask(f"{field}.tool_calls[{j}]",
                                  "must be {id, type: function, function: {name, arguments}}")
            if not isinstance(function.get("arguments", ""), str):
                raise InvalidTask(f"{field}.tool_calls[{j}].function.arguments",
                                  "must be the arguments as JSON text")
            called.add(call["id"])
        if turn["role"] == "tool" and turn.get("tool_call_id") not in called:
            raise InvalidTask(f"{field}.tool_call_id",
                              "matches no tool call of an earlier assistant turn")


def unanswered(conversation: Sequence[Mapping[str, Any]]) -> str | None:
    """The id of the first tool result that answers no earlier assistant call, or None."""
    called: set[str] = set()
    for turn in conversation:
        if turn.get("role") == "tool" and turn.get("tool_call_id") not in called:
            return str(turn.get("tool_call_id"))
        called.update(call.get("id") for call in turn.get("tool_calls") or [])
    return None


def messages(conversation: Sequence[Mapping[str, Any]]) -> list[Message]:
    """The conversation as the models' messages, tool turns kept structured."""
    out = []
    for turn in conversation:
        calls = tuple(ToolCall(id=c["id"], name=c["function"]["name"],
                               arguments=c["function"].get("arguments") or "{}")
                      for c in turn.get("tool_calls") or [])
        out.append(Message(turn["role"], turn.get("content") or "", tool_calls=calls,
                           tool_call_id=turn.get("tool_call_id"),
                           cache=bool(turn.get("cache"))))
    return out


def _paths(value: Any, key: str = "") -> list[str]:
    if isinstance(value, str):
        lowered = key.lower()
        return [value] if value and ("path" in lowered or "file" in lowered) else []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _paths(v, str(k))]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v, key)]
    return []


def tool_paths(conversation: Sequence[Mapping[str, Any]]) -> list[str]:
    """The files the conversation's tool calls named (``file_path``, ``path``, ...): what
    their results hold came from them, so a privacy rule on a path covers the results."""
    found: list[str] = []
    for turn in conversation:
        for call in turn.get("tool_calls") or []:
            try:
                arguments = json.loads(call["function"].get("arguments") or "{}")
            except json.JSONDecodeError:
                continue
            found.extend(p for p in _paths(arguments) if p not in found)
    return found


def tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The tools as the model reads them (their JSON), to count against a window."""
    return json.dumps(list(tools)) if tools else ""


def tools_tokens(count: Callable[[str], int], tools: Sequence[Mapping[str, Any]], *,
                 tools_key: bytes | None = None) -> int:
    """The tools' tokens by ``count`` (of :func:`tools_text`): counted once per distinct set
    (:data:`TOOL_SETS`; an agent sends the same tools every turn, thousands of tokens of
    them). ``tools_key``: their :func:`key`, where the caller has it already."""
    found = tools_key if tools_key is not None else key(tools)
    if found is None:
        return int(count(tools_text(tools)))
    return int(TOOL_SETS.get((count, found), lambda: count(tools_text(tools))))


# What is known of a set of tools (its check, its names, its tokens per counter) is kept by a
# digest of its content (router/graph/known.py): a later turn of an agent, which resends the
# same tools, pays for one encoding of them in C instead of a walk and three encodings in
# Python (1.2 ms on a 24,000-token Claude Code turn).
TOOL_SETS = Known()


def key(tools: Any) -> bytes | None:
    """The tools' content key (:func:`router.graph.known.json_digest`); None where they are
    not plain JSON text (then nothing is kept of them)."""
    return json_digest(tools)


def _checked_names(tools: list[Any], tools_key: bytes | None) -> frozenset[str]:
    """The tools' names, once they are checked (:func:`_check_tools`), once per set."""
    if tools_key is None:
        return _check_tools(tools)
    names: frozenset[str] = TOOL_SETS.get(("checked", tools_key), lambda: _check_tools(tools))
    return names


def _check_tools(tools: list[Any]) -> frozenset[str]:
    """The tools' names, once each tool is a function tool with a name of its own and
    parameters that are a JSON Schema: else InvalidTask, naming the field."""
    names: set[str] = set()
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(tool, Mapping) or tool.get("type") != "function" or not isinstance(
                function, Mapping):
            raise InvalidTask(f"tools[{i}]", 'must be {"type": "function", "function": {...}}')
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidTask(f"tools[{i}].function.name", "is missing; name the tool")
        if name in names:
            raise InvalidTask(f"tools[{i}].function.name", f"{name!r} is declared twice")
        names.add(name)
        if "parameters" in function and (problem := schema_problem(function["parameters"])):
            raise InvalidTask(f"tools[{i}].function.parameters", problem)
    return frozenset(names)


def names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [tool_name(tool) for tool in tools]
