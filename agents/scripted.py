"""A model tier that plays back a script instead of running a model.

One answer per call, in order (the last one repeats). An answer is either a text, streamed in
4-character tokens at one logprob, or a recorded :class:`Generation`, streamed token by token
with its own logprobs and then its tool calls, one delta each (a scripted agent's turn:
``Generation(..., finish_reason="tool_calls", tool_calls=(ToolCall(...),))``; build the tier
with ``tools=True`` so the router sends it tool turns), or an exception, raised after the
answer's first token (a server that died mid-answer: ``BackendUnavailable(...)``). The
requests it was sent are kept, so a test can see what each tier was asked. Fast tests of the graph's branches, and the
routing-overhead benchmarks (every node does its real work, no model runs), use it; the slow
tests run the real models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from agents.base import (
    Backend,
    Generation,
    GenerationRequest,
    Timings,
    TokenEvent,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)


def play(generation: Generation) -> Iterator[TokenEvent | Generation]:
    """A recorded generation as a stream: its tokens (with logprobs), its tool calls, then
    itself."""
    if generation.logprobs:
        for entry in generation.logprobs:
            yield TokenEvent(entry.token, entry)
    elif generation.text or not generation.tool_calls:
        yield TokenEvent(generation.text)
    for n, call in enumerate(generation.tool_calls):
        yield TokenEvent("", tool_call=ToolCallDelta(n, call.id, call.name, call.arguments))
    yield generation


class Scripted(Backend):
    supports_logprobs = True

    def __init__(self, *answers: str | Generation | Exception, logprob: float = -0.01,
                 name: str = "scripted",
                 prompt_counter: Callable[[GenerationRequest], int] | None = None,
                 tools: bool = False) -> None:
        """``prompt_counter``: how the tier counts a request's prompt tokens (a real model's
        ``count_prompt_tokens``); without one the router estimates, as for a remote tier.
        ``tools``: whether it takes tool turns (``supports_tools``)."""
        if not answers:
            raise ValueError("a script needs at least one answer")
        self.answers, self.logprob, self.name = list(answers), logprob, name
        self.supports_tools = tools
        self.requests: list[GenerationRequest] = []
        self._prompt_counter = prompt_counter

    @property
    def model_name(self) -> str:
        return self.name

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return self._prompt_counter(request) if self._prompt_counter else None

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        answer = self.answers[min(len(self.requests), len(self.answers) - 1)]
        self.requests.append(request)
        if isinstance(answer, Exception):
            yield TokenEvent("def", TokenLogprob("def", self.logprob))
            raise answer
        if isinstance(answer, Generation):
            yield from play(answer)
            return
        pieces = [answer[i:i + 4] for i in range(0, len(answer), 4)]
        logprobs = tuple(TokenLogprob(p, self.logprob) for p in pieces)
        for entry in logprobs:
            yield TokenEvent(entry.token, entry)
        yield Generation(
            text=answer, model=self.name, finish_reason="stop",
            usage=Usage(sum(len(m.content) // 4 for m in request.messages), len(pieces)),
            timings=Timings(total_ms=1.0), logprobs=logprobs)
