"""The sandbox's verdicts, limits and isolation, on the real bubblewrap boundary."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from router.checks.config import ChecksConfig
from router.checks.sandbox import Sandbox, doctest_examples, open_sandbox

PROMPT = '''
def add(a: int, b: int) -> int:
    """Add two numbers.

    >>> add(1, 2)
    3
    >>> add(-1, 1)
    0
    """
'''
GOOD = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"


def examples() -> str:
    found = doctest_examples(PROMPT)
    assert found is not None
    return found


def test_doctest_examples_from_a_prompt() -> None:
    assert examples() == ">>> add(1, 2)\n3\n>>> add(-1, 1)\n0\n"
    assert doctest_examples("Write a function that adds two numbers.") is None


def test_multiline_examples_keep_their_continuations() -> None:
    prompt = "    >>> for i in range(2):\n    ...     print(i)\n    0\n    1\n"
    assert doctest_examples(prompt) == ">>> for i in range(2):\n...     print(i)\n0\n1\n"


def test_examples_in_a_fenced_prompt_do_not_swallow_the_fence() -> None:
    prompt = ('Complete this function:\n```python\ndef inc(x):\n    """Add one.\n'
              '    >>> inc(1)\n    2\n    """\n```\n')
    assert doctest_examples(prompt) == ">>> inc(1)\n2\n"


