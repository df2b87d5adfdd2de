"""What an agent resends every turn (its system prompt, the conversation so far) is scanned
for secrets once: a later turn of the session redacts only what it adds, and the cloud still
gets every text redacted."""

from __future__ import annotations

from typing import Any

import pytest

import policies.redaction
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from policies.redaction import Redaction, redact
from router.graph.context import RouterContext
from router.graph.graph import build_graph, run_task

AWS_ID = "AKIA" + "QWERTYUIOPASDFGH"  # built from parts so that no scanner sees a leak


def test_a_later_turn_scans_only_the_texts_it_adds(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned: list[str] = []

    def counting(text: str) -> Redaction:
        scanned.append(text)
        return redact(text)

    monkeypatch.setattr(policies.redaction, "redact", counting)
    local, cloud = Scripted("unused"), Scripted("Done.", tools=True)
    context = RouterContext(local=local, cloud=cloud, policies=PoliciesConfig(),
                            local_window=4096, price_as="claude-sonnet-4-5",
                            count_tokens=lambda t: len(t) // 4 + 1)
    system = f"You are a coding agent ({id(scanned)}). Deploy with AWS_KEY = '{AWS_ID}'."
    tool = {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}}}}
    ask = f"Fix the bug in calc.py ({id(scanned)})."
    first: list[dict[str, Any]] = [{"role": "user", "content": ask}]
    added: list[dict[str, Any]] = [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "calc.py"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "def add(a, b): ..."}]
    graph = build_graph()
    for conversation in (first, [*first, *added]):
        run_task(graph, {"prompt": ask, "system": system, "tools": [tool], "max_tokens": 64,
                         "conversation": conversation}, context)
    assert scanned.count(system) == 1 and scanned.count(ask) == 1
    for request in cloud.requests:
        assert AWS_ID not in request.messages[0].content
        assert "[REDACTED:aws_access_key]" in request.messages[0].content
