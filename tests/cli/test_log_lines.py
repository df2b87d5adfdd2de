"""Log lines never carry a stack trace or an exception's message: a record with an exception
(``log.exception``, ``exc_info=True``, uvicorn's "Exception in ASGI application") is one line
naming each exception of its chain and where it was raised, as `smallcode` logs it."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO

LOGS = '''
import logging
from router.cli.main import configure_logging

configure_logging()

def failing():
    try:
        raise ConnectionError("canary-1f2e sk-sc-secret")
    except ConnectionError as exc:
        raise RuntimeError("canary-1f2e in a message") from exc

try:
    failing()
except RuntimeError:
    logging.getLogger("uvicorn.error").exception("Exception in ASGI application\\n")
    logging.getLogger("smallcode.worker").warning("task %s: its try ended", "t1", exc_info=True)
logging.getLogger("smallcode.api").info("plain %d", 3)

import threading

def thread_fails():
    raise ValueError("canary-1f2e in a thread")

thread = threading.Thread(target=thread_fails, name="pump")
thread.start()
thread.join()
raise KeyError("canary-1f2e uncaught")
'''


def test_an_exception_in_a_log_record_is_one_line_without_its_message() -> None:
    ran = subprocess.run([sys.executable, "-c", LOGS], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=False)
    assert ran.returncode == 1  # the uncaught error still ends the process as a failure
    lines = ran.stderr.splitlines()
    assert len(lines) == 5, ran.stderr
    assert "Traceback" not in ran.stderr and "canary-1f2e" not in ran.stderr
    assert lines[0].endswith("ERROR uvicorn.error: Exception in ASGI application "
                             "(RuntimeError at <string>:11 from ConnectionError at <string>:9)")
    assert lines[1].endswith("WARNING smallcode.worker: task t1: its try ended "
                             "(RuntimeError at <string>:11 from ConnectionError at <string>:9)")
    assert lines[2].endswith("INFO smallcode.api: plain 3")
    assert lines[3].endswith("ERROR smallcode: thread pump ended with an error "
                             "(ValueError at <string>:23)")
    assert lines[4].endswith("ERROR smallcode: the process ended with an error "
                             "(KeyError at <string>:28)")
