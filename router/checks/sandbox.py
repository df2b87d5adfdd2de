"""Run an answer's Python code against the task's own examples or tests, behind an
operating-system boundary.

The checked code is hostile until shown otherwise: a prompt chooses its examples and, through
the model, much of its code. So it runs under bubblewrap (:func:`bwrap_command`):

- new user, PID, network, IPC, UTS and cgroup namespaces (``--unshare-all``): no network at
  all (not even the host's loopback), nothing on the host to signal, and when the sandbox's
  first process ends, the kernel kills every process left in its PID namespace, detached or
  not (``--die-with-parent`` ends it with the server, too);
- a filesystem of read-only binds of only what the interpreter needs (its binary, standard
  library and shared libraries), a private ``/dev``, a size-limited tmpfs as scratch; no host
  ``/proc``, ``/etc``, home, model cache or project; no installed package either, unless the
  caller names some (``Sandbox.with_packages``: each bound read-only, nothing else of its
  site-packages);
- an empty environment (``--clearenv``), a new session (no terminal), no capabilities, an
  unprivileged user, resource limits (CPU seconds, address space, file size, no core files)
  and a wall-clock timeout after which the whole process group is killed;
- inside, :mod:`router.checks.harness` runs the code, then each example or test, and reports
  what each *did*; an audit hook refuses sockets, processes, signals and writes outside the
  scratch directory (a second layer, and a clear message for accidents).

The verdict is the supervisor's (:func:`examples_verdict`, :func:`tests_verdict`): this side
parses the examples and test names, so the count is its own; it compares each example's
output with the expected one; records count only with the run's random token, which the checked
code is not given (a line written to a file descriptor is not a record). Code in the same
interpreter can always defeat its own checks with enough effort (hard-coding the expected
outputs does it too), so the worst it earns is its own answer kept local: it cannot add a
check, claim a test that does not exist, pass a run that crashed, or reach anything else.
What reaches the client is the verdict, the failing example and a bounded excerpt of its
output.

Where bubblewrap cannot run (not installed, user namespaces disabled), :func:`open_sandbox`
returns None and execution checks are off, unless the operator sets
``checks.allow_unisolated: true``; then the same harness runs as a plain subprocess (its own
session, an empty environment, a temporary directory, the limits and the audit hook), which
is a guard against accidents, not a boundary.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import doctest
import json
import logging
import math
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from router.checks.config import ChecksConfig

log = logging.getLogger("smallcode.checks")

HARNESS = Path(__file__).with_name("harness.py")
SITE = "/sandbox/site"  # where the packages a sandbox shows (``Sandbox.packages``) are bound
DETAIL_CHARS = 500
MAX_REPORT_BYTES = 1 << 20  # what the supervisor reads from the harness at most
FILE_SIZE_BYTES = 16 << 20
SANDBOX_UID = 65534  # nobody
_COMPARE = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

Mode = Literal["bwrap", "unisolated"]


@dataclass(frozen=True)
class CheckResult:
    """``ran``/``failed`` count doctest examples, or test functions (1 when the tests define
    none); ``detail`` is a short human explanation."""

    passed: bool
    ran: int
    failed: int
    detail: str


@dataclass(frozen=True)
class Sandbox:
    """Where checks run: ``mode`` says how they are isolated."""

    mode: Mode
    python: str
    config: ChecksConfig = field(default_factory=ChecksConfig)
    bwrap: str | None = None
    # Host directories of Python packages (or single-module files) the checked code may
    # import, each shown read-only under ``SITE``; none by default: the standard library only.
    packages: tuple[str, ...] = ()

    def with_packages(self, *paths: str | os.PathLike[str]) -> Sandbox:
        """This sandbox, with these packages importable by the checked code (read-only)."""
        found = tuple(os.path.realpath(p) for p in paths)
        for path in found:
            if not os.path.exists(path):
                raise ValueError(f"no package at {path}")
        names = [_import_name(p) for p in found]
        if len(set(names)) != len(names):
            raise ValueError(f"two packages share an import name: {sorted(names)}")
        return dataclasses.replace(self, packages=found)

    def run_examples(self, code: str, examples: str, *, timeout_s: float) -> CheckResult:
        """Run ``code``, then each doctest example of ``examples`` (text holding ``>>>``),
        compared with ELLIPSIS and NORMALIZE_WHITESPACE."""
        parsed = _parse_examples(examples)
        if isinstance(parsed, str):
            return CheckResult(False, 0, 0, parsed)
        job = {"kind": "examples", "examples": [e.source for e in parsed]}
        run = self._execute(code, job, timeout_s)
        return examples_verdict(parsed, run, excerpt_chars=self.config.excerpt_chars)

    def run_tests(self, code: str, tests: str, *, timeout_s: float) -> CheckResult:
        """Run ``code``, then the Python test code ``tests``: its module-level code (asserts,
        calls), then each top-level ``test_*`` function it defines."""
        try:
            names = test_names(tests)
        except SyntaxError as exc:
            return CheckResult(False, 1, 1, f"the tests cannot be parsed: {exc.msg} (line {exc.lineno})")
        run = self._execute(code, {"kind": "tests", "tests": tests, "test_names": names}, timeout_s)
        return tests_verdict(names, run, excerpt_chars=self.config.excerpt_chars)

    def run_calls(self, code: str, calls: Sequence[str], *,
                  timeout_s: float) -> list[str] | None:
        """What each call (a Python expression) does after ``code``: the repr of its value,
        or ``raises <ExceptionType>``; None when the code itself does not load or the run
        dies. Sampling agreement compares answers by these behaviours."""
        run = self._execute(code, {"kind": "examples", "examples": list(calls)}, timeout_s)
        loaded = _first(run.records, "loaded")
        if loaded is None or not loaded.get("loaded"):
            return None
        outcomes = {r["example"]: r for r in run.records if isinstance(r.get("example"), int)}
        behaviours = []
        for index in range(len(calls)):
            record = outcomes.get(index)
            if record is None:
                behaviours.append(f"not run: {run.failure or 'the run stopped'}")
            elif record.get("error") is not None:
                behaviours.append("raises " + _text(record["error"]).split(":", 1)[0].strip())
            else:
                behaviours.append(_text(record.get("output")).strip())
        return behaviours

    def _execute(self, code: str, job: dict[str, Any], timeout_s: float) -> Run:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        token = secrets.token_hex(16)
        job = {**job, "code": code, "token": token, "output_chars": max(self.config.excerpt_chars, 1),
               "limits": {"cpu_s": math.ceil(timeout_s) + 1,
                          "address_space": self.config.memory_bytes,
                          "file_size": FILE_SIZE_BYTES}}
        if self.mode == "bwrap":
            assert self.bwrap is not None
            command = bwrap_command(self.bwrap, self.python, self.config.scratch_bytes,
                                    packages=self.packages)
            payload = json.dumps({**job, "path": [SITE] if self.packages else []}).encode()
            return supervise(command, payload, token, timeout_s=timeout_s, cwd=None)
        with tempfile.TemporaryDirectory(prefix="smallcode-check-") as scratch, \
                tempfile.TemporaryDirectory(prefix="smallcode-site-") as site:
            for package in self.packages:  # links, so only these packages are on the path
                os.symlink(package, os.path.join(site, os.path.basename(package)))
            payload = json.dumps({**job, "path": [site] if self.packages else []}).encode()
            command = [self.python, "-I", "-S", "-B", str(HARNESS), scratch]
            return supervise(command, payload, token, timeout_s=timeout_s, cwd=scratch)


def open_sandbox(config: ChecksConfig) -> Sandbox | None:
    """The sandbox the checks can use here: bubblewrap when it works (tried once, for real),
    else a plain subprocess if the operator allowed it, else None (checks off)."""
    python = interpreter()
    bwrap = shutil.which(config.bwrap)
    if bwrap is not None:
        sandbox = Sandbox("bwrap", python, config, bwrap)
        trial = sandbox.run_examples("x = 41", ">>> x + 1\n42\n", timeout_s=30)
        if trial.passed:
            return sandbox
        log.warning("bubblewrap (%s) cannot isolate the execution checks here: %s", bwrap,
                    trial.detail)
    else:
        log.warning("bubblewrap (%s) is not installed: the execution checks cannot be isolated",
                    config.bwrap)
    if config.allow_unisolated:
        log.warning("execution checks run UNISOLATED (checks.allow_unisolated: true): hostile "
                    "code in a task can read files and the environment of this host")
        return Sandbox("unisolated", python, config)
    log.warning("execution checks are off: install bubblewrap (Debian: apt install bubblewrap) "
                "or set checks.allow_unisolated: true")
    return None


def isolation_mode(sandbox: Sandbox | None) -> str:
    """What ``/readyz`` and the start-up log say: bwrap, unisolated or off."""
    return "off" if sandbox is None else sandbox.mode


def interpreter() -> str:
    """The base Python interpreter (not a venv's link to it): the sandbox binds its real path."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = Path(sys.base_prefix) / "bin" / version
    return os.path.realpath(candidate if candidate.exists() else sys.executable)


def _import_name(path: str) -> str:
    """``.../site-packages/requests`` -> ``requests``; ``.../six.py`` -> ``six``."""
    name = os.path.basename(path)
    return name[:-3] if name.endswith(".py") else name


def bwrap_command(bwrap: str, python: str, scratch_bytes: int, *,
                  packages: Sequence[str] = ()) -> list[str]:
    """The bubblewrap command line that runs the harness on ``python`` (see the module's
    docstring for what each part is for); ``packages`` are bound read-only under ``SITE``."""
    command = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
               "--cap-drop", "ALL", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
               "--hostname", "sandbox"]
    for path in ("/usr/lib", "/usr/lib64", "/usr/lib32"):
        if os.path.isdir(path):
            command += ["--ro-bind", path, path]
    for path in ("/lib", "/lib64", "/lib32"):
        if os.path.islink(path):
            command += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            command += ["--ro-bind", path, path]
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    command += ["--ro-bind", python, python, "--ro-bind", stdlib, stdlib]
    site_packages = os.path.join(stdlib, "site-packages")
    if os.path.isdir(site_packages):  # the base install's packages: not needed, not shown
        command += ["--tmpfs", site_packages]
    libdir, library = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if libdir and library and os.path.isfile(os.path.join(libdir, library)):
        shared = os.path.realpath(os.path.join(libdir, library))
        command += ["--ro-bind", shared, shared]
        if os.path.join(libdir, library) != shared:
            command += ["--symlink", shared, os.path.join(libdir, library)]
    for package in packages:
        command += ["--ro-bind", package, f"{SITE}/{os.path.basename(package)}"]
    command += ["--dev", "/dev", "--size", str(scratch_bytes), "--tmpfs", "/tmp",
                "--ro-bind", str(HARNESS), "/sandbox/harness.py", "--chdir", "/tmp",
                python, "-I", "-S", "-B", "/sandbox/harness.py", "/tmp"]
    return command


