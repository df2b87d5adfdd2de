"""The cloud tier: any model litellm speaks, priced as a configurable real cloud model.

Offline, the "cloud" is an OpenAI-compatible server on loopback (see ``agents.standin``)
reached through litellm exactly as a paid provider would be. Costs always come from litellm's
price map for ``price_as`` so that the figures are what the team would really pay.

Tool turns pass through as OpenAI chat JSON (litellm translates it for each provider): the
request's tools, ``tool_choice`` and ``parallel_tool_calls``, assistant ``tool_calls`` and
``tool`` messages; the answer's calls come back whole, or as deltas while streaming.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from agents.base import (
    Alternative,
    Backend,
    FinishReason,
    Generation,
    GenerationRequest,
    Timings,
    TokenEvent,
    TokenLogprob,
    ToolCall,
    ToolCallAssembler,
    ToolCallDelta,
    Usage,
)
from agents.breaker import Breaker, CircuitBreaker
from agents.cloud_errors import translate
from agents.config import CloudConfig
from agents.errors import AgentError, BackendMisconfigured, BackendUnavailable, CircuitOpen

log = logging.getLogger("smallcode.cloud")


class _NoLoggingBacklog(logging.Filter):
    """Drops litellm's warning that its logging pool dropped work (it drops all of it here,
    on purpose: see :func:`import_litellm`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("litellm logging executor backlog is full")


_NO_LOGGING_BACKLOG = _NoLoggingBacklog()  # one instance: addFilter adds it once


