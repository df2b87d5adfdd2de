"""The offline cloud stand-in, started when a command needs it and nothing answers.

`smallcode serve` starts the stand-in itself. A one-off command (`smallcode ask`, the evals)
that reaches the cloud on a loopback ``cloud.api_base`` where nothing answers starts it for the
command's duration instead of failing with a connection error: loading the 1.5B model is the
cost, said on stderr while it happens. A remote provider (no ``api_base``, or not loopback) is
used as configured, and so is a loopback cloud with ``standin.enabled: false``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import httpx

from agents import model_store, standin
from agents.base import Backend, Generation, GenerationRequest, TokenEvent, Wrapped
from router.backends import standin_alias
from router.settings import Settings

LOOPBACK = ("127.0.0.1", "localhost")


def say(line: str) -> None:
    """A command's own line on stderr (stdout stays the command's answer)."""
    print(f"smallcode: {line}", file=sys.stderr, flush=True)


def answers(api_base: str) -> bool:
    try:
        # A busy server (a stand-in decoding for someone else) answers late, not never.
        timeout = httpx.Timeout(60.0, connect=3.0)
        return httpx.get(f"{api_base.rstrip('/')}/models", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def needs_standin(settings: Settings) -> bool:
    """Whether the stand-in is enabled and the configured cloud is a loopback address where
    nothing answers."""
    base = settings.cloud.api_base
    host = urlparse(base).hostname if base else None
    return (settings.standin.enabled and bool(base) and host in LOOPBACK
            and not answers(str(base)))


@contextlib.contextmanager
def cloud_available(settings: Settings, log: Callable[[str], None]) -> Iterator[None]:
    """Start the stand-in on cloud.api_base's loopback port when nothing answers there; stop
    it at the end."""
    if not needs_standin(settings):
        yield
        return
    port = urlparse(settings.cloud.api_base).port or settings.standin.port
    config = settings.standin.model_copy(update={"port": port, "host": "127.0.0.1"})
    path = model_store.resolve(config.model, settings.models.cache_dir)
    log(f"starting the cloud stand-in ({path.name}) on port {port}: nothing answers at "
        f"{settings.cloud.api_base}; loading the model takes a while")
    with standin.start(config, path, alias=standin_alias(settings)):
        yield


class StartsStandin(Wrapped):
    """The cloud tier of a one-off command: its first call starts the stand-in when it must
    (a task that stays local never pays the model load); ``close`` stops it."""

    def __init__(self, inner: Backend, settings: Settings,
                 log: Callable[[str], None] = say) -> None:
        super().__init__(inner)
        self._settings = settings
        self._log = log
        self._stack = contextlib.ExitStack()
        self._checked = False

    def _ready(self) -> None:
        if not self._checked:
            self._checked = True
            self._stack.enter_context(cloud_available(self._settings, self._log))

    def generate(self, request: GenerationRequest) -> Generation:
        self._ready()
        return self.inner.generate(request)

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        self._ready()
        yield from self.inner.stream(request)

    def close(self) -> None:
        self._stack.close()
        self.inner.close()
