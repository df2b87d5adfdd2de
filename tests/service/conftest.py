"""Fixtures of the agent API tests: a scripted cloud that answers with tool calls, and the
service in front of it (the in-process SmolLM2 as its local tier, which cannot call tools)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agents.cloud import CloudBackend
from agents.config import CloudConfig
from router.bench.scripted_cloud import FIX_NEW, FIX_OLD, FIX_PATH, Recorded, fix_one_line, scripted_cloud
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving


@pytest.fixture(scope="module")
def agent_cloud() -> Iterator[tuple[str, Recorded]]:
    """(base URL, what it received): fixes FIX_PATH with the tools it is offered."""
    with scripted_cloud(fix_one_line(FIX_PATH, FIX_OLD, FIX_NEW)) as found:
        yield found


@pytest.fixture(scope="module")
def agent_service(smol: Any, valkey_server: Any,
                  agent_cloud: tuple[str, Recorded]) -> Iterator[str]:
    settings = Settings(redis={"url": valkey_server.url, "prefix": "agent-apis"},
                        auth={"enabled": False}, tasks={"embedded_worker": False})
    backend = CloudBackend(CloudConfig(model="openai/scripted", api_base=agent_cloud[0],
                                       num_retries=0))
    app = create_app(settings, local=smol, cloud=backend, with_retrieval=False)
    with serving(app) as url:
        yield url
