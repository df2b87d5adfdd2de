"""An agent turn's prompt tokens, counted once per message (router/graph/prompt_tokens.py)
with the real SmolLM2 tokenizer: never fewer than the whole prompt rendered and tokenized (the
context-fit decision stays safe), and a later turn of a session tokenizes only what it adds."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agents.base import Generation, GenerationRequest, Message, Role, TokenEvent, ToolCall, Wrapped
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.graph import prompt_tokens
from router.graph.context import RouterContext, token_counter
from router.graph.graph import build_graph, run_task
from router.graph.prompt_tokens import BOUNDARY_TOKENS, TextTokens, conversation_tokens, count_all, pieces

CORPUS = "".join(p.read_text() for p in sorted(
    (Path(__file__).parents[2] / "router" / "graph").glob("*.py")))
# Edges where a text tokenized apart from its frame could differ: whitespace, newlines,
# non-ASCII, a contraction, a number, the template's own special tokens written as text.
EDGES = ["", " ", "\n", "\n\n", "  ", "\t", "é", "日本", "'s", "123", "<|im_end|>",
         "<|im_start|>"]


def texts(rng: random.Random) -> str:
    size = rng.choice([0, 1, 5, 50, 500, 3000, 6000, 12000])
    start = rng.randrange(0, len(CORPUS) - size)
    text = CORPUS[start:start + size]
    if size > 500:  # longer texts are counted in pieces cut after line ends: edges there too
        text = text.replace("\n\n", "\n\n" + rng.choice(EDGES), 3)
        text = text.replace("\n\n", rng.choice(EDGES) + "\n\n\n", 3)
        text = text.replace(":\n", ":\n" + rng.choice(EDGES), 5)
    return rng.choice(EDGES) + text + rng.choice(EDGES)


def conversation(rng: random.Random) -> list[Message]:
    messages = [Message("system", texts(rng))] if rng.random() < 0.7 else []
    for i in range(rng.randint(1, 8)):
        role: Role = rng.choice(["user", "assistant", "tool"])
        calls = ((ToolCall(f"call_{i}", "read_file", '{"path": "calc.py"}'),)
                 if role == "assistant" and rng.random() < 0.5 else ())
        messages.append(Message(role, texts(rng), tool_calls=calls,
                                tool_call_id=f"call_{i}" if role == "tool" else None))
    return messages


def test_an_agent_prompt_never_counts_fewer_tokens_than_the_model_sees(smol: Any) -> None:
    count = token_counter(smol)
    rng = random.Random(7)
    for _ in range(150):
        messages = conversation(rng)
        whole = smol.count_prompt_tokens(GenerationRequest(messages=tuple(messages)))
        counted = conversation_tokens(smol, count, messages, TextTokens())
        calls = sum(count(c.id) + count(c.name) + count(c.arguments) + 3 * BOUNDARY_TOKENS
                    for m in messages for c in m.tool_calls)
        assert whole <= counted, messages
        # A few tokens a message or piece more at most (the template leaves tool calls out).
        cut = sum(len(pieces(m.content)) for m in messages)
        assert counted - calls <= whole + 3 * len(messages) + 2 * cut, messages


class Tokenizing(Wrapped):
    """The local tier, noting the characters it was asked to tokenize."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.chars = 0

    def count_tokens(self, text: str) -> int | None:
        self.chars += len(text)
        return self.inner.count_tokens(text)

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        self.chars += sum(len(m.content) for m in request.messages)
        return self.inner.count_prompt_tokens(request)

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        return self.inner.stream(request)


