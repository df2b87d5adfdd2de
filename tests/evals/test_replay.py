"""The replaying backend: an identical request gets the recorded answer, token by token."""

from __future__ import annotations

from collections.abc import Generator

from agents.base import Generation, TokenEvent
from router.evals.replay import ReplayBackend
from tests.conftest import ask


def test_identical_request_replays_the_recorded_stream(smol) -> None:
    backend = ReplayBackend(smol, record_streams=True)
    request = ask("Write a Python function that adds two numbers.", max_tokens=12)
    first = backend.generate(request)
    assert backend.replays == 0 and first.logprobs
    items = list(backend.stream(request))
    final = items[-1]
    assert isinstance(final, Generation) and final is first
    events = [i for i in items if isinstance(i, TokenEvent)]
    assert "".join(e.text for e in events) == first.text
    assert [e.logprob for e in events if e.logprob] == list(first.logprobs)
    assert backend.replays == 1
    assert backend.replayed_ms == first.timings.total_ms


def test_partial_read_counts_its_share_and_other_requests_run_live(smol) -> None:
    backend = ReplayBackend(smol, record_streams=True)
    request = ask("Name a prime number.", max_tokens=8)
    first = backend.generate(request)
    stream = backend.stream(request)
    assert isinstance(stream, Generator)
    next(stream)
    stream.close()  # the graph stopped reading (an early abort)
    assert 0 < backend.replayed_ms < first.timings.total_ms
    other = backend.generate(ask("Name a colour.", max_tokens=4))
    assert other is not first and backend.replays == 1
    assert backend.count_prompt_tokens(request) == smol.count_prompt_tokens(request)
    backend.forget()
    assert backend.generate(request) is not first and backend.replays == 0
