"""The topology's cloud: the scripted OpenAI-compatible server (:mod:`router.bench.scripted_cloud`)
in a process of its own, as a provider is, answering every chat at once with one short
function. ``python -m tests.topology.cloud`` prints its ``/v1`` URL on one line, then serves
until SIGTERM."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Mapping
from typing import Any

from router.bench.scripted_cloud import Answer, scripted_cloud

ANSWER = "```python\ndef add(a, b):\n    return a + b\n```"


def answer(_: Mapping[str, Any]) -> Answer:
    return {"content": ANSWER}


def main() -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with scripted_cloud(answer) as (url, recorded):
        print(url, flush=True)
        stop.wait()
        print(f"answered {len(recorded.bodies)} requests", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
