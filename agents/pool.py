"""A pool of local servers (``local.server_urls``: llama.cpp's llama-server or any other
OpenAI-compatible server, e.g. one per GPU host) behind the one backend interface.

- A session stays on the server that holds its prompt: requests whose conversation starts the
  same way (the same first messages; for inline completion, the same start of the file) go to
  the server they went to before, where the prompt is cached, while it is up.
- Other requests go to the least busy server (fewest requests in flight from this process).
- A server that fails a request before its first token is left out, and the request goes to
  the next one; a left-out server is asked its ``/health`` again after ``recheck_s`` and takes
  requests again once it answers. Only when every server is down does a request fail
  (``BackendUnavailable``: the router's ``local_unavailable``).
- ``members()`` describes each server (for ``/readyz`` and ``/metrics``).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agents.base import (
    Backend,
    Generation,
    GenerationRequest,
    InfillRequest,
    TokenEvent,
)
from agents.config import LocalConfig
from agents.errors import BackendUnavailable
from agents.remote import RemoteLocalBackend

log = logging.getLogger(__name__)
SESSIONS_KEPT = 10_000  # session → server entries remembered (least recently used dropped)
SESSION_MESSAGES = 2  # a conversation is known by its first messages (system + first user)
SESSION_PREFIX_CHARS = 512  # inline completion: by the start of the code before the cursor


def session_key(request: GenerationRequest) -> str | None:
    """The conversation a chat belongs to, by the messages it starts with; None for a
    request with no messages."""
    head = request.messages[:SESSION_MESSAGES]
    if not head:
        return None
    text = "\0".join(f"{m.role}\0{m.content}" for m in head)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def infill_key(request: InfillRequest) -> str:
    return hashlib.sha256(request.prefix[:SESSION_PREFIX_CHARS].encode()).hexdigest()[:32]


@dataclass(eq=False)
class Member:
    """One server of the pool and what this process knows of it."""

    backend: RemoteLocalBackend
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    down_until: float = 0.0  # monotonic time; 0: up
    problem: str | None = None

    @property
    def url(self) -> str:
        return self.backend.url


class LocalPool(Backend):
    supports_logprobs = True
    supports_fim = True

    def __init__(self, config: LocalConfig, *, recheck_s: float = 5.0) -> None:
        if not config.urls:
            raise BackendUnavailable("local.server_urls is empty: a pool needs a server")
        self._config = config
        self._recheck_s = recheck_s
        self._members = [
            Member(RemoteLocalBackend(config.model_copy(update={"server_url": url,
                                                                "server_urls": ()})))
            for url in config.urls]
        self._lock = threading.Lock()
        self._sessions: collections.OrderedDict[str, Member] = collections.OrderedDict()

    @property
    def model_name(self) -> str:
        return self._config.model

    @property
    def n_ctx(self) -> int:
        return self._config.n_ctx

    def members(self) -> list[dict[str, object]]:
        """Each server: its URL, whether it takes requests, requests in flight and served from
        this process, failures, and why it is left out."""
        now = time.monotonic()
        with self._lock:
            return [{"url": m.url, "up": m.down_until <= now, "in_flight": m.in_flight,
                     "requests": m.requests, "failures": m.failures,
                     "problem": m.problem if m.down_until > now else None}
                    for m in self._members]

    def unavailable(self) -> str | None:
        """Asks every server's ``/health``: None while any answers, else why none does."""
        problems = []
        for member in self._members:
            why = member.backend.unavailable()
            with self._lock:
                if why is None:
                    member.down_until, member.problem = 0.0, None
                else:
                    member.down_until = time.monotonic() + self._recheck_s
                    member.problem = why
            if why is not None:
                problems.append(why)
        if len(problems) < len(self._members):
            return None
        return f"none of the {len(self._members)} local servers answers: " + "; ".join(problems)

    def _mark_down(self, member: Member, why: str) -> None:
        with self._lock:
            member.failures += 1
            member.down_until = time.monotonic() + self._recheck_s
            member.problem = why
        log.warning("local server %s left out of the pool for %.0f s: %s", member.url,
                    self._recheck_s, why)

    def _recheck(self, now: float) -> None:
        """Ask ``/health`` of each left-out server whose wait is over (one caller at a time
        per server: the wait starts again before the question)."""
        due = []
        with self._lock:
            for member in self._members:
                if member.down_until and member.down_until <= now:
                    member.down_until = now + self._recheck_s
                    due.append(member)
        for member in due:
            why = member.backend.unavailable()
            with self._lock:
                if why is None:
                    member.down_until, member.problem = 0.0, None
                    log.info("local server %s is back in the pool", member.url)
                else:
                    member.problem = why

    def _choose(self, key: str | None, tried: set[int]) -> Member | None:
        self._recheck(time.monotonic())
        now = time.monotonic()
        with self._lock:
            up = [m for i, m in enumerate(self._members)
                  if i not in tried and m.down_until <= now]
            if not up:
                return None
            chosen = self._sessions.get(key) if key is not None else None
            if chosen is None or chosen not in up:
                chosen = min(up, key=lambda m: (m.in_flight, m.requests))
            if key is not None:
                self._sessions[key] = chosen
                self._sessions.move_to_end(key)
                while len(self._sessions) > SESSIONS_KEPT:
                    self._sessions.popitem(last=False)
            chosen.in_flight += 1
            chosen.requests += 1
            return chosen

    def _run(self, key: str | None,
             call: Callable[[RemoteLocalBackend], Iterator[TokenEvent | Generation]],
             ) -> Iterator[TokenEvent | Generation]:
        tried: set[int] = set()
        while True:
            member = self._choose(key, tried)
            if member is None:
                raise BackendUnavailable(self._all_down())
            tried.add(self._members.index(member))
            started = False
            try:
                for item in call(member.backend):
                    started = True
                    if isinstance(item, Generation):
                        item.extra["local_server"] = member.url
                    yield item
                return
            except BackendUnavailable as exc:
                self._mark_down(member, str(exc))
                if started:
                    raise  # part of the answer has gone out: it cannot start again elsewhere
            finally:
                with self._lock:
                    member.in_flight -= 1

    def _all_down(self) -> str:
        with self._lock:
            reasons = [f"{m.url} ({m.problem or 'left out'})" for m in self._members]
        return f"none of the {len(reasons)} local servers answers: " + "; ".join(reasons)

    def stream(self, request: GenerationRequest) -> Iterator[TokenEvent | Generation]:
        yield from self._run(session_key(request), lambda backend: backend.stream(request))

    def infill(self, request: InfillRequest) -> Iterator[TokenEvent | Generation]:
        yield from self._run(infill_key(request), lambda backend: backend.infill(request))

    def _any_up(self) -> RemoteLocalBackend:
        now = time.monotonic()
        with self._lock:
            up = [m for m in self._members if m.down_until <= now]
        return (up or self._members)[0].backend

    @property
    def supports_tools(self) -> bool:  # type: ignore[override]
        """As its servers (one pool serves one model with one set of settings)."""
        return self._any_up().supports_tools

    def count_tokens(self, text: str) -> int | None:
        return self._any_up().count_tokens(text)

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        return self._any_up().count_prompt_tokens(request)

    def close(self) -> None:
        for member in self._members:
            member.backend.close()