def test_passing_examples(sandbox: Sandbox) -> None:
    result = sandbox.run_examples(GOOD, examples(), timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (True, 2, 0)


def test_failing_examples_count_and_explain(sandbox: Sandbox) -> None:
    result = sandbox.run_examples(WRONG, examples(), timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 2, 2)
    assert "add(1, 2) | Expected: 3 | Got: -1" in result.detail


def test_examples_share_state_and_match_exceptions(sandbox: Sandbox) -> None:
    text = (">>> x = add(2, 2)\n>>> x\n4\n>>> add('a', 1)\n"
            "Traceback (most recent call last):\n    ...\nTypeError: can only concatenate str "
            '(not "int") to str\n')
    assert sandbox.run_examples(GOOD, text, timeout_s=5).passed is True


def test_printed_report_lines_do_not_count(sandbox: Sandbox) -> None:
    code = WRONG + 'print(\'{"loaded": true}\')\nprint(\'{"example": 0, "output": "2\\\\n"}\')\n'
    result = sandbox.run_examples(code, ">>> add(1, 1)\n2\n", timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 1, 1)


def test_records_written_to_the_report_descriptor_do_not_count(sandbox: Sandbox) -> None:
    forge = ("import os\nfor fd in range(3, 20):\n    try:\n"
             "        os.write(fd, b'{\"test\": \"test_add\", \"error\": null}\\n'"
             " + b'{\"passed\": true, \"ran\": 99, \"failed\": 0, \"detail\": \"x\"}\\n')\n"
             "    except OSError:\n        pass\n")
    result = sandbox.run_tests(WRONG + forge, "def test_add():\n    assert add(1, 2) == 3\n",
                               timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 1, 1)


def test_calling_a_report_function_does_not_count(sandbox: Sandbox) -> None:
    forge = "import __main__\n__main__.report(True, 99, 0, 'forged')\n"
    result = sandbox.run_tests(WRONG + forge, "def test_add():\n    assert add(1, 2) == 3\n",
                               timeout_s=5)
    assert result.passed is False and result.ran == 0
    assert "AttributeError" in result.detail


def test_a_run_that_exits_early_fails_the_rest(sandbox: Sandbox) -> None:
    tests = ("def test_one():\n    assert add(1, 2) == 3\n"
             "def test_two():\n    import os\n    os._exit(0)\n"
             "def test_three():\n    assert True\n")
    result = sandbox.run_tests(GOOD, tests, timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 3, 2)  # two and three
    assert result.detail.startswith("1/3 tests passed; test_two: not run")


def test_infinite_loop_times_out(sandbox: Sandbox) -> None:
    result = sandbox.run_examples("while True:\n    pass\n", examples(), timeout_s=1)
    assert result.passed is False
    assert "timed out" in result.detail


def test_syntax_error_and_crash_do_not_raise(sandbox: Sandbox) -> None:
    assert "SyntaxError" in sandbox.run_examples("def add(", examples(), timeout_s=5).detail
    crash = sandbox.run_examples("import ctypes\nctypes.string_at(0)\n", examples(), timeout_s=5)
    assert crash.passed is False and "SIGSEGV" in crash.detail


def test_writing_in_the_scratch_directory_is_allowed(sandbox: Sandbox) -> None:
    code = "with open('scratch.txt', 'w') as f:\n    f.write('ok')\n"
    result = sandbox.run_tests(code, "assert open('scratch.txt').read() == 'ok'\n", timeout_s=5)
    assert result.passed is True


def test_huge_allocation_fails(sandbox: Sandbox) -> None:
    result = sandbox.run_tests("x = bytearray(4 * 1024 ** 3)\n", "assert True\n", timeout_s=5)
    assert result.passed is False
    assert "MemoryError" in result.detail


def test_assert_based_tests(sandbox: Sandbox) -> None:
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"
    assert sandbox.run_tests(GOOD, tests, timeout_s=5).passed is True
    failing = sandbox.run_tests(WRONG, tests, timeout_s=5)
    assert (failing.passed, failing.ran, failing.failed) == (False, 1, 1)
    assert "AssertionError" in failing.detail


def test_test_functions_are_each_counted(sandbox: Sandbox) -> None:
    tests = ("def test_small():\n    assert add(1, 2) == 3\n"
             "def test_zero():\n    assert add(0, 0) == 1, 'zero'\n")
    result = sandbox.run_tests(GOOD, tests, timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 2, 1)
    assert "test_zero: AssertionError: zero" in result.detail


def test_tests_with_doctest_text_in_them_run_as_tests(sandbox: Sandbox) -> None:
    tests = 'def check(f):\n    """>>> f(1)\n    2\n    """\n    assert f(1) == 2\ncheck(lambda x: x + 1)\n'
    assert sandbox.run_tests("", tests, timeout_s=5).passed is True


def test_bad_timeout_is_the_callers_error(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        sandbox.run_tests(GOOD, "assert True\n", timeout_s=0)


# --- the boundary ---------------------------------------------------------------------------

def output_of(sandbox: Sandbox, expression: str) -> str:
    """What the sandboxed code sees: the failing example's ``Got:`` part."""
    result = sandbox.run_examples("import os, sys\n", f">>> {expression}\n'unlikely'\n",
                                  timeout_s=5)
    assert result.passed is False
    return result.detail.split("| Got: ", 1)[1]


def test_host_files_and_environment_are_not_visible(sandbox: Sandbox,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLCODE_CLOUD__API_KEY", "canary-7f3a")
    assert "FileNotFoundError" in output_of(sandbox, "open('/etc/passwd').read()")
    assert "FileNotFoundError" in output_of(sandbox, f"open('/proc/{os.getpid()}/environ').read()")
    assert "canary" not in output_of(sandbox, "dict(os.environ)")
    root = output_of(sandbox, "sorted(os.listdir('/'))")
    assert "etc" not in root and "proc" not in root and "home" not in root
    assert "FileNotFoundError" in output_of(sandbox, f"os.listdir({str(Path.cwd())!r})")


def test_the_server_cannot_be_signalled(sandbox: Sandbox) -> None:
    code = ("import ctypes, signal\nlibc = ctypes.CDLL(None)\n"
            f"RESULT = libc.kill({os.getpid()}, signal.SIGTERM)\n")
    result = sandbox.run_tests(code, "assert RESULT == -1\n", timeout_s=5)
    assert result.passed is True  # the kill failed: our PID does not exist in there


def test_native_socket_connect_cannot_reach_the_host(sandbox: Sandbox) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        port = server.getsockname()[1]
        code = ("import ctypes, socket, struct\nlibc = ctypes.CDLL(None)\n"
                "fd = libc.socket(2, 1, 0)\n"
                f"addr = struct.pack('<HH4s8x', 2, socket.htons({port}), bytes([127, 0, 0, 1]))\n"
                "RESULT = libc.connect(fd, addr, len(addr))\n")
        result = sandbox.run_tests(code, "assert RESULT == -1\n", timeout_s=5)
        with pytest.raises(TimeoutError):
            server.accept()
    assert result.passed is True


def test_native_file_writes_stay_in_the_sandbox(sandbox: Sandbox, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    code = ("import ctypes\nlibc = ctypes.CDLL(None)\nlibc.fopen.restype = ctypes.c_void_p\n"
            f"RESULT = libc.fopen({str(target).encode()!r}, b'w')\n")
    result = sandbox.run_tests(code, "assert not RESULT\n", timeout_s=5)
    assert result.passed is True
    assert not target.exists()


def test_a_native_shell_finds_no_shell_and_writes_nothing_on_the_host(sandbox: Sandbox,
                                                                       tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    code = ("import ctypes\nlibc = ctypes.CDLL(None)\n"
            f"STATUS = libc.system(b'touch {target}')\n")
    result = sandbox.run_tests(code, "assert STATUS != 0\n", timeout_s=5)
    assert result.passed is True, result.detail  # no shell in there
    assert not target.exists()


def test_a_detached_child_does_not_outlive_the_check(sandbox: Sandbox) -> None:
    marker = f"smallcode-detached-{os.getpid()}-{time.monotonic_ns()}"
    python = sandbox.python.encode()
    code = ("import ctypes, time\nlibc = ctypes.CDLL(None)\n"
            "if libc.fork() == 0:\n    libc.setsid()\n"
            f"    argv = (ctypes.c_char_p * 4)({python!r}, b'-c', "
            f"b'import time; time.sleep(60)  # {marker}', None)\n"
            f"    libc.execv({python!r}, argv)\n    libc._exit(1)\n"
            "time.sleep(0.5)\n")
    started = time.monotonic()
    sandbox.run_tests(code, "assert True\n", timeout_s=5)
    assert time.monotonic() - started < 5
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left.strip() == ""


def test_without_bubblewrap_checks_are_off_unless_allowed(caplog: pytest.LogCaptureFixture) -> None:
    missing = ChecksConfig(bwrap="no-such-bwrap-here")
    assert open_sandbox(missing) is None
    assert "execution checks are off" in caplog.text
    unisolated = open_sandbox(missing.model_copy(update={"allow_unisolated": True}))
    assert unisolated is not None and unisolated.mode == "unisolated"
    result = unisolated.run_examples(GOOD, examples(), timeout_s=5)
    assert (result.passed, result.ran) == (True, 2)
    assert "UNISOLATED" in caplog.text


def test_unisolated_mode_keeps_its_audit_hook() -> None:
    unisolated = Sandbox("unisolated", sys.executable)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        code = f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\n"
        result = unisolated.run_tests(code, "assert True\n", timeout_s=5)
    assert result.passed is False
    assert "socket.connect is not allowed" in result.detail


def two_packages(root: Path) -> tuple[Path, Path]:
    """``shown`` and its neighbour ``hidden``, side by side as in a site-packages."""
    for name in ("shown", "hidden"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f"NAME = {name!r}\n", encoding="utf-8")
    return root / "shown", root / "hidden"


@pytest.mark.parametrize("mode", ["bwrap", "unisolated"])
def test_named_packages_are_importable_and_nothing_else(sandbox: Sandbox, tmp_path: Path,
                                                        mode: str) -> None:
    shown, _ = two_packages(tmp_path)
    base = sandbox if mode == "bwrap" else Sandbox("unisolated", sys.executable)
    with_shown = base.with_packages(shown)
    assert with_shown.run_tests("import shown", "assert shown.NAME == 'shown'\n",
                                timeout_s=10).passed
    result = with_shown.run_tests("import hidden", "pass\n", timeout_s=10)
    assert result.passed is False and "No module named 'hidden'" in result.detail
    # by default the standard library only
    result = base.run_tests("import shown", "pass\n", timeout_s=10)
    assert result.passed is False and "No module named 'shown'" in result.detail


def test_named_packages_are_read_only(sandbox: Sandbox, tmp_path: Path) -> None:
    shown, _ = two_packages(tmp_path)
    code = ("import os, shown\n"
            "os.open(os.path.join(os.path.dirname(shown.__file__), 'x'), os.O_CREAT | os.O_WRONLY)\n")
    result = sandbox.with_packages(shown).run_tests(code, "pass\n", timeout_s=10)
    assert result.passed is False
    assert not (shown / "x").exists()


def test_an_installed_package_with_its_dependencies_runs(sandbox: Sandbox) -> None:
    import importlib.util

    found = [importlib.util.find_spec(name) for name in
             ("requests", "urllib3", "idna", "charset_normalizer", "certifi")]
    dirs = [next(iter(spec.submodule_search_locations or [])) for spec in found if spec]
    code = "from requests.utils import get_auth_from_url\n"
    tests = "assert get_auth_from_url('http://u:p@h/') == ('u', 'p')\n"
    assert sandbox.run_tests(code, tests, timeout_s=10).passed is False
    assert sandbox.with_packages(*dirs).run_tests(code, tests, timeout_s=20).passed


def test_packages_must_exist_and_not_clash(tmp_path: Path) -> None:
    unisolated = Sandbox("unisolated", sys.executable)
    with pytest.raises(ValueError, match="no package at"):
        unisolated.with_packages(tmp_path / "missing")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "pkg").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "pkg").mkdir()
    with pytest.raises(ValueError, match="share an import name"):
        unisolated.with_packages(tmp_path / "a" / "pkg", tmp_path / "b" / "pkg")


def test_the_code_runs_as_python_runs_it_not_with_the_harness_future_imports(
        sandbox: Sandbox) -> None:
    # an annotation naming a type never imported fails at definition, as in `python answer.py`
    code = "def cookies(jar: CookieJar) -> dict:\n    return {}\n"
    result = sandbox.run_tests(code, "assert cookies(None) == {}\n", timeout_s=10)
    assert result.passed is False and "NameError: name 'CookieJar' is not defined" in result.detail
    imported = "from __future__ import annotations\n" + code
    assert sandbox.run_tests(imported, "assert cookies(None) == {}\n", timeout_s=10).passed
