"""llama.cpp's own ``llama-server`` as the local tier for many users at once: parallel slots
with continuous batching, the prompt cache kept per slot (and in host memory for idle slots),
chunks of a cached prompt moved past an edit (``--cache-reuse``), n-gram speculative decoding,
the GGUF's own chat template (``--jinja``). The in-process model serves one request at a time
behind its lock.

``make llama-server`` (scripts/build-llama-server.sh) builds it from the llama.cpp source in the
pinned llama-cpp-python sdist; ``smallcode serve`` starts it (``local.mode`` auto or server with
no URL). Each feature is a ``local`` setting; a setting this binary does not know, a port that
is taken or a model it cannot load stops the start with one line naming the setting.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import IO

from agents.config import LocalConfig
from agents.errors import BackendMisconfigured, BackendUnavailable
from agents.standin import Standin, port_problem, wait_ready

HOST = "127.0.0.1"
LOG_LINES = 40  # of llama-server's own log, kept to say why a start failed


def cache_dir() -> Path:
    root = os.environ.get("SMALLCODE_LLAMA_SERVER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smallcode",
        "llama-server")
    return Path(root)


def find_binary(explicit: str | None) -> Path:
    """The llama-server to run: the configured one, one on PATH, or the newest built one."""
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BackendMisconfigured(f"local.llama_server {explicit} is not an executable file")
        return path
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = sorted(cache_dir().glob("*/bin/llama-server"), key=lambda p: p.stat().st_mtime)
    if built:
        return built[-1]
    raise BackendMisconfigured("llama-server is not built: run `make llama-server` (a few "
                               "minutes, once), or set local.server_url to a running server")


def flags(config: LocalConfig) -> list[tuple[str, list[str]]]:
    """The engine's features as (setting, its arguments), in command-line order. Each slot of
    ``server_parallel`` gets the full ``n_ctx`` window (``--ctx-size`` is shared by the slots),
    the window the router's context-fit check assumes."""
    cache_type = ["--cache-type-k", config.kv_cache_type]
    if config.kv_cache_type != "f16" and config.flash_attn:  # V is quantized only with FA
        cache_type += ["--cache-type-v", config.kv_cache_type]
    spec = [] if config.spec_type == "none" else [  # none: also for a build without it
        "--spec-type", config.spec_type, *draft_length(config)]
    return [
        ("server_parallel", ["--parallel", str(config.server_parallel),
                             "--ctx-size", str(config.n_ctx * config.server_parallel)]),
        ("n_threads", ["--threads", str(config.n_threads),
                       "--threads-batch", str(config.n_threads)]),
        ("n_batch", ["--batch-size", str(config.n_batch)]),
        ("jinja", ["--jinja" if config.jinja else "--no-jinja"]),
        ("cache_reuse", ["--cache-reuse", str(config.cache_reuse)]),
        ("spec_type", spec),
        ("flash_attn", ["--flash-attn", "on" if config.flash_attn else "off"]),
        ("kv_cache_type", cache_type),
    ]


# llama.cpp's own draft bounds of each n-gram type, and ngram-mod's shortest chain worth
# drafting (a lower bound lowers it too, or ngram-mod would never draft).
DEFAULT_DRAFT = {"ngram-simple": 48, "ngram-map-k": 48, "ngram-map-k4v": 48, "ngram-mod": 64}
NGRAM_MOD_N_MIN = 48


