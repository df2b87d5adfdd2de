from __future__ import annotations

import socket
from pathlib import Path

import pytest

from router.checks.sandbox import doctest_examples, run_python_checks

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


def test_passing_doctest() -> None:
    result = run_python_checks(GOOD, examples(), timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (True, 2, 0)


def test_failing_doctest_counts_and_explains() -> None:
    result = run_python_checks(WRONG, examples(), timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 2, 2)
    assert "Expected" in result.detail and "add(1, 2)" in result.detail


def test_answer_output_does_not_confuse_the_report() -> None:
    code = GOOD + 'print(\'{"passed": true, "ran": 9, "failed": 0, "detail": "x"}\')\n'
    result = run_python_checks(code, ">>> add(1, 1)\n3\n", timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 1, 1)


def test_infinite_loop_times_out() -> None:
    result = run_python_checks("while True:\n    pass\n", examples(), timeout_s=1)
    assert result.passed is False
    assert "timed out" in result.detail


def test_syntax_error_and_crash_do_not_raise() -> None:
    assert "SyntaxError" in run_python_checks("def add(", examples(), timeout_s=5).detail
    crash = run_python_checks("import ctypes\nctypes.string_at(0)\n", examples(), timeout_s=5)
    assert crash.passed is False and "SIGSEGV" in crash.detail


def test_writing_outside_the_temp_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    code = f"open({str(target)!r}, 'w').write('x')\n"
    result = run_python_checks(code, "assert True\n", timeout_s=5)
    assert result.passed is False
    assert "PermissionError" in result.detail
    assert not target.exists()


def test_writing_inside_the_temp_dir_is_allowed() -> None:
    code = "with open('scratch.txt', 'w') as f:\n    f.write('ok')\n"
    result = run_python_checks(code, "assert open('scratch.txt').read() == 'ok'\n", timeout_s=5)
    assert result.passed is True


def test_network_connect_is_refused() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\n"
        result = run_python_checks(code, "assert True\n", timeout_s=5)
    assert result.passed is False
    assert "socket.connect is not allowed" in result.detail


def test_huge_allocation_fails() -> None:
    result = run_python_checks("x = bytearray(4 * 1024 ** 3)\n", "assert True\n", timeout_s=5)
    assert result.passed is False
    assert "MemoryError" in result.detail


def test_environment_is_empty_but_path() -> None:
    code = "import os\nNAMES = sorted(os.environ)\n"
    result = run_python_checks(code, "assert 'HOME' not in NAMES and 'PATH' in NAMES\n",
                               timeout_s=5)
    assert result.passed is True


def test_assert_based_tests() -> None:
    tests = "assert add(1, 2) == 3\nassert add(2, 2) == 4\n"
    assert run_python_checks(GOOD, tests, timeout_s=5).passed is True
    failing = run_python_checks(WRONG, tests, timeout_s=5)
    assert (failing.passed, failing.ran, failing.failed) == (False, 1, 1)
    assert "AssertionError" in failing.detail


def test_test_functions_are_each_counted() -> None:
    tests = (
        "def test_small():\n    assert add(1, 2) == 3\n"
        "def test_zero():\n    assert add(0, 0) == 1, 'zero'\n"
    )
    result = run_python_checks(GOOD, tests, timeout_s=5)
    assert (result.passed, result.ran, result.failed) == (False, 2, 1)
    assert "test_zero" in result.detail


def test_bad_timeout_is_the_callers_error() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        run_python_checks(GOOD, "assert True\n", timeout_s=0)


def test_examples_in_a_fenced_prompt_do_not_swallow_the_fence() -> None:
    from router.checks.sandbox import doctest_examples

    prompt = ('Complete this function:\n```python\ndef inc(x):\n    """Add one.\n'
              '    >>> inc(1)\n    2\n    """\n```\n')
    examples = doctest_examples(prompt)
    assert examples == ">>> inc(1)\n2\n"
