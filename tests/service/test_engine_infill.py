"""Inline completion (``POST /v1/completions`` with a suffix) on the service whose local tier is
llama-server (``local.mode: server``): the middle is filled by its ``/infill`` with the real
0.5B coder, and the next keystroke in the same file says in its route record that most of its
prompt came from the server's cache (the file keeps its slot among several)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from agents import llama_server, model_store
from agents.cloud import CloudBackend
from agents.config import CloudConfig, LocalConfig
from agents.remote import RemoteLocalBackend
from router.service.app import create_app
from router.settings import Settings
from tests.helpers import serving

CODER = "qwen2.5-coder-0.5b"
UNUSED_CLOUD = CloudConfig(api_base="http://127.0.0.1:9/v1", num_retries=0)
PREFIX = "import math\n\n\n" + "".join(
    f"def scale_{i}(x: float) -> float:\n    return x * {i}\n\n\n" for i in range(60)) + (
    "def circle_area(radius: float) -> float:\n"
    '    """The area of a circle of the given radius."""\n'
    "    return math.pi * ")
SUFFIX = "\n\ndef main() -> None:\n    print(circle_area(2.0))\n"


def test_completions_fill_the_middle_on_llama_server_and_reuse_its_cache(
        model_cache: Path, valkey_server: Any) -> None:
    config = LocalConfig(model=CODER, n_ctx=2048, server_parallel=4)
    with llama_server.start(config, model_cache / model_store.MODELS[CODER].filename,
                            alias=CODER) as server:
        local = RemoteLocalBackend(config.model_copy(update={"mode": "server",
                                                             "server_url": server.base_url}))
        settings = Settings(redis={"url": valkey_server.url, "prefix": "engine-infill"},
                            auth={"enabled": False}, tasks={"embedded_worker": False})
        app = create_app(settings, local=local, cloud=CloudBackend(UNUSED_CLOUD),
                         with_retrieval=False)
        try:
            with serving(app) as url:
                def complete(prefix: str) -> dict[str, Any]:
                    reply = httpx.post(f"{url}/v1/completions", timeout=180, json={
                        "model": "auto", "prompt": prefix, "suffix": SUFFIX, "max_tokens": 16})
                    assert reply.status_code == 200, reply.text
                    return dict(reply.json())

                complete("import os\n\n\ndef home() -> str:\n")  # another file first
                first = complete(PREFIX)
                typed = complete(PREFIX + "radius * ")  # the next keystrokes
        finally:
            local.close()
    assert "radius" in first["choices"][0]["text"], first  # it filled this function's body
    route = typed["smallcode"]["route"]
    assert route["final"] == "local"
    assert route["cached_prompt_tokens"] > typed["usage"]["prompt_tokens"] * 0.6, route