@dataclass(frozen=True)
class Run:
    """What came back from one sandboxed run: the harness's records, and why it ended early
    (None when it finished)."""

    records: list[dict[str, Any]]
    failure: str | None


def supervise(command: Sequence[str], payload: bytes, token: str, *, timeout_s: float,
              cwd: str | None) -> Run:
    """Start ``command`` in its own session with an empty environment, hand it ``payload`` on
    stdin, read at most :data:`MAX_REPORT_BYTES` of its stdout within ``timeout_s``, and kill
    its whole process group when it overruns either. Records are the stdout lines that carry
    ``token``."""
    try:
        process = subprocess.Popen(
            list(command), cwd=cwd, env={}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError as exc:
        return Run([], f"could not start the sandbox: {exc.strerror}")
    assert process.stdin is not None and process.stdout is not None
    deadline = time.monotonic() + timeout_s
    out = bytearray()
    failure = None
    with selectors.DefaultSelector() as selector:
        os.set_blocking(process.stdin.fileno(), False)
        selector.register(process.stdin, selectors.EVENT_WRITE)
        selector.register(process.stdout, selectors.EVENT_READ)
        pending = memoryview(payload)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                failure = f"timed out after {timeout_s:g} s"
                break
            for key, _ in selector.select(left):
                if key.fileobj is process.stdin:
                    try:
                        pending = pending[os.write(process.stdin.fileno(), pending[:65536]):]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(process.stdin)
                        process.stdin.close()
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    selector.unregister(process.stdout)
                    continue
                out += chunk
                if len(out) > MAX_REPORT_BYTES:
                    failure = "the checked code wrote too much output"
                    selector.unregister(process.stdout)
                    break
            if failure:
                break
    if failure:
        _kill_group(process)
    try:
        returncode = process.wait(timeout=max(deadline - time.monotonic(), 0) + 1)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        returncode = process.wait()
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(OSError):
            stream.close()
    records = _records(bytes(out), token)
    if failure is None and returncode != 0:
        failure = _exit_reason(returncode)
    return Run(records, failure)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)


