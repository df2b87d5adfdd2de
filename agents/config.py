"""Settings sections for the model tiers. The router's settings tree composes them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalConfig(_Section):
    mode: Literal["inprocess", "server"] = Field(
        "inprocess", description="inprocess: llama.cpp in this process; server: a URL"
    )
    model: str = Field("qwen2.5-coder-0.5b", description="a model name or a GGUF file path")
    server_url: str | None = Field(
        None, description="OpenAI-compatible base URL (…/v1) when mode is server; empty: "
        "`smallcode serve` starts llama.cpp's llama-server itself"
    )
    server_parallel: int = Field(
        8, ge=1, le=256, description="parallel slots of the llama-server `smallcode serve` starts")
    server_port: int = Field(8091, ge=1, le=65535, description="port of that llama-server")
    llama_server: str | None = Field(
        None, description="the llama-server binary; empty: the one `make llama-server` built")
    n_ctx: int = Field(4096, ge=256, le=131072, description="context window in tokens")
    n_threads: int = Field(2, ge=1, le=512, description="CPU threads for decoding")
    n_batch: int = Field(512, ge=16, le=8192, description="prompt tokens evaluated per batch")
    flash_attn: bool = Field(False, description="use flash attention")
    kv_cache_type: Literal["f16", "q8_0"] = Field(
        "f16", description="KV cache type; q8_0 quantizes K, and V too when flash_attn is on"
    )
    prompt_lookup_tokens: int = Field(
        0, ge=0, le=64, description="prompt-lookup speculative decoding draft length; 0 = off"
    )
    top_logprobs: int = Field(2, ge=0, le=20, description="alternatives kept per token")
    fim_n_ctx: int = Field(
        4096, ge=0, le=131072, description="inline completion (/v1/completions) runs in a "
        "llama.cpp context of its own with this window, so chats in between keep its KV "
        "cache (about 12 KiB per token for the 0.5B coder); 0: share the chat context")
    timeout_s: float = Field(120.0, gt=0, le=3600, description="server mode request timeout")



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
        "claude-sonnet-4-5", description="litellm price-map model name used for costs"
    )
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
