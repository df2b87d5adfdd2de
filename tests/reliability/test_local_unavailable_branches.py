"""The graph's branch for a local tier that does not answer, with scripted tiers (fast, no
model runs): the cloud where allowed (reason `local_unavailable`), else `LocalUnavailable` at
once, and the cloud never called. The real llama-server is killed in test_local_faults.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.base import Generation, GenerationRequest, TokenEvent
from agents.errors import BackendUnavailable, LocalUnavailable
from agents.scripted import Scripted
from policies.config import PoliciesConfig
from router.graph.context import RouterContext
from router.graph.graph import build_graph, run_task

CLOUD = "```python\ndef add(a, b):\n    return a + b\n```"
POLICIES = PoliciesConfig(teams={"vault": {"local_only": True},
                                 "strict": {"local_unavailable": "refuse"}})


class Gone(Scripted):
    """A local server that went away: the stream fails after ``after`` tokens."""

    def __init__(self, after: int = 0) -> None:
        super().__init__("never")
        self.after, self.calls = after, 0

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        self.calls += 1
        for _ in range(self.after):
            yield TokenEvent("x", None)
        raise BackendUnavailable("local server http://127.0.0.1:9/v1 did not answer")


def route(local: Scripted, cloud: Scripted, **task: Any) -> Any:
    context = RouterContext(local=local, cloud=cloud, policies=POLICIES, local_window=4096,
                            price_as="claude-sonnet-4-5", count_tokens=lambda t: len(t) // 4 + 1,
                            sandbox=None, cloud_gate=None)
    return run_task(build_graph(), {"prompt": "Write add(a, b).", "max_tokens": 64, **task},
                    context)


@pytest.mark.parametrize("after", [0, 3])  # gone before the first token, or mid-answer
def test_a_local_tier_that_fails_sends_the_task_to_the_cloud(after: int) -> None:
    local, cloud = Gone(after), Scripted(CLOUD)
    answer = route(local, cloud)
    record = answer.record
    assert (answer.text, record["final"], record["reason"]) == (CLOUD, "cloud", "local_unavailable")
    assert "did not answer" in record["detail"] and not record["escalated"]
    assert local.calls == 1 and len(cloud.requests) == 1


@pytest.mark.parametrize(("task", "why"), [
    ({"team": "vault"}, "privacy"), ({"route": "local"}, "local route"),
    ({"team": "strict"}, "refuse")])
def test_a_task_kept_local_fails_at_once_and_never_reaches_the_cloud(task: dict[str, Any],
                                                                     why: str) -> None:
    local, cloud = Gone(), Scripted(CLOUD)
    with pytest.raises(LocalUnavailable) as raised:
        route(local, cloud, **task)
    assert why in str(raised.value) and "try again" in str(raised.value)
    assert cloud.requests == []