def _records(out: bytes, token: str) -> list[dict[str, Any]]:
    records = []
    for line in out.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("t") == token:
                records.append(record)
    return records


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}" + (" (CPU limit)" if name == "SIGXCPU" else "")
    if returncode > 128:  # bubblewrap reports its child's death by signal as 128 + n
        return _exit_reason(128 - returncode)
    return f"crashed (exit code {returncode})"


# --- the verdict: this side's own count and comparison --------------------------------------

def examples_verdict(examples: Sequence[doctest.Example], run: Run, *,
                     excerpt_chars: int = 200) -> CheckResult:
    """Each example passes when its output (or exception) matches what it expects."""
    loaded = _first(run.records, "loaded")
    if loaded is None or not loaded.get("loaded"):
        reason = f"the code failed: {_text(loaded.get('error'))}" if loaded else run.failure
        return CheckResult(False, 0, 0, _clip(reason or "the sandbox reported nothing"))
    checker = doctest.OutputChecker()
    outcomes = {r["example"]: r for r in run.records
                if isinstance(r.get("example"), int) and not isinstance(r.get("example"), bool)}
    first_failure = None
    failed = 0
    for index, example in enumerate(examples):
        record = outcomes.get(index)
        if record is None:
            ok, got = False, run.failure or "not run"
        else:
            output, error = _text(record.get("output")), record.get("error")
            if example.exc_msg is not None:
                ok = error is not None and checker.check_output(
                    example.exc_msg, _text(error) + "\n", _COMPARE)
            else:
                ok = error is None and checker.check_output(example.want, output, _COMPARE)
            got = f"{output}{_text(error)}" if error is not None else output
        if not ok:
            failed += 1
            if first_failure is None:
                expected = example.want.strip() or "(no output)"
                first_failure = (f"{example.source.strip()} | Expected: {expected} | "
                                 f"Got: {got.strip()[:excerpt_chars] or '(nothing)'}")
    ran = len(examples)
    detail = f"{ran - failed}/{ran} examples passed"
    if first_failure:
        detail += f"; first failure: {first_failure}"
    return CheckResult(failed == 0 and ran > 0, ran, failed, _clip(detail))


