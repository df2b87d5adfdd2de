"""An agent's turn through the routing graph: tools offered, the conversation structured, both
tiers scripted (fast: no model runs). The judge checks a local tool call against the tools'
schemas and gives the local model one repair round before the cloud; privacy rules cover
what the tools read; secrets in tool results are redacted before the cloud."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.base import Generation, Timings, TokenLogprob, ToolCall, Usage
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.graph.context import RouterContext
from router.graph.errors import InvalidTask, PolicyViolation
from router.graph.graph import RoutedAnswer, build_graph, run_task

READ = {"type": "function", "function": {
    "name": "read_file", "description": "Read a file",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                   "required": ["path"], "additionalProperties": False}}}
ASK = "Fix the bug in calc.py: add must return a + b."
POLICIES = PoliciesConfig(teams={"vault": {"local_only_paths": ["secrets/**"]}})


def call(name: str, arguments: dict[str, Any] | str, id_: str = "call_1") -> Generation:
    """A local answer that calls one tool, confidently."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return Generation(text="", model="local", finish_reason="tool_calls", usage=Usage(50, 12),
                      timings=Timings(total_ms=1.0),
                      logprobs=tuple(TokenLogprob(t, -0.01) for t in ("{", "name", "}")),
                      tool_calls=(ToolCall(id_, name, text),))


def tiers(*local: str | Generation, cloud: str | Generation = "Done.",
          tools: bool = True) -> tuple[Scripted, Scripted]:
    local_tier, cloud_tier = Scripted(*local), Scripted(cloud)
    local_tier.supports_tools = tools
    cloud_tier.supports_tools = True
    return local_tier, cloud_tier


def route(local: Scripted, cloud: Scripted, **task: Any) -> RoutedAnswer:
    context = RouterContext(local=local, cloud=cloud, policies=POLICIES, local_window=4096,
                            price_as="claude-sonnet-4-5", count_tokens=lambda t: len(t) // 4 + 1)
    turn = {"prompt": ASK, "max_tokens": 128, "tools": [READ],
            "conversation": [{"role": "user", "content": ASK}], **task}
    return run_task(build_graph(), turn, context)


def test_a_valid_confident_local_tool_call_is_served_local() -> None:
    local, cloud = tiers(call("read_file", {"path": "calc.py"}))
    answer = route(local, cloud)
    assert (answer.record["final"], answer.record["reason"]) == ("local", "confident")
    assert [(c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [
        ("read_file", {"path": "calc.py"})]
    assert answer.finish_reason == "tool_calls"
    assert local.requests[0].tools == (READ,) and not cloud.requests


def test_an_unknown_tool_gets_one_local_repair_round_naming_the_tools() -> None:
    local, cloud = tiers(call("open_file", {"path": "calc.py"}),
                         call("read_file", {"path": "calc.py"}))
    answer = route(local, cloud)
    assert answer.record["final"] == "local"
    assert answer.tool_calls[0].name == "read_file"
    told = local.requests[1].messages[-1].content
    assert "'open_file', which is not one of the tools (read_file)" in told
    assert not cloud.requests


def test_arguments_the_schema_refuses_twice_go_to_the_cloud_with_the_tools() -> None:
    bad = call("read_file", {"file": "calc.py"})
    local, cloud = tiers(bad, bad, cloud=call("read_file", {"path": "calc.py"}))
    answer = route(local, cloud)
    assert (answer.record["final"], answer.record["reason"]) == ("cloud", "failed_checks")
    assert "'path' is a required property" in local.requests[1].messages[-1].content
    assert cloud.requests[0].tools == (READ,)
    assert answer.tool_calls[0].name == "read_file"


def test_a_local_tier_that_cannot_call_tools_sends_the_turn_to_the_cloud() -> None:
    local, cloud = tiers("unused", tools=False)
    answer = route(local, cloud)
    assert (answer.record["final"], answer.record["reason"]) == ("cloud", "tools")
    assert not local.requests


def test_the_conversation_reaches_the_model_structured() -> None:
    local, cloud = tiers(call("read_file", {"path": "calc.py"}, id_="call_2"))
    conversation = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "calc.py"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "def add(a, b):\n    return a - b"},
    ]
    route(local, cloud, conversation=conversation, system="You are an agent.")
    sent = local.requests[0].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2].tool_calls[0].name == "read_file" and sent[3].tool_call_id == "call_1"


def test_a_tool_result_from_a_local_only_path_never_reaches_the_cloud() -> None:
    conversation = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "/w/secrets/db.py"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "PASSWORD = 'hunter2'"},
    ]
    # The local model's answer is not confident: it would escalate, but privacy keeps it.
    unsure = Generation(text="Not sure.", model="local", finish_reason="stop",
                        usage=Usage(50, 3), timings=Timings(total_ms=1.0),
                        logprobs=(TokenLogprob("Not", -3.0), TokenLogprob(" sure", -3.0)))
    local, cloud = tiers(unsure)
    answer = route(local, cloud, conversation=conversation, team="vault")
    assert (answer.record["final"], answer.record["reason"]) == ("local", "privacy")
    assert not cloud.requests
    local, cloud = tiers("unused", tools=False)
    with pytest.raises(PolicyViolation, match="cannot take tool calls"):
        route(local, cloud, conversation=conversation, team="vault")
    assert not cloud.requests


