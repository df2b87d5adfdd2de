"""Tool turns through the backend interface, against real servers: llama.cpp's llama-server
with --jinja on the 0.5B coder as the local tier, and on the 1.5B coder as the cloud reached
through litellm. A request with a `read_file` tool asking for calc.py comes back with a call to
read_file whose arguments are JSON naming the path, whole and streamed; the next turn, with
the call and its result, is answered; a tier that cannot take tools says so before any token.

The small Qwen coders write a call as bare JSON (or in a ```json fence) instead of inside the
template's `<tool_call>` tag, which llama-server then reads as text. llama-server's
`tool_choice: "required"` alone does not force the tag (its grammar admits free text before
it), and an answer begun with the tag alone (an assistant prefill, which llama-server
continues and parses) lets the 1.5B end its turn at once; the two together make both models
call the tool, deterministically under greedy decoding (with `parallel_tool_calls` false,
or the 1.5B calls it twice). So the turns that must call a tool are sent that way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import llama_server, model_store
from agents.base import (
    Backend,
    Generation,
    GenerationRequest,
    Message,
    Timings,
    TokenEvent,
    ToolCall,
    ToolCallAssembler,
    Usage,
)
from agents.cloud import CloudBackend
from agents.config import CloudConfig, LocalConfig
from agents.errors import RequestRefused, ToolsUnsupported
from agents.remote import RemoteLocalBackend
from agents.scripted import Scripted

READ_FILE = {"type": "function", "function": {
    "name": "read_file", "description": "Read a file from the repository and return its text.",
    "parameters": {"type": "object", "properties": {
        "path": {"type": "string", "description": "path of the file"}}, "required": ["path"]}}}
ASK = Message("user", "Read calc.py.")
PREFILL = Message("assistant", "<tool_call>\n")  # see the module's docstring
CALC = "def add(a, b):\n    return a - b\n"


def call_request(**kwargs: object) -> GenerationRequest:
    return GenerationRequest(messages=(ASK, PREFILL), tools=(READ_FILE,), tool_choice="required",
                             parallel_tool_calls=False, max_tokens=40,
                             **kwargs)  # type: ignore[arg-type]


def follow_up(call: ToolCall, **kwargs: object) -> GenerationRequest:
    """The next turn: the assistant's call and the tool's result, answered in words."""
    return GenerationRequest(messages=(
        Message("user", "Read calc.py and tell me what add returns."),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", CALC, tool_call_id=call.id, name=call.name),
    ), tools=(READ_FILE,), max_tokens=40, **kwargs)  # type: ignore[arg-type]


def served(model: str, model_cache: Path, **settings: object) -> llama_server.LlamaServer:
    config = LocalConfig(model=model, n_ctx=2048, server_parallel=1, **settings)  # type: ignore[arg-type]
    return llama_server.start(config, model_cache / model_store.MODELS[model].filename,
                              alias=model)


def remote(server: llama_server.LlamaServer, model: str) -> RemoteLocalBackend:
    return RemoteLocalBackend(LocalConfig(model=model, mode="server", server_url=server.base_url))


@pytest.fixture(scope="module")
def local(model_cache: Path) -> Iterator[RemoteLocalBackend]:
    """The local tier: the 0.5B coder behind llama-server with --jinja (local.jinja's default)."""
    with served("qwen2.5-coder-0.5b", model_cache) as server:
        backend = remote(server, "qwen2.5-coder-0.5b")
        yield backend
        backend.close()


@pytest.fixture(scope="module")
def cloud(model_cache: Path) -> Iterator[CloudBackend]:
    """The cloud tier: the 1.5B coder behind llama-server --jinja, reached through litellm."""
    with served("qwen2.5-coder-1.5b", model_cache) as server:
        yield CloudBackend(CloudConfig(model="openai/qwen2.5-coder-1.5b",
                                       api_base=server.base_url, num_retries=0))


def the_call(generation: Generation) -> ToolCall:
    assert generation.finish_reason == "tool_calls", generation
    assert generation.text == ""
    [call] = generation.tool_calls
    assert call.name == "read_file" and call.id
    assert json.loads(call.arguments)["path"].endswith("calc.py")
    return call


def streamed(backend: Backend, request: GenerationRequest) -> tuple[
        list[TokenEvent], Generation]:
    items = list(backend.stream(request))
    final = items[-1]
    assert isinstance(final, Generation)
    return [i for i in items[:-1] if isinstance(i, TokenEvent)], final


def assembled(events: list[TokenEvent]) -> tuple[ToolCall, ...]:
    calls = ToolCallAssembler()
    for event in events:
        if event.tool_call is not None:
            calls.add(event.tool_call)
    return calls.calls()


def same(a: ToolCall, b: ToolCall) -> bool:
    """The same call (ids are the server's own per answer)."""
    return (a.name, json.loads(a.arguments)) == (b.name, json.loads(b.arguments))


def test_llama_server_with_jinja_takes_tool_turns_and_answers_with_a_call(
        local: RemoteLocalBackend) -> None:
    assert local.supports_tools
    result = local.generate(call_request())
    the_call(result)
    assert result.logprobs  # a tool turn keeps the judge's evidence (asked whole, see remote)


def test_streamed_tool_call_deltas_assemble_to_the_same_call(local: RemoteLocalBackend) -> None:
    whole = the_call(local.generate(call_request()))
    for logprobs in (False, True):  # streamed by the server, or asked whole and played back
        events, final = streamed(local, call_request(logprobs=logprobs))
        [call] = assembled(events)
        assert final.tool_calls == (call,)
        assert same(call, whole)
        assert all(e.text == "" for e in events if e.tool_call is not None)


def test_the_next_turn_with_the_call_and_its_result_is_answered(
        local: RemoteLocalBackend) -> None:
    call = ToolCall("call_1", "read_file", json.dumps({"path": "calc.py"}))
    result = local.generate(follow_up(call))
    assert result.finish_reason in ("stop", "length") and not result.tool_calls
    assert result.text.strip()
    assert result.logprobs  # a text answer in a tool turn keeps its logprobs
    # the template rendered the call and its result: the prompt holds both
    without = local.count_prompt_tokens(GenerationRequest(messages=follow_up(call).messages[:1]))
    counted = local.count_prompt_tokens(follow_up(call))
    assert counted is not None and without is not None and counted > without + 20


def test_the_tools_schemas_count_in_the_prompt(local: RemoteLocalBackend) -> None:
    plain = local.count_prompt_tokens(GenerationRequest(messages=(ASK,)))
    with_tools = local.count_prompt_tokens(GenerationRequest(messages=(ASK,), tools=(READ_FILE,)))
    assert plain is not None and with_tools is not None and with_tools > plain + 40


def test_a_tool_turn_the_server_refuses_is_refused_not_a_dead_server(
        local: RemoteLocalBackend) -> None:
    """llama-server cannot continue an assistant turn that holds calls: a 400, which is the
    request's fault (a pool must not leave the server out for it)."""
    call = ToolCall("call_1", "read_file", '{"path": "calc.py"}')
    request = GenerationRequest(messages=(ASK, Message("assistant", "", tool_calls=(call,))),
                                tools=(READ_FILE,), max_tokens=8)
    with pytest.raises(RequestRefused, match="refused the tool turn"):
        local.generate(request)
    assert local.unavailable() is None


def test_a_server_without_jinja_cannot_take_tools_and_says_so(model_cache: Path) -> None:
    with served("smollm2-135m", model_cache, jinja=False, n_threads=1) as server:
        backend = remote(server, "smollm2-135m")
        try:
            assert backend.is_llama_cpp() and not backend.supports_tools
            with pytest.raises(ToolsUnsupported, match="jinja"):
                next(backend.stream(GenerationRequest(messages=(ASK,), tools=(READ_FILE,))))
            answer = backend.generate(GenerationRequest(messages=(ASK,), max_tokens=4))
            assert answer.logprobs  # a plain chat is untouched
        finally:
            backend.close()


def test_the_in_process_model_declares_no_tools_and_refuses_a_tool_turn(smol: Backend) -> None:
    assert not smol.supports_tools
    with pytest.raises(ToolsUnsupported, match="cloud"):
        next(smol.stream(GenerationRequest(messages=(ASK,), tools=(READ_FILE,))))
    call = ToolCall("call_1", "read_file", "{}")
    history = GenerationRequest(messages=(ASK, Message("assistant", "", tool_calls=(call,)),
                                          Message("tool", CALC, tool_call_id="call_1")))
    assert history.uses_tools
    with pytest.raises(ToolsUnsupported):
        smol.generate(history)


def test_the_cloud_tier_passes_tools_through_litellm_and_reads_the_call_back(
        cloud: CloudBackend) -> None:
    assert cloud.supports_tools
    whole = cloud.generate(call_request())
    call = the_call(whole)
    assert whole.cost_usd > 0
    events, final = streamed(cloud, call_request())
    [streamed_call] = assembled(events)
    assert final.tool_calls == (streamed_call,) and final.finish_reason == "tool_calls"
    assert same(streamed_call, call)
    answer = cloud.generate(follow_up(call))
    assert answer.text.strip() and not answer.tool_calls


def test_a_scripted_tier_plays_tool_calls_as_deltas() -> None:
    call = ToolCall("call_7", "read_file", '{"path": "calc.py"}')
    script = Scripted(Generation(text="", model="scripted", finish_reason="tool_calls",
                                 usage=Usage(10, 5), timings=Timings(1.0), tool_calls=(call,)),
                      tools=True)
    assert script.supports_tools
    events, final = streamed(script, call_request())
    assert assembled(events) == (call,) == final.tool_calls
    assert script.requests[0].tools == (READ_FILE,)