def draft_length(config: LocalConfig) -> list[str]:
    """The flag that bounds the speculative type's drafts. ``--spec-draft-n-max`` bounds only a
    draft model's; each n-gram type has its own (ngram-simple drafted 48 tokens whatever
    --spec-draft-n-max said). The bound is ``spec_draft_n_max`` (null: the type's default),
    cut so that every slot's sampled token and draft fit one batch: llama-server aborts when
    they do not (8 slots drafting ngram-mod's 64 tokens each need 520 rows of a 512 batch)."""
    default = DEFAULT_DRAFT.get(config.spec_type)
    if default is None:  # ngram-cache: no bound (it drafts at most 8)
        return []
    fits = max(1, config.n_batch // config.server_parallel - 1)
    wanted = config.spec_draft_n_max or default
    n_max = min(wanted, fits)
    if n_max == default:
        return []
    if config.spec_type == "ngram-mod":
        return ["--spec-ngram-mod-n-max", str(n_max),
                "--spec-ngram-mod-n-min", str(min(n_max, NGRAM_MOD_N_MIN))]
    return [f"--spec-{config.spec_type}-size-m", str(n_max)]


def command(binary: Path, config: LocalConfig, model_path: Path, *, alias: str,
            port: int) -> list[str]:
    """Its command line, run so that it stops when this process dies."""
    return [
        sys.executable, "-m", "agents.dies_with_parent", str(os.getpid()), str(binary),
        "--model", str(model_path), "--alias", alias, "--host", HOST, "--port", str(port),
        *(arg for _, args in flags(config) for arg in args), "--no-webui",
    ]


@lru_cache(maxsize=8)
def _help(binary: str, mtime: float) -> str:
    done = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    return done.stdout + done.stderr


def unknown_setting(binary: Path, config: LocalConfig) -> str | None:
    """One line naming the first setting whose flag (or value) ``binary`` does not know, from
    its ``--help``; None when it knows them all. A newer setting on an older build says so at
    start, not as a server that exits with its usage text."""
    text = _help(str(binary), binary.stat().st_mtime)
    known = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", text))
    for setting, args in flags(config):
        for arg in args:
            if arg.startswith("-") and arg not in known:
                return (f"local.{setting}: {binary} does not know {arg} (an older llama.cpp?): "
                        f"run `make llama-server`, or leave local.{setting} at its default")
    if config.spec_type != "none":
        listed = re.search(r"--spec-type\s+(\S+)", text)
        if listed and config.spec_type not in listed.group(1).split(","):
            return (f"local.spec_type: {binary} has no speculative type {config.spec_type!r} "
                    f"(it has {listed.group(1)})")
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class LlamaServer(Standin):
    """A running llama-server; the last lines of its log are kept (``log_tail``) and, unless
    quiet, also written to this process's stderr."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, *, quiet: bool) -> None:
        super().__init__(process, base_url)
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(process.stdout, quiet),
                                        name="llama-server-log", daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes], quiet: bool) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", errors="replace").rstrip()
                self.log_tail.append(line)
                if not quiet:
                    print(line, file=sys.stderr, flush=True)

    def stop(self) -> None:
        super().stop()
        self._reader.join(timeout=5)

    def why_it_failed(self, model_path: Path) -> str:
        """One line from its log that says why it exited before answering, naming the
        setting to change."""
        self._reader.join(timeout=5)  # the pipe closes when the process has gone
        lines = [line for line in self.log_tail if line.strip()]
        for line in lines:
            if "invalid argument" in line or "error while handling argument" in line:
                return f"local.llama_server: it refused its command line: {line.strip()}"
        for line in lines:
            if re.search(r"(error loading model|failed to load model|unable to load model)",
                         line, re.IGNORECASE):
                return (f"local.model: llama-server could not load {model_path}: "
                        f"{line.strip()}")
        for line in lines:
            if re.search(r"couldn't bind|bind.*fail|address already in use", line, re.I):
                return f"local.server_port: llama-server could not listen: {line.strip()}"
        last = lines[-1].strip() if lines else "no output"
        return (f"llama-server exited with code {self.process.returncode} before answering "
                f"(local.model {model_path.name}): {last}")


def start(config: LocalConfig, model_path: Path, *, alias: str, timeout_s: float = 120.0,
          quiet: bool = True) -> LlamaServer:
    """Start llama-server on ``local.server_port`` (empty: a free port) and wait until it
    answers. Raises BackendMisconfigured with one line naming the setting when it cannot."""
    binary = find_binary(config.llama_server)
    problem = unknown_setting(binary, config)
    if problem:
        raise BackendMisconfigured(problem)
    if not model_path.is_file():
        raise BackendMisconfigured(f"local.model: {model_path} is not a file")
    port = config.server_port or free_port()
    problem = port_problem(HOST, port)
    if problem:
        raise BackendMisconfigured(f"local.server_port {port}: llama-server cannot listen on "
                                   f"{HOST}:{port} ({problem}): choose another, or leave it "
                                   "empty for a free port")
    process = subprocess.Popen(command(binary, config, model_path, alias=alias, port=port),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               # its own process group: a terminal's Ctrl-C reaches serve,
                               # which stops it after the requests it serves are done
                               start_new_session=True)
    server = LlamaServer(process, f"http://{HOST}:{port}/v1", quiet=quiet)
    try:
        wait_ready(server.base_url, process, timeout_s, what="llama-server")
    except BackendUnavailable as exc:
        server.stop()
        if process.returncode is None or process.returncode < 0:
            raise  # it did not answer in time, or we stopped it
        raise BackendMisconfigured(server.why_it_failed(model_path)) from exc
    except BaseException:
        server.stop()
        raise
    return server
