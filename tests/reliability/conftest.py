"""The reliability suite's shared parts: the real service (real Valkey, real uvicorn, SmolLM2 as
the local tier, a SmolLM2 stand-in as the cloud behind a recording proxy), the figures each
test reports (printed at the end of the run, whatever pytest's capture), and a scan of every
log line the service wrote for secrets, keys and prompt text.

Figures go to the terminal summary and, when ``RELIABILITY_FIGURES`` names a file, one JSON
line each into it (RELIABILITY.md's table is built from them).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from agents.base import Backend, Generation, GenerationRequest, TokenEvent
from agents.cloud import CloudBackend
from router.service.app import create_app
from router.settings import Settings
from router.store.names import Names
from tests.helpers import serving
from tests.recording_proxy import Recorder, recording_proxy

ADMIN = "admin-reliability-" + "z" * 16
_FIGURES: list[dict[str, Any]] = []
# Text that must never be in a log line: every key made here, planted secrets, prompt text.
CANARIES: set[str] = {ADMIN}
# A team key as router.store.apikeys makes it: sk-sc-<12 hex>-<token_urlsafe(32)>.
KEY_SHAPE = re.compile(r"sk-sc-[0-9a-f]{12}-[A-Za-z0-9_-]{20,}")


def figure(name: str, **values: Any) -> None:
    """Report one measured figure (what was done, how often, what was lost)."""
    line = {"figure": name, **values}
    _FIGURES.append(line)
    print(f"FIGURE {json.dumps(line)}")
    target = os.environ.get("RELIABILITY_FIGURES")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("reliability figures")
        for line in _FIGURES:
            terminalreporter.write_line(json.dumps(line))


class LogScan(logging.Handler):
    """Scans every formatted log line at INFO and above (the default level) as it is written,
    for the canaries known then and for anything shaped like an API key (a key is logged, if
    ever, before the test learns it). It keeps the count, the lines that leaked and the last
    ``keep`` lines, not every line: a 30-minute soak writes 200,000 access lines, and keeping
    them all grew this process (where the server runs) by tens of MiB."""

    def __init__(self, keep: int = 5000) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.leaked: list[str] = []
        self.recent: collections.deque[str] = collections.deque(maxlen=keep)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot format is still a line we must see
            line = f"{record.name}: {record.msg!r} {record.args!r}"
        self.count += 1
        self.recent.append(line)
        self.leaked.extend(leaks([line]))

    def all_leaks(self) -> list[str]:
        """What leaked, and what the kept lines hold of canaries learnt since."""
        return self.leaked + [line for line in leaks(list(self.recent)) if line not in self.leaked]


@pytest.fixture(scope="session")
def service_logs() -> Iterator[LogScan]:
    """Every log line of the reliability run, at the service's default level (INFO)."""
    handler = LogScan()
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # as the CLI sets it
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
    leaked = handler.all_leaks()
    figure("log lines scanned (whole reliability run)", lines=handler.count,
           canaries=len(CANARIES), leaked=len(leaked))
    assert not leaked, f"secrets, keys or prompt text in log lines: {leaked[:3]}"


def in_store(prefix: str, url: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(redis, Names(prefix), *args, **kwargs)`` against the real Valkey at ``url``, from
    synchronous test code."""
    async def go() -> Any:
        client = Redis.from_url(url)
        try:
            return await call(client, Names(prefix), *args, **kwargs)
        finally:
            await client.aclose()
    return asyncio.run(go())


def leaks(lines: list[str]) -> list[str]:
    """The log lines (cut to 200 characters) that hold a canary or an API key's shape."""
    return [line[:200] for line in lines
            if any(canary in line for canary in CANARIES) or KEY_SHAPE.search(line)]


@dataclass
class Service:
    url: str
    recorder: Recorder
    settings: Settings
    app: Any
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, team: str, **fields: Any) -> str:
        """A new team key's secret (made through the admin API)."""
        response = httpx.post(f"{self.url}/v1/keys", json={"team": team, **fields},
                              headers=auth(ADMIN), timeout=30)
        assert response.status_code == 201, response.text
        body = response.json()
        self.keys[body["key"]] = body["id"]
        CANARIES.add(body["key"])
        return str(body["key"])


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def make_settings(redis_url: str, cloud_url: str, prefix: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "redis": {"url": redis_url, "prefix": prefix},
        "local": {"n_ctx": 2048},
        "cloud": {"api_base": cloud_url, "n_ctx": 1024, "num_retries": 0, "timeout_s": 60},
        "tasks": {"embedded_worker": False},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings(admin_key=ADMIN, **base)  # type: ignore[arg-type]


@contextmanager
def running(local: Any, cloud_target: str, redis_url: str, *, prefix: str, proxy: bool = True,
            **sections: dict[str, Any]) -> Iterator[Service]:
    """The API on uvicorn with ``local`` as its local tier and litellm to ``cloud_target``
    (an OpenAI-compatible ``/v1`` URL) through a recording proxy (``proxy`` False: straight
    to it, and the recorder stays empty)."""
    with ExitStack() as stack:
        recorder, target = Recorder(), cloud_target
        if proxy:
            target, recorder = stack.enter_context(recording_proxy(cloud_target))
        settings = make_settings(redis_url, target, prefix, **sections)
        app = create_app(settings, local=local, cloud=CloudBackend(settings.cloud),
                         with_retrieval=False)
        url = stack.enter_context(serving(app))
        yield Service(url, recorder, settings, app)


@pytest.fixture(scope="module")
def service(smol: Any, smol_standin_url: str, valkey_server: Any,
            service_logs: LogScan) -> Iterator[Service]:
    """The service with its default policies; one per test module, a prefix of its own."""
    prefix = f"rel-{os.getpid()}-{id(object())}"
    with running(smol, smol_standin_url, valkey_server.url, prefix=prefix) as found:
        yield found


def post_chat(service: Service, body: dict[str, Any] | bytes, key: str,
              timeout: float = 120) -> httpx.Response:
    headers = {**auth(key), "content-type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{service.url}/v1/chat/completions", content=content, headers=headers,
                      timeout=timeout)


def clear_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is ``status`` with an OpenAI-shaped error whose message says something."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert len(error["message"]) > 10
    return dict(error)


class Watched(Backend):
    """A real tier passed through unchanged, keeping the text of every request it was sent:
    what the local model really saw."""

    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.supports_logprobs = inner.supports_logprobs
        self.seen: list[str] = []

    def __getattr__(self, name: str) -> Any:  # tokenize, count_prompt_tokens, ...
        return getattr(self._inner, name)

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    @property
    def n_ctx(self) -> int | None:
        return self._inner.n_ctx

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        self.seen.append("\n".join(m.content for m in request.messages))
        return self._inner.stream(request)
