"""Assemble the router's run-time context from the settings (for the CLI and the API)."""

from __future__ import annotations

from agents.base import Backend
from retrieval.retriever import Retriever
from router.checks.sandbox import open_sandbox
from router.graph.context import RouterContext, token_counter
from router.settings import Settings


def build_context(settings: Settings, local: Backend, cloud: Backend, *,
                  with_retrieval: bool = False) -> RouterContext:
    """The context the graph runs with; the execution checks' sandbox is tried here, once."""
    retrieval = None
    if with_retrieval:
        retrieval = Retriever(settings.retrieval, settings.data_dir)
    return RouterContext(
        local=local,
        cloud=cloud,
        policies=settings.policies,
        local_window=settings.local.n_ctx,
        price_as=settings.cloud.price_as,
        count_tokens=token_counter(local),
        retrieval=retrieval,
        max_file_bytes=settings.retrieval.max_file_bytes,
        snippet_token_budget=settings.retrieval.snippet_token_budget,
        snippet_k=settings.retrieval.top_k,
        snippet_min_score=settings.retrieval.snippet_min_score,
        sandbox=open_sandbox(settings.checks),
    )
