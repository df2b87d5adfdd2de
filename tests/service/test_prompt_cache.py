"""Prompt caching for agents: Claude Code's ``cache_control`` markers reach a provider that
caches prompts, and its cache reads and writes are priced as litellm prices them, in the
answer's usage, the route record and the ledger.

The cloud is the scripted OpenAI-compatible server on loopback with a prompt cache of
Anthropic's kind (a prefix marked in one request is read by the next that starts with it),
reached through litellm; the local tier is the in-process SmolLM2 (no tools: every turn with
tools goes to the cloud).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from agents.base import GenerationRequest, Message
from agents.cloud import CloudBackend, import_litellm
from agents.config import CloudConfig
from router.bench.scripted_cloud import Recorded
from router.run.outcome import RouteRecord
from router.service import anthropic_wire, openai_wire, responses_wire
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import CLAUDE_EDIT as EDIT
from tests.helpers import CLAUDE_READ as READ
from tests.helpers import serving

PRICE_AS = "claude-sonnet-4-5"
# Claude Code's shape: system blocks, the later ones marked; a long stable prefix.
SYSTEM = [{"type": "text", "text": "You are Claude Code."},
          {"type": "text", "text": "Rules of this repository:\n" + "Keep it small.\n" * 400,
           "cache_control": {"type": "ephemeral"}}]
ASK = "Fix the bug in calc.py: add must return a + b."


def _service(smol: Any, redis_url: str, cloud_url: str, prefix: str,
             cache_control: str) -> Iterator[str]:
    settings = Settings(redis={"url": redis_url, "prefix": prefix}, auth={"enabled": False},
                        tasks={"embedded_worker": False}, cloud={"price_as": PRICE_AS})
    cloud = CloudBackend(CloudConfig(model="openai/scripted", api_base=cloud_url,
                                     num_retries=0, price_as=PRICE_AS,
                                     cache_control=cache_control))  # type: ignore[arg-type]
    with serving(create_app(settings, local=smol, cloud=cloud, with_retrieval=False)) as url:
        yield url


@pytest.fixture(scope="module")
def caching(smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded]) -> Iterator[str]:
    """The service with markers passed on (``cloud.cache_control: on``)."""
    yield from _service(smol, valkey_server.url, agent_cloud[0], "prompt-cache", "on")


def _price(prompt: int, completion: int, read: int = 0, written: int = 0) -> float:
    litellm = import_litellm()
    return float(sum(litellm.cost_per_token(
        model=PRICE_AS, prompt_tokens=prompt, completion_tokens=completion,
        cache_read_input_tokens=read, cache_creation_input_tokens=written)))


def _two_turns(url: str) -> tuple[Any, Any]:
    """A session's first turn (the model reads the file) and its second (the tool's result,
    marked as Claude Code marks the newest block)."""
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        first = client.messages.create(
            model="claude-sonnet-5-5", max_tokens=256, system=SYSTEM, tools=[READ, EDIT],
            messages=[{"role": "user", "content": [
                {"type": "text", "text": ASK, "cache_control": {"type": "ephemeral"}}]}])
        [call] = [b for b in first.content if b.type == "tool_use"]
        second = client.messages.create(
            model="claude-sonnet-5-5", max_tokens=256, system=SYSTEM, tools=[READ, EDIT],
            messages=[{"role": "user", "content": ASK},
                      {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": call.id,
                           "content": "def add(a, b):\n    return a - b\n",
                           "cache_control": {"type": "ephemeral"}}]}])
    return first, second


def _text(content: Any) -> str:
    return content if isinstance(content, str) else "".join(p["text"] for p in content)


def test_markers_reach_the_provider_and_the_second_turn_reads_the_cache_at_its_price(
        caching: str, agent_cloud: tuple[str, Recorded]) -> None:
    sent = len(agent_cloud[1].bodies)
    first, second = _two_turns(caching)
    # What left the machine: the marked system prompt and the marked turns as content parts
    # with cache_control (litellm's form for a provider that caches prompts).
    body = agent_cloud[1].bodies[sent]
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"][0]["cache_control"] == {
        "type": "ephemeral"}
    assert "Keep it small." in _text(system["content"])
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    later = agent_cloud[1].bodies[sent + 1]
    assert later["messages"][-1]["role"] == "tool"
    assert later["messages"][-1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert isinstance(later["messages"][1]["content"], str)  # unmarked turns stay text

    # The first turn wrote the prefix to the cache; the second read it.
    assert first.usage.cache_creation_input_tokens > 1000
    assert first.usage.cache_read_input_tokens == 0
    # (the system prompt's prefix, marked in both turns)
    assert 1000 < second.usage.cache_read_input_tokens <= first.usage.cache_creation_input_tokens
    for message in (first, second):
        route = message.model_extra["smallcode"]["route"]
        tokens = route["tokens"]
        usage = message.usage
        # Anthropic's input_tokens leave out what the cache read or wrote (of the prompt as
        # the provider counted it, which it bills).
        assert (usage.input_tokens + usage.cache_read_input_tokens
                + usage.cache_creation_input_tokens) == tokens["cloud_prompt"]
        assert tokens["cloud_cache_read"] == usage.cache_read_input_tokens
        assert tokens["cloud_cache_write"] == usage.cache_creation_input_tokens
        expected = _price(tokens["cloud_prompt"], tokens["completion"],
                          tokens["cloud_cache_read"], tokens["cloud_cache_write"])
        assert route["cost_usd"] == pytest.approx(expected, rel=1e-9)
        # All-cloud is this same call: no saving shows for a turn the cloud served.
        assert route["counterfactual_cost_usd"] == pytest.approx(route["cost_usd"], rel=1e-9)
    first_route = first.model_extra["smallcode"]["route"]
    second_route = second.model_extra["smallcode"]["route"]
    list_price = _price(second_route["tokens"]["cloud_prompt"],
                        second_route["tokens"]["completion"])
    assert second_route["cost_usd"] < 0.5 * list_price  # reads cost a tenth of input
    assert first_route["cost_usd"] > _price(first_route["tokens"]["cloud_prompt"],
                                            first_route["tokens"]["completion"])  # writes, more

    # The ledger charged what the records say.
    entries = httpx.get(f"{caching}/v1/usage/entries", params={"limit": 2}).json()["data"]
    charged = sorted(e["cost_usd"] for e in entries)
    assert charged == pytest.approx(sorted([first_route["cost_usd"], second_route["cost_usd"]]))
    assert {e["tokens"]["cloud_cache_read"] for e in entries} == {
        0, second_route["tokens"]["cloud_cache_read"]}


def test_a_streamed_turn_reports_its_cache_reads_in_its_final_usage(
        caching: str) -> None:
    _two_turns(caching)  # the prefix is in the cache now
    body = {"model": "claude-sonnet-5-5", "max_tokens": 256, "stream": True, "system": SYSTEM,
            "tools": [READ, EDIT], "messages": [{"role": "user", "content": [
                {"type": "text", "text": ASK, "cache_control": {"type": "ephemeral"}}]}]}
    with httpx.stream("POST", f"{caching}/v1/messages", json=body, timeout=120,
                      headers={"anthropic-version": "2023-06-01"}) as response:
        data = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines()
                if line.startswith("data: ")]
    [delta] = [d for d in data if d["type"] == "message_delta"]
    assert delta["usage"]["cache_read_input_tokens"] > 1000


def test_the_openai_wires_report_the_cloud_s_cache_reads_as_cached_tokens() -> None:
    """Chat and Responses clients see the same reads, in OpenAI's words."""
    record = RouteRecord.model_validate({
        "final": "cloud", "reason": "tools", "escalated": False, "cost_usd": 0.01,
        "counterfactual_cost_usd": 0.01,
        "tokens": {"prompt": 4900, "completion": 20, "cloud_prompt": 5000,
                   "cloud_cache_read": 4200}})
    assert openai_wire.record_usage(record)["prompt_tokens_details"] == {"cached_tokens": 4200}
    assert responses_wire.usage(record)["input_tokens_details"] == {"cached_tokens": 4200}
    assert anthropic_wire.usage(record) == {
        "input_tokens": 800, "output_tokens": 20, "cache_read_input_tokens": 4200,
        "cache_creation_input_tokens": 0}