def test_secrets_in_tool_results_are_redacted_before_the_cloud() -> None:
    key = "AKIA" + "ABCDEFGHIJKLMNOP"
    conversation = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "config.py"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": f"AWS_KEY = '{key}'"},
    ]
    local, cloud = tiers("unused", tools=False)
    answer = route(local, cloud, conversation=conversation)
    sent = "\n".join(m.content for m in cloud.requests[0].messages)
    assert key not in sent and "AWS_KEY" in sent
    assert answer.record["final"] == "cloud"


@pytest.mark.parametrize(("task", "field"), [
    ({"conversation": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]},
     "conversation[0].tool_call_id"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 3}}}]},
     "tools[0].function.parameters"),
    ({"tool_choice": {"type": "function", "function": {"name": "missing"}}}, "tool_choice"),
])
def test_bad_agent_turns_are_refused_naming_the_field(task: dict[str, Any], field: str) -> None:
    local, cloud = tiers("unused")
    with pytest.raises(InvalidTask) as refused:
        route(local, cloud, **task)
    assert refused.value.field == field
    assert not local.requests and not cloud.requests


@pytest.mark.parametrize("text", [
    '{"name": "read_file", "arguments": {"path": "calc.py"}}',
    '```json\n{"name": "read_file", "arguments": {"path": "calc.py"}}\n```',
    '<tool_call>\n{"name": "read_file", "arguments": {"path": "calc.py"}}\n</tool_call>',
])
def test_a_call_the_small_model_wrote_as_text_is_served_as_the_call(text: str) -> None:
    local, cloud = tiers(text)
    answer = route(local, cloud)
    assert answer.record["final"] == "local" and answer.text == ""
    assert [(c.name, json.loads(c.arguments)) for c in answer.tool_calls] == [
        ("read_file", {"path": "calc.py"})]
    assert answer.finish_reason == "tool_calls"


def test_prose_or_json_naming_no_offered_tool_stays_an_answer() -> None:
    for text in ("The bug is in add: it subtracts.", '{"name": "rm_rf", "arguments": {}}'):
        local, cloud = tiers(text)
        answer = route(local, cloud)
        assert answer.text == text and answer.tool_calls == ()


def test_tool_history_without_tools_goes_to_the_cloud_when_the_local_tier_cannot_render_it(
        ) -> None:
    conversation = [
        {"role": "user", "content": ASK},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "read_file", "arguments": '{"path": "calc.py"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "def add(a, b): ..."},
    ]
    local, cloud = tiers("unused", tools=False)
    answer = route(local, cloud, conversation=conversation, tools=[])
    assert (answer.record["final"], answer.record["reason"]) == ("cloud", "tools")
    assert not local.requests


def test_an_agent_s_max_tokens_ceiling_does_not_keep_its_turn_from_the_local_tier() -> None:
    """Claude Code asks for up to 64,000 tokens, opencode 32,000: a ceiling. The turn fits the
    local window with agent_answer_tokens of room, and the local answer is cut where the
    window ends; a task that is not an agent's keeps its max_tokens as a need."""
    policies = PoliciesConfig(default={"agent_answer_tokens": 1024})
    local, cloud = tiers(call("read_file", {"path": "calc.py"}))
    answer = run_task(build_graph(), {"prompt": ASK, "max_tokens": 32_000, "tools": [READ],
                                      "conversation": [{"role": "user", "content": ASK}]},
                      RouterContext(local=local, cloud=cloud, policies=policies,
                                    local_window=4096, price_as="claude-sonnet-4-5",
                                    count_tokens=lambda t: len(t) // 4 + 1))
    assert (answer.record["final"], answer.record["reason"]) == ("local", "confident")
    context = answer.record["signals"]["context"]
    assert context["fits"] and context["needed"] < 4096
    # the local request asks for what the window has left, not 32,000
    assert local.requests[0].max_tokens == context["available"] - (context["needed"] - 1024)
    local, cloud = tiers(call("read_file", {"path": "calc.py"}))
    plain = run_task(build_graph(), {"prompt": ASK, "max_tokens": 32_000}, RouterContext(
        local=local, cloud=cloud, policies=policies, local_window=4096,
        price_as="claude-sonnet-4-5", count_tokens=lambda t: len(t) // 4 + 1))
    assert plain.record["reason"] == "context"


def test_agent_answer_tokens_is_the_room_a_turn_needs() -> None:
    local, cloud = tiers(call("read_file", {"path": "calc.py"}))
    policies = PoliciesConfig(default={"agent_answer_tokens": 4000})
    context = RouterContext(local=local, cloud=cloud, policies=policies, local_window=4096,
                            price_as="claude-sonnet-4-5", count_tokens=lambda t: len(t) // 4 + 1)
    answer = run_task(build_graph(), {"prompt": ASK, "max_tokens": 32_000, "tools": [READ],
                                      "conversation": [{"role": "user", "content": ASK}]},
                      context)
    assert (answer.record["final"], answer.record["reason"]) == ("cloud", "context")
