"""Settings sections for the model tiers. The router's settings tree composes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalConfig(_Section):
    mode: Literal["auto", "inprocess", "server"] = Field(
        "auto", description="auto: `smallcode serve` runs llama.cpp's llama-server (parallel "
        "slots, the prompt cache kept per session), or llama.cpp in its own process where no "
        "llama-server is built (its start-up log says so); every other command runs llama.cpp "
        "in-process. inprocess: always in-process. server: the servers at server_urls (or "
        "server_url); none given: `smallcode serve` starts llama-server itself"
    )
    model: str = Field("qwen2.5-coder-0.5b", description="a model name or a GGUF file path")
    server_url: str | None = Field(
        None, description="OpenAI-compatible base URL (…/v1) when mode is server; empty: "
        "`smallcode serve` starts llama.cpp's llama-server itself"
    )
    server_urls: tuple[str, ...] = Field(
        (), description="several OpenAI-compatible base URLs (…/v1, llama.cpp's llama-server "
        "or others, e.g. one per GPU host) served as one pool when mode is server: a session "
        "stays on the server that holds its prompt, other requests go to the least busy, a "
        "server that does not answer is left out until its /health answers again")
    server_parallel: int = Field(
        8, ge=1, le=256, description="parallel slots of the llama-server `smallcode serve` "
        "starts (continuous batching); each slot gets an n_ctx window")
    server_port: int | None = Field(
        None, ge=1, le=65535, description="port of that llama-server on 127.0.0.1; empty: a "
        "free port")
    llama_server: str | None = Field(
        None, description="the llama-server binary; empty: the one `make llama-server` built")
    jinja: bool = Field(
        True, description="llama-server renders chats with the GGUF's own Jinja template "
        "(--jinja: the model's chat format and its tool-call parsing)")
    cache_reuse: int = Field(
        256, ge=0, le=65536, description="llama-server --cache-reuse: cached prompt chunks of "
        "at least this many tokens are moved past an edit (KV shifting) instead of evaluated "
        "again; 0: only the common prefix is reused")
    spec_type: Literal["none", "ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod",
                       "ngram-cache"] = Field(
        "ngram-mod", description="llama-server speculative decoding without a draft model "
        "(--spec-type): drafts copied from the prompt and earlier answers, verified by the "
        "model; ngram-mod drafts only long chains it has seen (an edit's unchanged lines) and "
        "kept greedy answers byte-identical where ngram-simple's short guesses did not "
        "(BENCHMARKS.md); none: off")
    spec_draft_n_max: int | None = Field(
        None, ge=1, le=256, description="most tokens drafted per step, passed as the speculative "
        "type's own bound (ngram-mod: --spec-ngram-mod-n-max; ngram-simple: "
        "--spec-ngram-simple-size-m); null: the type's default (ngram-mod 64, the n-gram "
        "types 48); ngram-cache has no such bound")
    n_ctx: int = Field(4096, ge=256, le=131072, description="context window in tokens")
    n_threads: int = Field(2, ge=1, le=512, description="CPU threads for decoding")
    n_batch: int = Field(512, ge=16, le=8192, description="prompt tokens evaluated per batch")
    flash_attn: bool = Field(False, description="use flash attention")
    kv_cache_type: Literal["f16", "q8_0"] = Field(
        "f16", description="KV cache type; q8_0 quantizes K, and V too when flash_attn is on"
    )
    prompt_lookup_tokens: int = Field(
        0, ge=0, le=64, description="in-process prompt-lookup speculative decoding draft "
        "length; 0 = off (llama-server: spec_type)"
    )
    top_logprobs: int = Field(2, ge=0, le=20, description="alternatives kept per token")
    fim_n_ctx: int = Field(
        4096, ge=0, le=131072, description="inline completion (/v1/completions) runs in a "
        "llama.cpp context of its own with this window, so chats in between keep its KV "
        "cache (about 12 KiB per token for the 0.5B coder); 0: share the chat context")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="server mode request timeout")

    @model_validator(mode="after")
    def _one_kind_of_url(self) -> LocalConfig:
        if self.server_url and self.server_urls:
            raise ValueError("local.server_url and local.server_urls are both set: list every "
                             "server in server_urls")
        if self.spec_draft_n_max is not None and self.spec_type == "ngram-cache":
            raise ValueError("local.spec_draft_n_max: spec_type ngram-cache has no bound on "
                             "its drafts; leave spec_draft_n_max null")
        return self

    @property
    def urls(self) -> tuple[str, ...]:
        """The local servers to use in server mode: ``server_urls``, or ``server_url``."""
        return self.server_urls or ((self.server_url,) if self.server_url else ())


class CloudConfig(_Section):
    model: str = Field(
        "openai/qwen2.5-coder-1.5b", description="any litellm model string"
    )
    api_base: str | None = Field(
        "http://127.0.0.1:8090/v1", description="provider base URL; null for the provider default"
    )
    # Only ever read from the environment (SMALLCODE_CLOUD__API_KEY); config files refuse it.
    api_key: SecretStr | None = Field(None, description="provider API key (environment only)")
    price_as: str = Field(
        "claude-sonnet-4-6", description="litellm price-map model name used for costs"
    )
    cache_control: Literal["auto", "on", "off"] = Field(
        "auto", description="pass a client's prompt-cache markers (Anthropic cache_control) to "
        "the provider: auto: where litellm's model map says the model caches prompts")
    timeout_s: float = Field(300.0, gt=0, le=3600, description="per-request timeout")
    num_retries: int = Field(2, ge=0, le=10, description="retries with backoff")
    fallbacks: list[str] = Field(default_factory=list, description="litellm models to try next")
    breaker_failures: int = Field(
        3, ge=0, le=100, description="failed calls in a row (after litellm's retries) that open "
        "the circuit breaker: calls then fail at once; 0: no breaker")
    breaker_reset_s: float = Field(
        30.0, gt=0, le=3600, description="how long an open breaker waits before one probe call")
    request_logprobs: bool = Field(False, description="ask the provider for logprobs")
    n_ctx: int | None = Field(
        None, ge=256, le=10_000_000,
        description="the cloud model's context window in tokens; null: from litellm's model "
        "map (or the stand-in's n_ctx when api_base is the stand-in)",
    )


class StandinConfig(_Section):
    enabled: bool = Field(True, description="start the offline cloud stand-in with `serve`")
    model: str = Field("qwen2.5-coder-1.5b", description="a model name or a GGUF file path")
    host: str = Field("127.0.0.1", description="loopback address to bind")
    port: int = Field(8090, ge=1, le=65535, description="port of the stand-in server")
    n_threads: int = Field(2, ge=1, le=512, description="CPU threads for the stand-in")
    n_ctx: int = Field(8192, ge=256, le=131072, description="stand-in context window")
    start_timeout_s: float = Field(180.0, gt=0, le=3600, description="wait for it to answer")
