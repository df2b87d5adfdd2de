"""The one backend interface every model tier implements.

A backend turns a :class:`GenerationRequest` into a :class:`Generation` (``generate``) or into a
stream of :class:`TokenEvent` followed by the final :class:`Generation` (``stream``). The local
tier (llama.cpp) and the cloud tier (litellm) both implement it, so the router never needs to
know which one it is talking to.

Tool turns travel structured, in OpenAI chat terms (what litellm and llama-server speak): a
request carries ``tools`` (OpenAI function-tool JSON), an assistant :class:`Message` its
``tool_calls``, a ``tool`` message the result of one call; an answer's calls come back whole in
``Generation.tool_calls`` and, while streaming, as :class:`ToolCallDelta` pieces on
``TokenEvent.tool_call`` (:class:`ToolCallAssembler` joins them). A backend that cannot take
tools (``supports_tools`` False) raises :class:`agents.errors.ToolsUnsupported` before any token.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.errors import FimUnsupported

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "aborted", "tool_calls"]


@dataclass(frozen=True)
class ToolCall:
    """A function call an answer makes: ``arguments`` is the JSON text the model wrote (not
    parsed here: whether it is valid JSON for the tool's schema is the judge's question)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Message:
    """One turn. An assistant turn may call tools (``tool_calls``); a ``tool`` turn is the
    result of the call ``tool_call_id`` (``name``: the tool's name, where the client gave it).
    ``cache``: the client marked the conversation up to the end of this turn for a provider's
    prompt cache (Anthropic's ``cache_control`` breakpoint)."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    cache: bool = False

    def to_openai(self, *, cache_marks: bool = False) -> dict[str, Any]:
        """This turn as an OpenAI chat message (litellm's and llama-server's input). An
        assistant turn that only calls tools has ``content`` null, as OpenAI writes it
        (providers refuse an empty text block). With ``cache_marks``, a ``cache`` turn's text
        is one content part carrying ``cache_control``, the form litellm hands to providers
        that cache prompts (Anthropic, Bedrock, Vertex)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["content"] = self.content or None
            out["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if cache_marks and self.cache and self.content:
            out["content"] = [{"type": "text", "text": self.content,
                               "cache_control": {"type": "ephemeral"}}]
        return out


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. ``temperature=0`` means greedy decoding."""

    messages: tuple[Message, ...]
    max_tokens: int = 512
    temperature: float = 0.0
    top_logprobs: int = 2
    stop: tuple[str, ...] = ()
    # Backends that can return per-token logprobs do so unless this is False.
    logprobs: bool = True
    # OpenAI function tools the answer may call (backends with ``supports_tools``).
    tools: tuple[dict[str, Any], ...] = ()
    # "auto", "none", "required" or {"type": "function", "function": {"name": ...}}; None:
    # the provider's default (auto).
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    @property
    def uses_tools(self) -> bool:
        """An agent's turn: it offers tools, or its conversation holds tool calls or results
        (a backend without ``supports_tools`` cannot render either)."""
        return bool(self.tools) or any(m.tool_calls or m.role == "tool" for m in self.messages)

    def openai_messages(self, *, cache_marks: bool = False) -> list[dict[str, Any]]:
        return [m.to_openai(cache_marks=cache_marks) for m in self.messages]

    def openai_tools(self) -> dict[str, Any]:
        """``tools``, ``tool_choice`` and ``parallel_tool_calls`` for an OpenAI chat body;
        empty when the request offers no tools (a ``tool_choice`` alone is an error there)."""
        if not self.tools:
            return {}
        out: dict[str, Any] = {"tools": [dict(t) for t in self.tools]}
        if self.tool_choice is not None:
            out["tool_choice"] = self.tool_choice
        if self.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = self.parallel_tool_calls
        return out


@dataclass(frozen=True)
class InfillRequest:
    """Inline completion at a cursor: the code before it (``prefix``) and after it
    (``suffix``; None: a plain continuation of ``prefix``, no fill-in-the-middle).

    The backend keeps the code nearest the cursor within ``prefix_tokens`` and
    ``suffix_tokens`` (:func:`agents.fim.window`) and, with ``stop_at_block_end``, stops where
    the block ends (:class:`agents.fim.BlockEnd`). ``order``: psm or spm token layout, where
    the backend builds the prompt itself. ``reuse_min_tokens``: keep cached runs of at least
    this many tokens past the common prefix, moved to their new place (:mod:`agents.kv_reuse`;
    0: the common prefix only), less their first ``reuse_refresh_tokens``, evaluated again."""

    prefix: str
    suffix: str | None = None
    max_tokens: int = 64
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    prefix_tokens: int = 1024
    suffix_tokens: int = 256
    stop_at_block_end: bool = True
    order: Literal["psm", "spm"] = "psm"
    reuse_min_tokens: int = 0
    reuse_refresh_tokens: int = 0


@dataclass(frozen=True)
class Alternative:
    token: str
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token, its log-probability and the top-k alternatives at that step."""

    token: str
    logprob: float
    top: tuple[Alternative, ...] = ()


@dataclass(frozen=True)
class Usage:
    """A call's tokens. ``prompt_tokens`` counts every prompt token, those a provider read
    from its prompt cache (``cache_read_tokens``) and wrote to it (``cache_write_tokens``)
    included, as litellm reports them; each of the three has its own price."""

    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    total_ms: float
    first_token_ms: float | None = None
    decode_tokens_per_s: float | None = None


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    # None when the backend could not provide logprobs (no evidence is not confidence).
    logprobs: tuple[TokenLogprob, ...] | None = None
    cost_usd: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as OpenAI streams them: the call at ``index`` of the
    answer; its ``id`` and ``name`` come with its first piece, ``arguments`` in fragments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class TokenEvent:
    """One step of a stream: the text it adds and, when known, its logprob; or a piece of a
    tool call (``tool_call``, with ``text`` empty)."""

    text: str
    logprob: TokenLogprob | None = None
    tool_call: ToolCallDelta | None = None


class ToolCallAssembler:
    """Joins streamed :class:`ToolCallDelta` pieces into whole :class:`ToolCall` values, in
    the order of their index. A call the stream gave no id gets ``call_<index>``."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self._calls.setdefault(delta.index, {"id": None, "name": "", "arguments": []})
        if delta.id:
            call["id"] = delta.id
        if delta.name:
            call["name"] += delta.name
        if delta.arguments:
            call["arguments"].append(delta.arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(id=c["id"] or f"call_{index}", name=c["name"],
                              arguments="".join(c["arguments"]))
                     for index, c in sorted(self._calls.items()))


class Backend(abc.ABC):
    """A model tier. Subclasses implement ``stream``; ``generate`` is derived from it."""

    #: Whether this backend returns per-token logprobs.
    supports_logprobs: bool = False
    #: Whether ``infill`` can fill in the middle (a request with a suffix); see ``infill``.
    supports_fim: bool = False
    #: Whether it takes tool turns (``GenerationRequest.uses_tools``) and answers with tool
    #: calls; one that cannot raises :class:`agents.errors.ToolsUnsupported` before any token.
    supports_tools: bool = False

    @property
    @abc.abstractmethod
    def model_name(self) -> str: ...

    @property
    def n_ctx(self) -> int | None:
        """The context window in tokens, where known (None: the provider will say)."""
        return None

    def count_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` in this model's own tokenizer; None where the tokenizer is not
        at hand (a remote server, a cloud provider)."""
        return None

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt tokens of ``request`` as this model will see it (chat template included);
        None where the tokenizer is not at hand."""
        return None

    @abc.abstractmethod
    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        """Yield ``TokenEvent`` items as tokens arrive, then exactly one final ``Generation``."""

    def generate(self, request: GenerationRequest) -> Generation:
        final: Generation | None = None
        for item in self.stream(request):
            if isinstance(item, Generation):
                final = item
        if final is None:  # pragma: no cover - a backend bug, not a user error
            raise RuntimeError(f"backend {self.model_name} ended its stream without a result")
        return final

    def infill(self, request: InfillRequest) -> Iterator[TokenEvent | Generation]:
        """Inline completion, streamed like ``stream``. Backends that cannot do it raise
        :class:`agents.errors.FimUnsupported` (naming what to change) before any token."""
        raise FimUnsupported(f"{self.model_name} does not do inline completion")

    def unavailable(self) -> str | None:
        """None when this tier can answer now; else one line saying why not (``/readyz``
        asks). Default: an in-process tier is ready once built."""
        return None

    def close(self) -> None:
        """Release resources (model memory, connections). Default: nothing to do."""


class Wrapped(Backend):
    """A backend around another that adds something to ``stream`` (a tap, a replay cache):
    the name, window, tokenizer and logprob capability are the inner backend's."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.supports_logprobs = inner.supports_logprobs

    @property
    def supports_tools(self) -> bool:  # type: ignore[override]
        """The inner backend's, asked each time: a server learns it once it answers."""
        return self.inner.supports_tools

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def n_ctx(self) -> int | None:
        return self.inner.n_ctx

    def count_tokens(self, text: str) -> int | None:
        return self.inner.count_tokens(text)

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return self.inner.count_prompt_tokens(request)

    def unavailable(self) -> str | None:
        return self.inner.unavailable()
