"""The one backend interface every model tier implements.

A backend turns a :class:`GenerationRequest` into a :class:`Generation` (``generate``) or into a
stream of :class:`TokenEvent` followed by the final :class:`Generation` (``stream``). The local
tier (llama.cpp) and the cloud tier (litellm) both implement it, so the router never needs to
know which one it is talking to.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "aborted"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


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
    prompt_tokens: int
    completion_tokens: int

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


@dataclass(frozen=True)
class TokenEvent:
    """One step of a stream: the text it adds and, when known, its logprob."""

    text: str
    logprob: TokenLogprob | None = None


class Backend(abc.ABC):
    """A model tier. Subclasses implement ``stream``; ``generate`` is derived from it."""

    #: Whether this backend returns per-token logprobs.
    supports_logprobs: bool = False
    #: Whether ``infill`` can fill in the middle (a request with a suffix); see ``infill``.
    supports_fim: bool = False

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
        from agents.errors import FimUnsupported

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
