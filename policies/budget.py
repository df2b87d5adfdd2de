"""Budget rules: which period a moment falls in, when it ends, and what a cloud call may cost
at worst. The arithmetic that must hold under concurrency (reserve, settle, release) lives
with the store (:mod:`router.store.budgets`); this module is pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

Period = Literal["day", "month"]


def period_key(period: Period, now: dt.datetime) -> str:
    """``2026-11-30`` for a day, ``2026-11`` for a month (UTC)."""
    now = now.astimezone(dt.UTC)
    return now.date().isoformat() if period == "day" else now.strftime("%Y-%m")


def period_end(period: Period, now: dt.datetime) -> dt.datetime:
    now = now.astimezone(dt.UTC)
    start = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC)
    if period == "day":
        return start + dt.timedelta(days=1)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def retry_after_s(period: Period, now: dt.datetime) -> int:
    """Seconds until the budget's period starts again (for ``Retry-After``)."""
    return max(1, int((period_end(period, now) - now.astimezone(dt.UTC)).total_seconds()) + 1)


def worst_case_usd(price: Callable[[int, int], float], prompt_tokens: int, max_tokens: int) -> float:
    """What a cloud call can cost at most: the whole prompt and every allowed output token."""
    return float(price(prompt_tokens, max_tokens))
