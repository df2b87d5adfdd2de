"""The names check: undefined names and unresolved imports fail an answer (statically)."""

from __future__ import annotations

from router.checks.answer import check_answer
from router.checks.names import problems

COPIED_BODY = '''```python
def basic_header(username, password):
    token = b64encode(f"{username}:{password}".encode()).decode()
    return "Basic " + token
```'''

IMPORTED = '''```python
from base64 import b64encode


def basic_header(username, password):
    return "Basic " + b64encode(f"{username}:{password}".encode()).decode()
```'''


def test_a_copied_body_without_its_import_fails_the_checks() -> None:
    checks = check_answer("Write `basic_header(username, password)`.", [], COPIED_BODY, None)
    assert checks["names"] == ["undefined name 'b64encode' (line 2): import or define it"]
    run = checks["execution"]["runs"][-1]
    assert checks["execution"]["passed"] is False and run["kind"] == "names"
    assert "b64encode" in run["detail"]


def test_the_same_code_with_its_import_passes() -> None:
    checks = check_answer("Write `basic_header(username, password)`.", [], IMPORTED, None)
    assert "names" not in checks and "execution" not in checks


def test_invented_import_paths_are_named() -> None:
    code = ("from requests.api import _basic_auth_str\nfrom requests.auth import HTTPBasicAuth\n"
            "import requests.nowhere\nimport my_own_project\n\n\n"
            "def f():\n    return _basic_auth_str, HTTPBasicAuth\n")
    assert problems(code) == [
        "`from requests.api import _basic_auth_str`: 'requests.api' has no '_basic_auth_str'",
        "`import requests.nowhere`: no module named 'requests.nowhere'",
    ]  # my_own_project: not installed here, maybe the user's code: not a failure
    real = "from requests.auth import _basic_auth_str\nimport os.path\n\n\ndef f():\n    return 1\n"
    assert problems(real) == []


def test_imports_of_the_indexed_package_use_its_symbol_table() -> None:
    table = {"pkg": frozenset(), "pkg.utils": frozenset({"parse_config", "json"})}
    code = ("from pkg.utils import parse_config, nope\nfrom pkg import utils\n"
            "from pkg.missing import x\n\n\ndef f():\n    return parse_config, nope, utils, x\n")
    assert problems(code, modules=table) == [
        "`from pkg.utils import nope`: 'pkg.utils' has no 'nope'",
        "`from pkg.missing import ...`: no module named 'pkg.missing'",
    ]


def test_names_the_task_defines_and_fragments_are_not_failures() -> None:
    attached = [{"path": "app.py", "content": "def load(path):\n    return open(path).read()\n"}]
    answer = "```python\ndef main(path):\n    return load(path).upper()\n```"
    assert "names" not in check_answer("Fix `main` in app.py.", attached, answer, None)
    fragment = "Call it like this:\n```python\nresult = helper(url)\n```"
    assert "names" not in check_answer("How do I call helper?", [], fragment, None)
    assert "names" not in check_answer("x", [], COPIED_BODY, None, enabled=False)