def test_a_later_turn_of_a_session_tokenizes_only_the_messages_it_adds(smol: Any) -> None:
    local = Tokenizing(smol)
    cloud = Scripted("Done.", tools=True)
    context = RouterContext(local=local, cloud=cloud, policies=PoliciesConfig(),
                            local_window=smol.n_ctx, price_as="claude-sonnet-4-5",
                            count_tokens=token_counter(local))
    system = CORPUS[:20_000]  # an agent's long system prompt, resent every turn
    tool = {"type": "function", "function": {"name": "read_file", "parameters": {
        "type": "object", "properties": {"path": {"type": "string"}}}}}
    first = [{"role": "user", "content": "Fix the bug in calc.py: add must return a + b."}]
    added = [{"role": "assistant", "content": None, "tool_calls": [
                 {"id": "call_1", "type": "function",
                  "function": {"name": "read_file", "arguments": '{"path": "calc.py"}'}}]},
             {"role": "tool", "tool_call_id": "call_1",
              "content": "def add(a, b):\n    return a - b\n"}]
    graph = build_graph()
    turn: dict[str, Any] = {"prompt": first[0]["content"], "system": system, "tools": [tool],
                            "max_tokens": 64}
    one = run_task(graph, {**turn, "conversation": first}, context)  # type: ignore[typeddict-item]
    local.chars = 0
    two = run_task(graph, {**turn, "conversation": [*first, *added]},  # type: ignore[typeddict-item]
                   context)
    assert local.chars < 200, "the second turn tokenized the conversation again"
    assert two.record["tokens"]["prompt"] > one.record["tokens"]["prompt"]


def test_a_new_session_tokenizes_only_the_pieces_of_its_system_prompt_that_changed(
        smol: Any) -> None:
    local = Tokenizing(smol)
    count = token_counter(local)
    system = CORPUS[:30_000]
    today = "Today's date: 2026-12-07. Working directory: /work/one.\n\n"
    tomorrow = "Today's date: 2026-12-08. Working directory: /work/two.\n\n"
    ask = [Message("user", "Fix the bug in calc.py.")]
    kept = TextTokens()
    conversation_tokens(local, count, [Message("system", system + today), *ask], kept)
    local.chars = 0
    conversation_tokens(local, count, [Message("system", system + tomorrow), *ask], kept)
    assert local.chars < 10_000, "the new session tokenized its whole system prompt again"


def test_a_new_sessions_first_message_tokenizes_its_own_words_not_the_reminder_before_them(
        smol: Any) -> None:
    local = Tokenizing(smol)
    count = token_counter(local)
    reminder = f"<system-reminder>{CORPUS[5_000:8_000]}</system-reminder>\n"
    kept = TextTokens()
    conversation_tokens(local, count, [Message("user", reminder + "Fix calc.py. #1")], kept)
    local.chars = 0
    conversation_tokens(local, count, [Message("user", reminder + "Fix util.py. #2")], kept)
    assert local.chars < 1_000, "the new session tokenized its whole first message again"


def test_new_pieces_tokenized_side_by_side_count_as_one_after_another(
        smol: Any, monkeypatch: Any) -> None:
    threads: set[str] = set()

    def count(text: str) -> int:
        threads.add(threading.current_thread().name)
        return int(smol.count_tokens(text))

    rng = random.Random(11)
    conversations = [conversation(rng) for _ in range(20)]
    monkeypatch.setattr(prompt_tokens, "PARALLEL_CHARS", 10**9)
    apart = [conversation_tokens(smol, count, c, TextTokens()) for c in conversations]
    assert not any(name.startswith("tokenize") for name in threads)
    monkeypatch.setattr(prompt_tokens, "PARALLEL_CHARS", 0)
    side_by_side = [conversation_tokens(smol, count, c, TextTokens()) for c in conversations]
    assert side_by_side == apart
    assert any(name.startswith("tokenize") for name in threads)


def test_the_counts_kept_are_bounded_and_the_latest_used_stay() -> None:
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return len(text)

    kept = TextTokens(max_texts=2)
    for text in ["a", "bb", "a", "ccc", "a", "bb"]:
        assert count_all(count, [text], kept) == [len(text)]
    assert seen == ["a", "bb", "ccc", "bb"]  # "bb" was the least recently used when "ccc" came