def import_litellm() -> Any:
    """Import litellm with its bundled price map (it would otherwise fetch one at import) and
    without its post-call logging work."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # After every call litellm builds a logging payload and runs its success handlers (cost,
    # callbacks, its cache) in a thread pool: 1-3 ms of CPU a call for callbacks the router
    # does not register (it prices calls itself, with cost_per_token), taken from the next
    # request under the interpreter lock. A pool that may hold no pending task drops them
    # all (litellm's own cap, read once at its import).
    os.environ.setdefault("LOGGING_EXECUTOR_MAX_PENDING_TASKS", "0")
    import litellm  # deferred: heavy, and loaded only when a cloud tier is used

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    # litellm logs each streamed chunk in a thread pool, a new event loop each, for callbacks
    # the router does not register: CPU and the interpreter lock taken from every request
    litellm.disable_streaming_logging = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("LiteLLM").addFilter(_NO_LOGGING_BACKLOG)
    return litellm


def check_price_as(name: str, *, today: dt.date | None = None) -> None:
    """Refuse a price_as model that litellm cannot price (unknown names would cost $0); warn
    when its price map says the provider has retired it (its prices may no longer be what
    the team would pay), naming the successor the map gives."""
    litellm = import_litellm()
    if name not in litellm.model_cost:
        raise AgentError(
            f"cloud.price_as={name!r} is not in litellm's price map: use a priced model name "
            "such as claude-sonnet-4-6 or gpt-4o"
        )
    entry = litellm.model_cost[name]
    retired = entry.get("deprecation_date")
    if retired and dt.date.fromisoformat(str(retired)) <= (today or dt.date.today()):
        successor = entry.get("successor_model")
        log.warning("cloud.price_as=%s was retired by its provider on %s (litellm's price "
                    "map)%s: costs are priced at its last list price", name, retired,
                    f"; its successor is {successor}" if successor else "")


def price(price_as: str, prompt_tokens: int, completion_tokens: int, *,
          cache_read_tokens: int = 0, cache_write_tokens: int = 0) -> float:
    """USD cost of a call of this size at ``price_as``'s list price. Of the prompt tokens,
    those read from the provider's prompt cache and written to it are priced at the model's
    cache-read and cache-write prices, as litellm prices them."""
    litellm = import_litellm()
    prompt_usd, completion_usd = litellm.cost_per_token(
        model=price_as, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
        cache_read_input_tokens=cache_read_tokens,
        cache_creation_input_tokens=cache_write_tokens,
    )
    return float(prompt_usd + completion_usd)


def usage_of(reported: Any) -> Usage:
    """A provider's usage as litellm reports it, its prompt-cache reads and writes included
    (``cache_read_input_tokens`` / ``cache_creation_input_tokens``, which litellm also fills
    from OpenAI's ``prompt_tokens_details.cached_tokens``)."""
    details = getattr(reported, "prompt_tokens_details", None)
    read = getattr(reported, "cache_read_input_tokens", None) or getattr(
        details, "cached_tokens", None) or 0
    written = getattr(reported, "cache_creation_input_tokens", None) or 0
    return Usage(reported.prompt_tokens, reported.completion_tokens,
                 cache_read_tokens=int(read), cache_write_tokens=int(written))


def context_window(config: CloudConfig) -> int | None:
    """The cloud model's context window (input tokens): ``cloud.n_ctx``, else litellm's model
    map for the model name (with or without its provider prefix), else None (unknown)."""
    if config.n_ctx is not None:
        return config.n_ctx
    cost_map = import_litellm().model_cost
    for name in (config.model, config.model.split("/", 1)[-1]):
        entry = cost_map.get(name) or {}
        window = entry.get("max_input_tokens")  # its "max_tokens" is often the output cap
        if isinstance(window, int) and window > 0:
            return window
    return None


def _finish(reason: str | None) -> FinishReason:
    if reason in ("length", "tool_calls"):
        return reason  # type: ignore[return-value]
    return "stop"


def _tool_calls(message: Any) -> tuple[ToolCall, ...]:
    """The calls of a whole answer (litellm's ``ChatCompletionMessageToolCall`` objects)."""
    return tuple(
        ToolCall(id=call.id or f"call_{n}", name=call.function.name or "",
                 arguments=call.function.arguments or "")
        for n, call in enumerate(getattr(message, "tool_calls", None) or ()))


def _deltas(delta: Any) -> list[ToolCallDelta]:
    """The tool-call pieces of one streamed chunk (litellm's ``ChatCompletionDeltaToolCall``)."""
    out = []
    for n, piece in enumerate(getattr(delta, "tool_calls", None) or ()):
        function = piece.function
        out.append(ToolCallDelta(
            index=piece.index if piece.index is not None else n, id=piece.id or None,
            name=(function.name if function else None) or None,
            arguments=(function.arguments if function else None) or ""))
    return out


def _logprobs(choice: Any) -> tuple[TokenLogprob, ...] | None:
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    return tuple(
        TokenLogprob(
            token=item.token,
            logprob=float(item.logprob),
            top=tuple(Alternative(alt.token, float(alt.logprob)) for alt in item.top_logprobs or ()),
        )
        for item in content
    )


class CloudBackend(Backend):
    def __init__(self, config: CloudConfig, *, breaker: Breaker | None = None) -> None:
        """``breaker``: one shared with other processes (:class:`agents.breaker.SharedBreaker`,
        closed with this backend); none: this process's own."""
        self._config = config
        self._litellm = import_litellm()
        check_price_as(config.price_as)
        self.supports_logprobs = config.request_logprobs
        self.supports_tools = True
        self._n_ctx = context_window(config)
        self._cache_marks = config.cache_control == "on" or (
            config.cache_control == "auto"
            and bool(self._litellm.utils.supports_prompt_caching(config.model)))
        self.breaker: Breaker = breaker or CircuitBreaker(config.breaker_failures,
                                                          config.breaker_reset_s)

    def close(self) -> None:
        self.breaker.close()

    @property
    def model_name(self) -> str:
        return self._config.model

    @property
    def n_ctx(self) -> int | None:
        return self._n_ctx

    def _call(self, request: GenerationRequest, *, stream: bool) -> Any:
        config = self._config
        kwargs: dict[str, Any] = {
            "model": config.model,
            "messages": request.openai_messages(cache_marks=self._cache_marks),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "timeout": config.timeout_s,
            "num_retries": config.num_retries,
            "stream": stream,
            **request.openai_tools(),
        }
        if request.stop:
            kwargs["stop"] = list(request.stop)
        if config.api_base:
            kwargs["api_base"] = config.api_base
        # Local OpenAI-compatible servers want some key; a real provider gets the real one.
        kwargs["api_key"] = config.api_key.get_secret_value() if config.api_key else "none"
        if config.fallbacks:
            kwargs["fallbacks"] = list(config.fallbacks)
        if config.request_logprobs and request.top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.top_logprobs)
        if stream:
            kwargs["stream_options"] = {"include_usage": True}
        if not self.breaker.allow():
            wait = self.breaker.retry_after_s()
            raise CircuitOpen(
                f"cloud model {config.model} is not called for now: its last "
                f"{config.breaker_failures} calls failed; the next try is in {wait:.0f} s "
                "(cloud.breaker_reset_s)", retry_after_s=wait)
        try:
            response = self._litellm.completion(**kwargs)  # litellm retries and falls back
        except Exception as exc:  # litellm raises many types; callers decide by ours
            raise self._translate(exc) from exc
        except BaseException:
            self.breaker.abandoned()
            raise
        if not stream:
            self.breaker.succeeded()
        return response

    def _chunks(self, request: GenerationRequest) -> Iterator[Any]:
        response = self._call(request, stream=True)
        try:
            yield from response
        except Exception as exc:  # a provider can fail in the middle of a stream too
            raise self._translate(exc) from exc
        finally:
            self.breaker.abandoned()  # a stream closed early says nothing of the provider
        self.breaker.succeeded()

    def _translate(self, exc: Exception) -> AgentError:
        error = translate(exc, self._litellm, self._config, self._n_ctx)
        if isinstance(error, BackendUnavailable) and not isinstance(error, BackendMisconfigured):
            self.breaker.failed()  # the provider is away; an invalid request is not its fault
        else:
            self.breaker.succeeded()  # it answered, if only to refuse
        return error

    def _result(
        self, text: str, usage: Usage, finish: FinishReason, started: float,
        first_at: float | None, logprobs: tuple[TokenLogprob, ...] | None,
        tool_calls: tuple[ToolCall, ...] = (),
    ) -> Generation:
        total = time.perf_counter() - started
        rate = None
        if first_at is not None and usage.completion_tokens > 1:
            rate = (usage.completion_tokens - 1) / max(time.perf_counter() - first_at, 1e-9)
        return Generation(
            text=text,
            model=self._config.model,
            finish_reason=finish,
            usage=usage,
            timings=Timings(
                total_ms=total * 1000,
                first_token_ms=(first_at - started) * 1000 if first_at else None,
                decode_tokens_per_s=rate,
            ),
            logprobs=logprobs,
            cost_usd=price(self._config.price_as, usage.prompt_tokens, usage.completion_tokens,
                           cache_read_tokens=usage.cache_read_tokens,
                           cache_write_tokens=usage.cache_write_tokens),
            tool_calls=tool_calls,
        )

    def generate(self, request: GenerationRequest) -> Generation:
        started = time.perf_counter()
        response = self._call(request, stream=False)
        choice = response.choices[0]
        usage = usage_of(response.usage)
        return self._result(
            choice.message.content or "", usage, _finish(choice.finish_reason), started,
            None, _logprobs(choice), _tool_calls(choice.message),
        )

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        started = time.perf_counter()
        first_at: float | None = None
        parts: list[str] = []
        calls = ToolCallAssembler()
        finish: FinishReason = "stop"
        usage: Usage | None = None
        for chunk in self._chunks(request):
            if getattr(chunk, "usage", None) and chunk.usage.completion_tokens is not None:
                usage = usage_of(chunk.usage)
            if not chunk.choices:
                continue
            choice = chunk.choices[0]
            delta = choice.delta.content or ""
            if choice.finish_reason:
                finish = _finish(choice.finish_reason)
            if delta:
                first_at = first_at or time.perf_counter()
                parts.append(delta)
                yield TokenEvent(delta)
            for piece in _deltas(choice.delta):
                first_at = first_at or time.perf_counter()
                calls.add(piece)
                yield TokenEvent("", tool_call=piece)
        text = "".join(parts)
        tool_calls = calls.calls()
        if usage is None:  # the provider sent no usage: count what we can
            written = text + "".join(c.name + c.arguments for c in tool_calls)
            usage = Usage(
                self._litellm.token_counter(model=self._config.model,
                                            messages=request.openai_messages()),
                self._litellm.token_counter(model=self._config.model, text=written),
            )
        yield self._result(text, usage, finish, started, first_at, None, tool_calls)