def tests_verdict(names: Sequence[str], run: Run, *, excerpt_chars: int = 200) -> CheckResult:
    """The module-level code must finish, then each named test function must return."""
    ran = max(len(names), 1)
    loaded = _first(run.records, "loaded")
    if loaded is None or not loaded.get("loaded"):
        reason = f"the code failed: {_text(loaded.get('error'))}" if loaded else run.failure
        return CheckResult(False, 0, 0, _clip(reason or "the sandbox reported nothing"))
    module = _first(run.records, "module")
    if module is None or module.get("module") is not None:
        why = _text(module.get("module"))[:excerpt_chars] if module else (run.failure or "not run")
        return CheckResult(False, ran, ran, _clip(f"the tests failed: {why}"))
    outcomes: dict[str, dict[str, Any]] = {}
    for record in run.records:
        if isinstance(record.get("test"), str):
            outcomes.setdefault(record["test"], record)
    failures = []
    for name in names:
        outcome = outcomes.get(name)
        if outcome is None:
            failures.append(f"{name}: {run.failure or 'not run'}")
        elif outcome.get("error") is not None:
            failures.append(f"{name}: {_text(outcome['error'])[:excerpt_chars]}")
    if not names:
        if run.failure:
            return CheckResult(False, 1, 1, _clip(f"the tests failed: {run.failure}"))
        return CheckResult(True, 1, 0, "the tests passed")
    detail = f"{ran - len(failures)}/{ran} tests passed" + (f"; {failures[0]}" if failures else "")
    return CheckResult(not failures, ran, len(failures), _clip(detail))


def test_names(tests: str) -> list[str]:
    """The top-level ``test_*`` functions of a test file, in order (raises SyntaxError)."""
    tree = ast.parse(tests)
    names = [node.name for node in tree.body
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
             and node.name.startswith("test_")]
    return list(dict.fromkeys(names))


def _first(records: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    return next((r for r in records if key in r), None)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clip(text: str) -> str:
    return text[:DETAIL_CHARS]


def _parse_examples(text: str) -> list[doctest.Example] | str:
    try:
        examples = doctest.DocTestParser().get_examples(text)
    except ValueError as exc:
        return f"the examples cannot be parsed: {exc}"
    return examples or "the examples cannot be parsed: no >>> example found"


# --- the examples of a task prompt ----------------------------------------------------------

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
