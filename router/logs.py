"""Log lines without stack traces: a record that carries an exception (``log.exception``,
``exc_info=True``, uvicorn's "Exception in ASGI application") is written as one line that
names each exception of its chain and where it was raised, never its message (it may hold a
prompt, a key or a path) nor its traceback."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from pathlib import Path
from types import TracebackType

_ROOT = Path(__file__).resolve().parents[1]
CHAIN = 3  # exceptions named, the raised one first, then what caused it


def where(exc: BaseException) -> str:
    """``exc``'s type and the innermost frame of this project's code it passed through (the
    innermost of any when none), e.g. ``RuntimeError at router/service/accounting.py:71``."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(_ROOT)
            and "site-packages" not in f.filename]
    if not frames:
        return type(exc).__name__
    frame = (ours or frames)[-1]
    path = Path(frame.filename).resolve()
    shown = path.relative_to(_ROOT) if path.is_relative_to(_ROOT) else Path(frame.filename).name
    return f"{type(exc).__name__} at {shown}:{frame.lineno}"


def chain(exc: BaseException) -> str:
    """``exc`` and what caused it, each by :func:`where`."""
    found: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(found) < CHAIN:
        found.append(where(current))
        current = current.__cause__ or (None if current.__suppress_context__
                                        else current.__context__)
    return " from ".join(found)


class OneLine(logging.Filter):
    """Put on a handler: its records' exceptions become a note on the one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage().rstrip()} ({chain(record.exc_info[1])})"
            record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def one_line_handlers(logger: logging.Logger | None = None) -> None:
    """Give each handler of ``logger`` (the root logger) the :class:`OneLine` filter, once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, OneLine) for f in handler.filters):
            handler.addFilter(OneLine())


def _uncaught(kind: type[BaseException], exc: BaseException,
              tb: TracebackType | None, where_: str) -> None:
    if issubclass(kind, KeyboardInterrupt):
        return
    logging.getLogger("smallcode").error("%s ended with an error", where_,
                                         exc_info=(kind, exc, tb))


def uncaught_in_one_line() -> None:
    """What no code caught, in the main thread or another, logged as one line (as above)
    rather than printed with its traceback by Python's own hooks."""
    sys.excepthook = lambda kind, exc, tb: _uncaught(kind, exc, tb, "the process")
    threading.excepthook = lambda args: _uncaught(
        args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback,
        f"thread {args.thread.name if args.thread else '?'}")
