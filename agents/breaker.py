"""A circuit breaker in front of a remote tier: after ``failures`` failed calls in a row it
opens, and calls fail at once (no connection, no timeout waited out) for ``reset_s``; then one
call is let through as a probe: its success closes the breaker, its failure opens it again.

Only failures that say the provider is away count (``BackendUnavailable``: refused connection,
timeout, 5xx, 429 after litellm's own retries); a request the provider refuses as invalid is the
request's fault, not the provider's. :class:`CircuitBreaker` keeps the state in the process
(each process learns on its own: a dead provider costs each of N processes ``failures`` calls,
then a probe per ``reset_s``); :class:`SharedBreaker` keeps it in Redis, one state for every
API process and worker (``failures`` calls in all, then one probe per ``reset_s`` in all).
Thread-safe: the graph calls the cloud from worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from redis.exceptions import RedisError

log = logging.getLogger("smallcode.cloud")

State = Literal["closed", "open", "half_open"]


class Breaker(Protocol):
    """What a backend asks of its breaker (both kinds below)."""

    @property
    def state(self) -> State: ...
    def retry_after_s(self) -> float: ...
    def allow(self) -> bool: ...
    def succeeded(self) -> None: ...
    def failed(self) -> None: ...
    def abandoned(self) -> None: ...
    def close(self) -> None: ...


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``failures`` 0 turns the breaker off (every call goes through)."""
        self.failures, self.reset_s, self._clock = failures, reset_s, clock
        self._lock = threading.Lock()
        self._failed = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_s:
            return "half_open"
        return "open"

    def retry_after_s(self) -> float:
        """Seconds until the next probe may run (0 when closed or due)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.reset_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a call may go out now. In the half-open state only one probe at a time."""
        if self.failures == 0:
            return True
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "half_open" and not self._probing:
                self._probing = True
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self._failed, self._opened_at, self._probing = 0, None, False

    def failed(self) -> None:
        if self.failures == 0:
            return
        with self._lock:
            self._failed += 1
            if self._probing or self._failed >= self.failures:
                self._opened_at = self._clock()  # (re)open: the probe failed, or too many did
            self._probing = False

    def abandoned(self) -> None:
        """A call that ended neither way (its caller went away): let the next probe run."""
        with self._lock:
            self._probing = False

    def close(self) -> None:
        """Nothing held."""


# --- shared through Redis -------------------------------------------------------------------

# One hash per breaker: failed (calls failed in a row), open_until and probe_until (Redis's own
# clock, in ms, so hosts whose clocks differ agree). Each step is one script on that one key.
_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# ARGV: probe lease (ms). Returns {verdict, wait ms}: 1 closed, 2 this call is the probe,
# 0 refused (open, or another process's probe is out).
_ALLOW = _NOW + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return {1, 0} end
if now < open_until then return {0, open_until - now} end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < probe_until then return {0, probe_until - now} end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
return {2, 0}
"""

# ARGV: failures that open it, reset (ms), 1 when this call was the probe, key TTL (ms).
_FAILED = _NOW + """
local failed = redis.call('HINCRBY', KEYS[1], 'failed', 1)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if ARGV[3] == '1' or (open_until == 0 and failed >= tonumber(ARGV[1])) then
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]), 'failed', 0)
  redis.call('HDEL', KEYS[1], 'probe_until')
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return failed
"""

# No ARGV: the probe's caller went away (no verdict): the next probe may go.
_ABANDONED = "redis.call('HDEL', KEYS[1], 'probe_until') return 1"

_STATE = _NOW + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return {0, 0} end
if now < open_until then return {1, open_until - now} end
return {2, 0}
"""

KEEP_MS = 86_400_000  # a breaker nobody touched for a day is forgotten (closed)
REDIS_BACKOFF_S = 5.0  # after a Redis error, the process's own breaker serves this long


class SharedBreaker:
    """The :class:`CircuitBreaker`'s rule with its state in one Redis key, shared by every
    API process and worker that names the same key: ``failures`` failed calls in a row, from
    any of them, open it for all; after ``reset_s`` exactly one call, from one of them, goes out
    as the probe (it holds the probe for ``probe_s``, the longest a call can take, so a probe
    whose process died frees it then); its success closes it for all, its failure opens it
    again for all.

    What a dead provider gets, across every replica: the calls that were already out when the
    breaker opened, at most ``failures`` plus those in flight (each process lets calls out
    while closed), then one call per ``reset_s`` (``probe_s`` when a probe's process died).
    A breaker per process lets each of N processes make ``failures`` calls, then N probes
    per ``reset_s``.

    ``redis`` is a synchronous client (a cluster's too: the state is one key), called from the
    threads that call the provider: one round trip before a call and one after it (the call
    itself takes a second or more). When Redis fails, the process's own breaker (``local``)
    decides for ``REDIS_BACKOFF_S``, so a Redis outage costs no cloud call a wait.
    """

    def __init__(self, redis: Any, key: str, failures: int, reset_s: float, *, probe_s: float,
                 local: CircuitBreaker | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis, self.key = redis, key
        self.failures, self.reset_s, self.probe_s = failures, reset_s, probe_s
        self.local = local or CircuitBreaker(failures, reset_s, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._probing = False  # this process holds the shared probe
        self._wait_s = 0.0
        self._down_until = 0.0
        self._scripts = {name: redis.register_script(text) for name, text in (
            ("allow", _ALLOW), ("failed", _FAILED), ("abandoned", _ABANDONED),
            ("state", _STATE))}

    def _run(self, name: str, *args: Any) -> Any:
        """One script, or None while Redis is away (the local breaker decides then)."""
        if self._clock() < self._down_until:
            return None
        try:
            return self._scripts[name](keys=[self.key], args=list(args))
        except RedisError as exc:
            self._down_until = self._clock() + REDIS_BACKOFF_S
            log.warning("the shared circuit breaker's Redis failed (%s): this process's own "
                        "breaker decides for %.0f s", type(exc).__name__, REDIS_BACKOFF_S)
            return None

    @property
    def state(self) -> State:
        found = self._run("state")
        if found is None:
            return self.local.state
        return ("closed", "open", "half_open")[int(found[0])]  # type: ignore[return-value]

    def retry_after_s(self) -> float:
        """Seconds until the next probe may run, as the last refusal here found it."""
        if self._clock() < self._down_until:
            return self.local.retry_after_s()
        return self._wait_s

    def allow(self) -> bool:
        if self.failures == 0:
            return True
        with self._lock:
            if self._probing:  # one probe at a time, and this process has it
                self._wait_s = self.probe_s
                return False
            found = self._run("allow", int(self.probe_s * 1000))
            if found is None:
                return self.local.allow()
            verdict, wait_ms = int(found[0]), int(found[1])
            self._wait_s = wait_ms / 1000
            if verdict == 2:
                self._probing = True
            return verdict != 0

    def succeeded(self) -> None:
        self.local.succeeded()
        with self._lock:
            self._probing = False
        if self._clock() >= self._down_until:
            try:
                self.redis.delete(self.key)
            except RedisError:
                self._down_until = self._clock() + REDIS_BACKOFF_S

    def failed(self) -> None:
        if self.failures == 0:
            return
        self.local.failed()
        with self._lock:
            probe, self._probing = self._probing, False
        self._run("failed", self.failures, int(self.reset_s * 1000), int(probe), KEEP_MS)

    def abandoned(self) -> None:
        self.local.abandoned()
        with self._lock:
            probe, self._probing = self._probing, False
        if probe:
            self._run("abandoned")

    def close(self) -> None:
        self.redis.close()
