"""Shared fixtures: real models (pulled by `make models`), a real stand-in server, free ports.

Tests never read the developer's environment: SMALLCODE_* variables are removed for each test.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents import model_store
from agents.base import GenerationRequest, Message


def pytest_unconfigure(config: pytest.Config) -> None:
    """llama-cpp-python opens ``os.devnull`` twice when it is imported (``llama_cpp/_utils.py``:
    module globals its ``suppress_stdout_stderr`` writes to) and never closes them; collected at
    interpreter exit, under the suite's ``error`` filter, they printed "ResourceWarning: unclosed
    file <... name='/dev/null'>" after pytest's summary. A ``Llama.__del__`` later in the exit
    may still use them, so each is closed and replaced by one on a duplicate descriptor that the
    exit releases without a word (``closefd=False``)."""
    _close_litellm_clients()
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        old = getattr(utils, name, None)
        if old is not None and not old.closed:
            setattr(utils, name, open(os.dup(old.fileno()), "w", closefd=False))  # noqa: SIM115
            old.close()


def _close_litellm_clients() -> None:
    """litellm keeps the HTTP clients it makes per provider address in a module-level cache
    for an hour and never closes them; the tests' stand-ins are gone by the end, and the
    clients' pooled sockets, collected at interpreter exit, printed "ResourceWarning: unclosed
    <socket.socket ...>" after pytest's summary. Close the synchronous ones after the last
    test (the asynchronous ones hold no socket once their event loop has closed)."""
    litellm = sys.modules.get("litellm")
    if litellm is None:
        return
    cache = litellm.in_memory_llm_clients_cache
    for client in list(cache.cache_dict.values()):
        close = getattr(client, "close", None)
        if callable(close) and not inspect.iscoroutinefunction(close):
            close()
    cache.cache_dict.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SMALLCODE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    cache = model_store.default_cache_dir()
    missing = [n for n in model_store.MODELS if not model_store.is_present(n, cache)]
    if missing:
        pytest.fail(f"models missing from {cache}: run `make models` ({', '.join(missing)})")
    return cache


@pytest.fixture(scope="session")
def sandbox() -> object:
    """The execution checks' real sandbox (bubblewrap, installed by `make install`)."""
    from router.checks.config import ChecksConfig
    from router.checks.sandbox import open_sandbox

    found = open_sandbox(ChecksConfig())
    if found is None or found.mode != "bwrap":
        pytest.fail("bubblewrap cannot isolate the execution checks here: run `make install`")
    return found


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real Valkey (the embedded server `smallcode serve` starts), for the whole session."""
    from router.store.server import EmbeddedRedis

    with EmbeddedRedis(tmp_path_factory.mktemp("valkey")) as server:
        yield server


@pytest.fixture
def redis_url(valkey_server: object) -> Iterator[str]:
    """The session's Valkey, flushed before each test that uses it."""
    import redis

    url: str = valkey_server.url  # type: ignore[attr-defined]
    with redis.Redis.from_url(url) as client:
        client.flushall()
    yield url


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real three-primary Valkey cluster on loopback (``redis.cluster: true``), for the
    whole session."""
    from router.store.cluster import EmbeddedCluster

    with EmbeddedCluster(tmp_path_factory.mktemp("valkey-cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(valkey_cluster: object) -> Iterator[str]:
    """The session's cluster, every node flushed before each test that uses it."""
    valkey_cluster.flush()  # type: ignore[attr-defined]
    yield valkey_cluster.url  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Store:
    """A flushed Redis a test runs the service on: the session's one server, or its
    three-primary cluster (``redis.cluster: true``)."""

    url: str
    cluster: bool

    def redis(self, **fields: Any) -> dict[str, Any]:
        """The ``redis`` settings section (``prefix`` and the like in ``fields``)."""
        return {"url": self.url, "cluster": self.cluster, **fields}

    def tasks(self, **fields: Any) -> dict[str, Any]:
        """The ``tasks`` section (the same on both kinds)."""
        return dict(fields)

    def env(self) -> dict[str, str]:
        """The same as SMALLCODE_ variables, for a command run in a subprocess."""
        return {"SMALLCODE_REDIS__URL": self.url,
                "SMALLCODE_REDIS__CLUSTER": "true" if self.cluster else "false"}

    def client(self, **options: Any) -> Any:
        """An asyncio client, made as the service makes its own (``connect.client``)."""
        from router.store.config import RedisSettings
        from router.store.connect import client

        return client(RedisSettings(url=self.url, cluster=self.cluster), **options)

    def flush(self, valkey: Any) -> None:
        if self.cluster:
            valkey.flush()
        else:
            import redis

            with redis.Redis.from_url(self.url) as sync:
                sync.flushall()


def open_store(request: pytest.FixtureRequest, kind: str) -> Store:
    """``kind`` "server" or "cluster": the session's Valkey of that kind, flushed."""
    valkey = request.getfixturevalue("valkey_cluster" if kind == "cluster" else "valkey_server")
    found = Store(valkey.url, kind == "cluster")
    found.flush(valkey)
    return found


@pytest.fixture(params=["server", "cluster"])
def store(request: pytest.FixtureRequest) -> Store:
    """Each test that takes it runs twice: on one Valkey server and on a Valkey cluster."""
    return open_store(request, request.param)


def ask(prompt: str, **kwargs: object) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", prompt),), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def smol(model_cache: Path) -> Iterator[object]:
    """SmolLM2-135M, in-process: the fast model for most tests."""
    from agents.config import LocalConfig
    from agents.local import LocalBackend

    config = LocalConfig(model="smollm2-135m", n_ctx=2048)
    backend = LocalBackend(config, model_cache / model_store.MODELS["smollm2-135m"].filename,
                           name="smollm2-135m")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def coder(model_cache: Path) -> Iterator[object]:
    """Qwen2.5-Coder-0.5B, in-process: the real local model, where quality matters."""
    from agents.config import LocalConfig
    from agents.local import LocalBackend

    backend = LocalBackend(LocalConfig(), model_cache / model_store.MODELS[
        "qwen2.5-coder-0.5b"].filename, name="qwen2.5-coder-0.5b")
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def standin_url(model_cache: Path) -> Iterator[str]:
    """The real offline cloud stand-in (1.5B coder behind llama-cpp-python's server)."""
    from agents import standin
    from agents.config import StandinConfig

    config = StandinConfig(port=free_port(), n_ctx=4096)
    path = model_cache / model_store.MODELS["qwen2.5-coder-1.5b"].filename
    with standin.start(config, path, alias="qwen2.5-coder-1.5b") as server:
        yield server.base_url


@pytest.fixture(scope="session")
def smol_standin_url(model_cache: Path) -> Iterator[str]:
    """A fast stand-in: SmolLM2-135M behind llama-cpp-python's server, with a small window
    (1024 tokens) so that tests can overflow it cheaply."""
    from agents import standin
    from agents.config import StandinConfig

    config = StandinConfig(port=free_port(), n_ctx=1024, n_threads=1)
    path = model_cache / model_store.MODELS["smollm2-135m"].filename
    with standin.start(config, path, alias="qwen2.5-coder-1.5b") as server:
        yield server.base_url
