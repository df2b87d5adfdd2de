"""Run-time dependencies of the graph. They live here, never in the state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.base import Backend
from policies.config import PoliciesConfig, PolicyConfig
from router.checks.sandbox import Sandbox


class Retrieval(Protocol):
    """What the router needs from ``retrieval.retriever.Retriever``."""

    def search(self, repo: str, query: str, k: int | None = None, *,
               languages: Sequence[str] | None = None) -> list[Any]: ...
    def references(self, repo: str, symbol: str) -> Any: ...
    def modules(self, repo: str) -> dict[str, str]: ...
    def symbol_table(self, repo: str) -> dict[str, frozenset[str]]: ...
    def list_repos(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class CloudGate(Protocol):
    """Reserves cloud spend before a call (the service's budgets; :mod:`router.run.budget`;
    held through :mod:`router.graph.spend`). ``reserve`` returns a token, or None when the call
    would go over budget; ``settled_usd``: what its calls were charged so far."""

    retry_after_s: int
    settled_usd: float

    def reserve(self, usd: float) -> object | None: ...
    def settle(self, token: object, usd: float) -> None: ...
    def release(self, token: object) -> None: ...


@dataclass(frozen=True)
class RouterContext:
    local: Backend
    cloud: Backend
    policies: PoliciesConfig
    local_window: int
    price_as: str
    count_tokens: Callable[[str], int]
    retrieval: Retrieval | None = None
    max_file_bytes: int = 200_000
    snippet_token_budget: int = 1024
    snippet_k: int = 5
    snippet_min_score: float = 0.2
    sandbox: Sandbox | None = None  # None: execution checks cannot run here
    cloud_gate: CloudGate | None = None  # None: no budget to hold (the CLI, evaluations)
    # The caller's team policy, resolved once per request (router/run/caller.py); None: the
    # policy node resolves it from ``policies`` by the task's team (the CLI, evaluations).
    policy: PolicyConfig | None = None


def estimate_tokens(text: str) -> int:
    """Where no tokenizer is at hand (a server-mode tier): ~3.5 characters per token of code."""
    return max(1, round(len(text) / 3.5))


def token_counter(local: Backend) -> Callable[[str], int]:
    """Count with the local model's own tokenizer where the backend has one; else estimate."""
    if local.count_tokens("") is None:
        return estimate_tokens
    return lambda text: int(local.count_tokens(text) or 0)
