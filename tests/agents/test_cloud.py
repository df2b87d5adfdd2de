"""The cloud tier through litellm, against the real stand-in server on loopback."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from agents.cloud import CloudBackend, check_price_as, context_window, price
from agents.config import CloudConfig
from agents.errors import (
    AgentError,
    BackendMisconfigured,
    BackendRateLimited,
    BackendTimeout,
    BackendUnavailable,
    PromptTooLong,
    RequestRefused,
)
from tests.conftest import ask, free_port
from tests.helpers import refusing_provider, silent_provider


def test_answers_through_litellm_and_prices_as_the_real_cloud_model(standin_url: str) -> None:
    backend = CloudBackend(CloudConfig(api_base=standin_url, price_as="claude-sonnet-4-5"))
    result = backend.generate(ask("Write a Python function add(a, b) returning a + b.",
                                  max_tokens=48))
    assert "def add" in result.text
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    # claude-sonnet-4-5 lists at $3 / $15 per million input / output tokens
    expected = result.usage.prompt_tokens * 3e-6 + result.usage.completion_tokens * 15e-6
    assert result.cost_usd == pytest.approx(expected)


def test_streaming_through_litellm_gives_the_same_text(standin_url: str) -> None:
    backend = CloudBackend(CloudConfig(api_base=standin_url))
    request = ask("Name three sorting algorithms, comma separated.", max_tokens=24)
    whole = backend.generate(request)
    items = list(backend.stream(request))
    assert items[-1].text == whole.text
    assert "".join(i.text for i in items[:-1]) == whole.text
    assert items[-1].cost_usd > 0


def test_litellm_runs_no_logging_work_after_a_call(standin_url: str) -> None:
    """litellm's post-call logging (payloads and success handlers for callbacks the router
    does not register) is dropped, not run in its pool beside the next request: its pool
    never starts a thread. A litellm that stops reading its cap would fail here."""
    backend = CloudBackend(CloudConfig(api_base=standin_url, num_retries=0))
    request = ask("Say hi.", max_tokens=4)
    assert backend.generate(request).usage.completion_tokens > 0
    assert list(backend.stream(request))[-1].cost_usd > 0  # priced by the router all the same
    from litellm.litellm_core_utils.thread_pool_executor import executor
    assert executor._max_pending_tasks == 0
    assert not [t.name for t in threading.enumerate() if t.name.startswith("litellm-logging")]


def test_overlapping_streams_are_each_answered_whole(smol_standin_url: str) -> None:
    """Three streamed calls at once (workers do this): the stand-in queues them, as a provider
    would, instead of cutting the running one short (llama-cpp-python's server's default
    ``interrupt_requests``, which read as a failing provider and opened the breaker)."""
    backend = CloudBackend(CloudConfig(api_base=smol_standin_url, num_retries=0))
    request = ask("Write a short story about a cat.", max_tokens=40)
    with ThreadPoolExecutor(3) as pool:
        streams = [pool.submit(lambda: list(backend.stream(request))) for _ in range(3)]
        results = [future.result(timeout=120) for future in streams]  # none raised
    for items in results:
        assert items[-1].finish_reason == "length"  # all 40 tokens, none cut short
        assert "".join(i.text for i in items[:-1]) == items[-1].text
    # Greedy, so the same whole answer, with one caveat: the first call the server takes
    # evaluates the prompt in one batch, the later ones reuse its cached prefix and evaluate
    # only the last prompt token, and on some CPUs (AMD EPYC here) the two sums round apart
    # enough to change a close greedy pick. The queued (cached) calls are computed alike, so
    # at least two answers agree; calls that cut into each other would all differ.
    texts = Counter(items[-1].text for items in results)
    assert max(texts.values()) >= 2, texts
    assert backend.breaker.state == "closed"


def test_price_map_figures() -> None:
    assert price("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(2.5 + 10.0)
    assert price("claude-sonnet-4-5", 1_000_000, 0) == pytest.approx(3.0)


@pytest.mark.parametrize("name", ["claude-opus-4-1", "my-house-model"])
def test_an_unpriced_price_as_is_refused(name: str) -> None:
    with pytest.raises(AgentError, match=f"price_as='{name}' is not in litellm's price map"):
        check_price_as(name)


def test_stand_in_not_running_says_what_to_do() -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = CloudBackend(CloudConfig(api_base=dead, num_retries=0, timeout_s=5))
    with pytest.raises(BackendUnavailable, match="smallcode standin"):
        backend.generate(ask("hello", max_tokens=4))


@pytest.mark.parametrize(
    ("status", "kind", "error", "advice"),
    [
        (401, "invalid_api_key", BackendMisconfigured, "SMALLCODE_CLOUD__API_KEY"),
        (429, "rate_limit_exceeded", BackendRateLimited, "retry later"),
        (400, "invalid_request_error", RequestRefused, "parameters"),
    ],
)
def test_provider_refusals_are_told_apart(status: int, kind: str, error: type, advice: str) -> None:
    with refusing_provider(status, kind) as url:
        backend = CloudBackend(CloudConfig(api_base=url, num_retries=0, timeout_s=20))
        with pytest.raises(error, match=advice) as info:
            backend.generate(ask("hello", max_tokens=4))
    assert "smallcode standin" not in str(info.value)  # not the advice for a dead stand-in
    assert f"refused ({kind})" not in str(info.value)  # the provider's text is not copied


def test_a_provider_that_never_answers_is_a_timeout() -> None:
    with silent_provider() as url:
        backend = CloudBackend(CloudConfig(api_base=url, num_retries=0, timeout_s=1))
        with pytest.raises(BackendTimeout, match=r"cloud.timeout_s=1 s"):
            backend.generate(ask("hello", max_tokens=4))


def test_a_prompt_over_the_providers_window_is_prompt_too_long(smol_standin_url: str) -> None:
    backend = CloudBackend(CloudConfig(api_base=smol_standin_url, num_retries=0))
    with pytest.raises(PromptTooLong, match="cloud model's context window") as info:
        backend.generate(ask("word " * 1500, max_tokens=4))  # the stand-in's window is 1024
    assert "api_base" not in str(info.value)


def test_the_cloud_window_comes_from_the_setting_or_litellms_model_map() -> None:
    assert context_window(CloudConfig(n_ctx=8192)) == 8192
    assert context_window(CloudConfig(model="anthropic/claude-sonnet-4-5", api_base=None)) == 200_000
    assert context_window(CloudConfig(model="openai/house-model")) is None  # unknown: not guessed


def test_a_retired_price_as_is_priced_but_the_log_says_so_and_names_its_successor(
        caplog: pytest.LogCaptureFixture) -> None:
    import datetime as dt

    with caplog.at_level("WARNING", logger="smallcode.cloud"):
        check_price_as("claude-sonnet-4-5", today=dt.date(2026, 12, 7))
        check_price_as("claude-sonnet-4-6", today=dt.date(2026, 12, 7))  # the shipped default
        check_price_as("claude-sonnet-4-5", today=dt.date(2026, 11, 1))  # not retired yet
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1, warned
    assert "claude-sonnet-4-5 was retired by its provider on 2026-11-30" in warned[0]
    assert "its successor is claude-sonnet-5-5" in warned[0]
    assert price("claude-sonnet-4-6", 1_000_000, 0) == price("claude-sonnet-4-5", 1_000_000, 0)
