"""A circuit breaker in front of a remote tier: after ``failures`` failed calls in a row it
opens, and calls fail at once (no connection, no timeout waited out) for ``reset_s``; then one
call is let through as a probe: its success closes the breaker, its failure opens it again.

Only failures that say the provider is away count (``BackendUnavailable``: refused connection,
timeout, 5xx, 429 after litellm's own retries); a request the provider refuses as invalid is the
request's fault, not the provider's. The state is per process (each API process and worker
learns on its own): a dead provider costs each process ``failures`` calls per ``reset_s``.
Thread-safe: the graph calls the cloud from worker threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


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
