"""The program that runs inside the sandbox: it executes an answer's code, then the task's
examples or tests, and reports what each one *did* (its output, its exception) as JSON lines
on its standard output. It judges nothing: the supervisor (:mod:`router.checks.sandbox`)
counts the examples itself and compares each output with what was expected, so nothing the
checked code prints, writes or calls can add a passing check or change the count.

Standard library only, and no import of this package: the sandbox sees the Python
installation and this one file, nothing else (plus the packages the supervisor binds, if
any). Run as ``python -I -S -B harness.py SCRATCH`` with the job as one JSON object on stdin::

    {"code": str, "kind": "examples" | "tests", "examples": [str], "tests": str,
     "test_names": [str], "limits": {"cpu_s": int, "address_space": int, "file_size": int},
     "output_chars": int, "token": str, "path": [str]}

``path``: directories put first on ``sys.path`` (where the supervisor bound the packages the
checked code may import; empty: the standard library only).

Records, one JSON object a line, each carrying the run's random ``token`` (the supervisor
drops lines without it, so output written straight to a file descriptor is not a record):
``{"loaded": true}`` or ``{"loaded": false, "error": ...}``; then ``{"example": i, "output":
..., "error": ...}`` per example, or ``{"module": ...}`` and ``{"test": name, "error": ...}``
per test function (``error`` null when it passed).
"""

from __future__ import annotations

import io
import json
import os
import resource
import sys
import traceback
from typing import Any

# Events the audit hook refuses. The operating-system boundary (no network, no host files, a
# fresh PID namespace) is what contains hostile code; this hook is a second layer and gives
# accidents of generated code a clear error message.
REFUSED = frozenset({
    "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
    "socket.gethostbyaddr", "socket.sendto", "subprocess.Popen", "os.system", "os.exec",
    "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn", "os.kill",
    "os.killpg",
})
PATH_EVENTS = frozenset({
    "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
    "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile",
})
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main() -> None:
    scratch = os.path.realpath(sys.argv[1])
    job = json.loads(sys.stdin.read())
    limits = job["limits"]
    _set_limits(limits["cpu_s"], limits["address_space"], limits["file_size"])
    report = _Reporter(os.dup(1), int(job["output_chars"]), str(job.pop("token")))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the answer's own output, at the file level, goes nowhere
        os.dup2(devnull, fd)
    sys.stdin = io.StringIO()
    sys.stderr = io.StringIO()
    captured = sys.stdout = io.StringIO()

    sys.path[:0] = [str(p) for p in job.get("path") or []]
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    sys.addaudithook(_guard(scratch))
    try:
        # dont_inherit: the code runs as Python runs it, not with this file's __future__
        # imports (its annotations would be lazy: a type used unimported would not fail)
        exec(compile(job["code"], "solution.py", "exec", dont_inherit=True), namespace)
    except BaseException:
        report.write({"loaded": False, "error": _error()})
        os._exit(0)
    report.write({"loaded": True})
    if job["kind"] == "examples":
        for index, source in enumerate(job["examples"]):
            captured.seek(0)
            captured.truncate()
            error = None
            try:
                exec(compile(source, "<example>", "single", dont_inherit=True), namespace)
            except BaseException:
                error = _error()
            report.write({"example": index, "output": captured.getvalue(), "error": error})
    else:
        try:
            exec(compile(job["tests"], "tests.py", "exec", dont_inherit=True), namespace)
        except BaseException:
            report.write({"module": _error()})
            os._exit(0)
        report.write({"module": None})
        for name in job["test_names"]:
            error = None
            try:
                namespace[name]()
            except BaseException:
                error = _error()
            report.write({"test": name, "error": error})
    os._exit(0)


class _Reporter:
    def __init__(self, fd: int, output_chars: int, token: str) -> None:
        self.fd, self.output_chars, self.token = fd, output_chars, token

    def write(self, record: dict[str, Any]) -> None:
        for key in ("output", "error", "module"):
            if isinstance(record.get(key), str):
                record[key] = record[key][: self.output_chars]
        data = (json.dumps({**record, "t": self.token}) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def _set_limits(cpu_s: int, address_space: int, file_size: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _error() -> str:
    """The exception as its last traceback line (``ValueError: bad``), as doctest shows it."""
    kind, value, _ = sys.exc_info()
    assert kind is not None
    return "".join(traceback.format_exception_only(kind, value)).strip()


def _guard(scratch: str):  # type: ignore[no-untyped-def]
    def inside(path: object) -> bool:
        if isinstance(path, int):
            return True
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        real = os.path.realpath(os.fspath(path))  # type: ignore[call-overload]
        return real == scratch or real.startswith(scratch + os.sep) or real == os.devnull

    def guard(event: str, args: tuple[Any, ...]) -> None:
        if event in REFUSED:
            raise PermissionError(f"{event} is not allowed in the sandbox")
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            if writing and path is not None and not inside(path):
                raise PermissionError(f"writing outside the sandbox is not allowed: {path!r}")
        elif event in PATH_EVENTS:
            for arg in args[:2]:
                if isinstance(arg, str | bytes | os.PathLike) and not inside(arg):
                    raise PermissionError(f"{event} outside the sandbox is not allowed: {arg!r}")

    return guard


if __name__ == "__main__":
    main()
