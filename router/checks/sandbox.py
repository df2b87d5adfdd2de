"""Run an answer's Python code against the task's own examples, in a sandboxed subprocess.

What the sandbox does, and what it does not:

- a separate ``python -I -B`` process (isolated mode: no PYTHON* variables, no user site,
  no current directory on ``sys.path``; no bytecode written), with an empty environment
  except ``PATH``, stdin from /dev/null, in a fresh temporary directory as its cwd, which
  is deleted afterwards;
- a wall-clock timeout (the whole process group is killed) and resource limits set before
  it starts: CPU seconds, address space (1 GiB), file size (16 MiB), no core files;
- an audit hook (:func:`sys.addaudithook`, which Python code cannot remove) installed before
  the answer runs, refusing socket connects, binds and DNS look-ups, subprocesses and
  forks, and file writes, renames and deletions outside the temporary directory.

It is a guard against accidents of generated code (an infinite loop, a huge allocation, a
stray write or request), not a security boundary against hostile code: native code (ctypes,
extension modules) bypasses the audit hook, and reads are not restricted. Run the worker in
a container without network for that.
"""

from __future__ import annotations

import contextlib
import doctest
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ADDRESS_SPACE_BYTES = 1 << 30
FILE_SIZE_BYTES = 16 << 20
DETAIL_CHARS = 500


@dataclass(frozen=True)
class CheckResult:
    """``ran``/``failed`` count doctest examples, or test functions (see
    :func:`run_python_checks`); ``detail`` is a short human explanation."""

    passed: bool
    ran: int
    failed: int
    detail: str


def doctest_examples(prompt: str) -> str | None:
    """The ``>>>`` examples of a task prompt, with their expected outputs, as doctest text
    (one example per source, dedented); None when the prompt has none."""
    parser = doctest.DocTestParser()
    try:
        examples = parser.get_examples(prompt)
    except ValueError:  # inconsistent indentation in the prompt: read block by block
        examples = []
        for block in re.split(r"\n[ \t]*\n", prompt):
            try:
                examples.extend(parser.get_examples(_dedent_examples(block)))
            except ValueError:
                continue
    if not examples:
        return None
    lines = []
    for example in examples:
        source = example.source.rstrip("\n").split("\n")
        lines.append(">>> " + source[0])
        lines.extend("... " + line for line in source[1:])
        lines.extend(_want_lines(example.want))
    return "\n".join(lines) + "\n"


def _want_lines(want: str) -> list[str]:
    """The expected output, without what merely closes the example's surroundings and is
    caught after it: a docstring's closing quotes, a markdown code fence."""
    lines = want.rstrip("\n").split("\n") if want else []
    while lines and (lines[-1].strip() in ('"""', "'''") or lines[-1].strip().startswith("```")):
        lines.pop()
    return lines


def _dedent_examples(block: str) -> str:
    return "\n".join(line.strip() for line in block.splitlines())


def run_python_checks(code: str, tests: str, *, timeout_s: float) -> CheckResult:
    """Run ``code``, then ``tests`` against what it defined, in the sandbox.

    ``tests`` is doctest text (it holds ``>>>``; each example counts, compared with
    ELLIPSIS and NORMALIZE_WHITESPACE) or plain Python test code: its module-level code runs
    (asserts and calls there), then each ``test_*`` function it defines is called; ``ran``
    counts those functions, or 1 when there are none. Bad code (a syntax error, an
    exception, an infinite loop, a crash) gives ``passed=False`` and a short detail; this
    function raises only on a bad ``timeout_s``.
    """
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    with tempfile.TemporaryDirectory(prefix="smallcode-check-") as workdir:
        work = Path(workdir)
        (work / "solution.py").write_text(code, encoding="utf-8")
        (work / "tests.txt").write_text(tests, encoding="utf-8")
        (work / "runner.py").write_text(_RUNNER, encoding="utf-8")
        return _run(work, timeout_s)