def test_markers_stay_home_for_a_provider_that_does_not_cache(
        smol: Any, valkey_server: Any, agent_cloud: tuple[str, Recorded]) -> None:
    """``cache_control: auto`` with a model litellm does not know to cache prompts (the
    offline stand-in's): every turn's content stays plain text, as that server reads it."""
    sent = len(agent_cloud[1].bodies)
    for url in _service(smol, valkey_server.url, agent_cloud[0], "prompt-cache-auto", "auto"):
        _, second = _two_turns(url)
    for body in agent_cloud[1].bodies[sent:]:
        assert all(isinstance(m.get("content"), str | None) for m in body["messages"]), body
    assert second.usage.cache_read_input_tokens == 0


def test_litellm_s_anthropic_route_turns_the_marks_into_anthropic_breakpoints() -> None:
    """What a real Anthropic provider would receive: litellm's own request transformation
    of the cloud tier's messages keeps each mark on its block."""
    import_litellm()
    from litellm.llms.anthropic.chat.transformation import AnthropicConfig

    request = GenerationRequest(messages=(
        Message("system", "You are Claude Code.", cache=True), Message("user", ASK),
        Message("assistant", "Reading it."), Message("user", "Go on.", cache=True)))
    sent = AnthropicConfig().transform_request(
        model=PRICE_AS, messages=request.openai_messages(cache_marks=True),
        optional_params={"max_tokens": 64}, litellm_params={}, headers={})
    assert sent["system"] == [{"type": "text", "text": "You are Claude Code.",
                               "cache_control": {"type": "ephemeral"}}]
    marked = [block for message in sent["messages"] for block in message["content"]
              if block.get("cache_control")]
    assert [block["text"] for block in marked] == ["Go on."]
