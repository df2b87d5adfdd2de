"""The judge of an agent turn's tool calls, and the check of the tools a client declares.

A local answer that calls a tool the client did not offer, or passes arguments that are not
a JSON object valid against the tool's own JSON schema, would make the client fail or do the
wrong thing: the judge sends it back to the local model once (:mod:`router.graph.repair`)
and then to the cloud (``failed_checks``). Pure functions of the calls and the tools.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jsonschema import exceptions as schema_errors
from jsonschema import validators


class Call(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def arguments(self) -> str: ...


def tool_name(tool: Mapping[str, Any]) -> str:
    """The name of an OpenAI function tool (``{"type": "function", "function": {...}}``)."""
    return str(tool.get("function", {}).get("name", ""))


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a JSON schema a tool's arguments can be checked against (None:
    it is one)."""
    if not isinstance(schema, dict):
        return "must be a JSON Schema object"
    return _schema_problem(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=1024)
def _schema_problem(text: str) -> str | None:
    """Checked once per distinct schema: an agent sends the same tools every turn, and the
    check against the metaschema costs milliseconds per tool."""
    schema = json.loads(text)
    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_errors.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"is not valid JSON Schema ({exc.message}{f' at {where}' if where else ''})"
    return None


def required_name(tool_choice: Any) -> str | None:
    """The one tool ``tool_choice`` names, if it names one."""
    if isinstance(tool_choice, Mapping):
        return str(tool_choice.get("function", {}).get("name") or "") or None
    return None


def check(calls: Sequence[Call], tools: Sequence[Mapping[str, Any]],
          tool_choice: Any = None) -> dict[str, Any]:
    """The verdict on an answer's tool calls: ``passed``, how many ``calls``, and the
    ``problems`` found, each one line the model can act on (:func:`repair_message`)."""
    by_name = {tool_name(tool): tool for tool in tools}
    problems: list[str] = []
    if not calls and (tool_choice == "required" or required_name(tool_choice)):
        problems.append("the request requires a tool call and the answer made none")
    wanted = required_name(tool_choice)
    for call in calls:
        tool = by_name.get(call.name)
        if tool is None:
            problems.append(f"called {call.name!r}, which is not one of the tools "
                            f"({', '.join(sorted(by_name)) or 'none'})")
            continue
        if wanted and call.name != wanted:
            problems.append(f"called {call.name!r}; the request asks for {wanted!r}")
        try:
            arguments = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            problems.append(f"{call.name}: the arguments are not JSON ({exc.msg})")
            continue
        if not isinstance(arguments, dict):
            problems.append(f"{call.name}: the arguments must be a JSON object")
            continue
        schema = tool.get("function", {}).get("parameters") or {"type": "object"}
        error = validators.validator_for(schema)(schema).iter_errors(arguments)
        first = next(iter(sorted(error, key=lambda e: list(e.path))), None)
        if first is not None:
            where = "/".join(str(p) for p in first.path)
            problems.append(f"{call.name}: {first.message}{f' (at {where})' if where else ''}")
    return {"passed": not problems, "calls": len(calls), "problems": problems}


_WRAPPED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)|```(?:json)?\s*(.*?)\s*```",
                      re.DOTALL)


def recovered(text: str, tools: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """The calls a model wrote as text instead of in its template's tool-call format (the
    small Qwen coders write bare JSON, or JSON in a fence, which llama-server then returns as
    text): each ``(id, name, arguments)`` of ``{"name": ..., "arguments": {...}}`` objects
    naming an offered tool. Empty where the text is anything else (then it is an answer)."""
    names = {tool_name(tool) for tool in tools}
    found = [a or b for a, b in _WRAPPED.findall(text)] or [text]
    calls: list[tuple[str, str, str]] = []
    for chunk in found:
        try:
            parsed = json.loads(chunk.strip())
        except json.JSONDecodeError:
            return []
        for item in parsed if isinstance(parsed, list) else [parsed]:
            if not isinstance(item, dict) or item.get("name") not in names:
                return []
            arguments = item.get("arguments", item.get("parameters", {}))
            calls.append((f"call_{uuid.uuid4().hex[:24]}", item["name"],
                          arguments if isinstance(arguments, str) else json.dumps(arguments)))
    return calls


def repair_message(verdict: Mapping[str, Any]) -> str:
    """What the local model is told when its tool calls failed :func:`check`."""
    return ("Your tool call was not valid: " + "; ".join(verdict["problems"])
            + ". Call one of the tools exactly as its schema says.")