def _run(work: Path, timeout_s: float) -> CheckResult:
    cpu_s = math.ceil(timeout_s) + 1
    # The runner sets its own resource limits first thing: a preexec_fn is not safe in a
    # process with threads (the API server runs checks from worker threads).
    limits = f"{cpu_s},{ADDRESS_SPACE_BYTES},{FILE_SIZE_BYTES}"
    command = [sys.executable, "-I", "-B", str(work / "runner.py"), str(work.resolve()), limits]
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    try:
        process = subprocess.Popen(
            command, cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        return CheckResult(False, 0, 0, f"could not start the sandbox: {exc}")
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.communicate()
        return CheckResult(False, 0, 0, f"timed out after {timeout_s:g} s")
    return _result(process.returncode, stdout, stderr)




def _kill_group(process: subprocess.Popen[bytes]) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def _result(returncode: int, stdout: bytes, stderr: bytes) -> CheckResult:
    last = stdout.decode("utf-8", "replace").strip().rsplit("\n", 1)[-1]
    try:
        report = json.loads(last)
        return CheckResult(
            bool(report["passed"]), int(report["ran"]), int(report["failed"]),
            str(report["detail"])[:DETAIL_CHARS],
        )
    except (ValueError, KeyError, TypeError):
        pass
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        detail = f"killed by {name}" + (" (CPU limit)" if name == "SIGXCPU" else "")
    else:
        tail = stderr.decode("utf-8", "replace").strip().rsplit("\n", 1)[-1]
        detail = f"crashed (exit code {returncode})" + (f": {tail}" if tail else "")
    return CheckResult(False, 0, 0, detail[:DETAIL_CHARS])


# The program the sandboxed interpreter runs. Its report is the last line of its stdout
# (the answer's own output goes to a buffer, not there).
_RUNNER = r'''
import resource, sys

_cpu_s, _address_space, _file_size = (int(x) for x in sys.argv[2].split(","))
resource.setrlimit(resource.RLIMIT_CPU, (_cpu_s, _cpu_s + 1))
resource.setrlimit(resource.RLIMIT_AS, (_address_space, _address_space))
resource.setrlimit(resource.RLIMIT_FSIZE, (_file_size, _file_size))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

import doctest, io, json, os, traceback

SANDBOX = os.path.realpath(sys.argv[1])
report_fd = os.dup(1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
captured = io.StringIO()
sys.stdout = captured

def report(passed, ran, failed, detail):
    os.write(report_fd, ("\n" + json.dumps(
        {"passed": passed, "ran": ran, "failed": failed, "detail": detail[:500]}
    ) + "\n").encode())
    os._exit(0)

code = open(os.path.join(SANDBOX, "solution.py"), encoding="utf-8").read()
tests = open(os.path.join(SANDBOX, "tests.txt"), encoding="utf-8").read()

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
               "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree",
               "shutil.move", "shutil.copyfile"}
REFUSED = {"socket.connect", "socket.bind", "socket.getaddrinfo", "socket.gethostbyname",
           "socket.gethostbyaddr", "socket.sendto", "subprocess.Popen", "os.system",
           "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "pty.spawn"}

def inside(path):
    if isinstance(path, int):
        return True
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    real = os.path.realpath(os.fspath(path))
    return real == SANDBOX or real.startswith(SANDBOX + os.sep) or real == os.devnull

def guard(event, args):
    if event in REFUSED:
        raise PermissionError(f"{event} is not allowed in the sandbox")
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
        if writing and path is not None and not inside(path):
            raise PermissionError(f"writing outside the sandbox is not allowed: {path}")
    elif event in PATH_EVENTS:
        for arg in args[:2]:
            if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                raise PermissionError(f"{event} outside the sandbox is not allowed: {arg}")

def short_error():
    kind, value, _ = sys.exc_info()
    text = f"{kind.__name__}: {value}" if str(value) else kind.__name__
    return text.strip()

namespace = {"__name__": "solution", "__builtins__": __builtins__}
sys.addaudithook(guard)
try:
    exec(compile(code, "solution.py", "exec"), namespace)
except BaseException:
    report(False, 0, 0, "the code failed: " + short_error())

if ">>>" in tests:
    parser = doctest.DocTestParser()
    try:
        test = parser.get_doctest(tests, namespace, "examples", "examples", 0)
    except ValueError as exc:
        report(False, 0, 0, f"the examples cannot be parsed: {exc}")
    out = io.StringIO()
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    result = runner.run(test, out=out.write, clear_globs=False)
    failures = out.getvalue()
    first = ""
    if failures:
        lines = [x for x in failures.splitlines() if x.strip() and not x.startswith("*****")]
        first = " | ".join(line.strip() for line in lines[1:8])
    detail = (f"{result.attempted - result.failed}/{result.attempted} examples passed"
              + (f"; first failure: {first}" if first else ""))
    report(result.failed == 0 and result.attempted > 0, result.attempted, result.failed,
           detail)

try:
    exec(compile(tests, "tests.py", "exec"), namespace)
except BaseException:
    report(False, 1, 1, "the tests failed: " + short_error())
functions = [name for name, value in namespace.items()
             if name.startswith("test_") and callable(value)
             and getattr(value, "__code__", None) is not None
             and value.__code__.co_filename == "tests.py"]
if not functions:
    report(True, 1, 0, "the tests passed")
failed = []
for name in functions:
    try:
        namespace[name]()
    except BaseException:
        failed.append(f"{name}: {short_error()}")
report(not failed, len(functions), len(failed),
       f"{len(functions) - len(failed)}/{len(functions)} tests passed"
       + (f"; {failed[0]}" if failed else ""))
'''
