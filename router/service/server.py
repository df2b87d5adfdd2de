"""uvicorn, as `smallcode serve` runs the API: the first SIGTERM or Ctrl-C also tells the
streams in flight that the server is stopping (:mod:`router.run.stopping`). uvicorn stops
taking connections and waits for the open ones; the streams get ``server.shutdown_grace_s`` to
finish, then end themselves, recorded; a second Ctrl-C stops at once."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from router.run.stopping import Stopping
from router.settings import Settings

# uvicorn cancels what still runs this long after the grace period: a stream cut at its end
# needs a moment to stop its model and write its record.
BACKSTOP_S = 15


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopping: Stopping, grace_s: float) -> None:
        super().__init__(config)
        self.stopping, self.grace_s = stopping, grace_s
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self.loop is not None:
            self.stopping.begin(self.grace_s, self.loop)


def run(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C, stopping as the module says."""
    grace_s = settings.server.shutdown_grace_s
    # log_config None: uvicorn's lines go through the command's logging (one format, no
    # stack trace: router.logs), not handlers of its own.
    config = uvicorn.Config(app, host=settings.server.host, port=settings.server.port,
                            log_level=settings.log_level, access_log=False, log_config=None,
                            timeout_graceful_shutdown=math.ceil(grace_s) + BACKSTOP_S)
    with contextlib.suppress(KeyboardInterrupt):  # the signal uvicorn re-raises: stopped
        _Server(config, app.state.stopping, grace_s).run()
