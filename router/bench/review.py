"""`smallcode bench review`: does `smallcode review` find planted bugs?

Each case is a small change to one Python file: most plant one bug on a known line of the new
file (an off-by-one, a wrong operator, SQL built from input, a mutable default, a swallowed
error, a hard-coded secret, a missing zero check), two are clean changes. Every diff goes
through what ``smallcode review`` sends (the numbered change and the enclosing functions) to
the graph, on the tier asked (``--route``), and the findings come back through the same
parser. A bug is found when a finding names its line (one line either side counts); a
finding on a clean change, or elsewhere, is noise.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.backends import build_cloud, build_local
from router.graph.graph import build_graph, run_task
from router.review import diff as diffs
from router.review.findings import enclosing, parse_findings, task_text
from router.runtime import build_context
from router.settings import load_settings


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    before: str
    after: str
    bug_line: int | None  # 1-based, in the new file; None: a clean change


CASES = (
    Case("off_by_one", "stats.py",
         "def total(xs):\n    result = 0\n    for i in range(len(xs)):\n"
         "        result += xs[i]\n    return result\n",
         "def total(xs):\n    result = 0\n    for i in range(len(xs) + 1):\n"
         "        result += xs[i]\n    return result\n", 3),
    Case("wrong_operator", "money.py",
         "def add_fee(amount, fee):\n    return amount\n",
         "def add_fee(amount, fee):\n    \"\"\"The amount with the fee added.\"\"\"\n"
         "    return amount - fee\n", 3),
    Case("sql_injection", "users.py",
         "def find_user(db, name):\n    return None\n",
         "def find_user(db, name):\n    cursor = db.cursor()\n"
         "    cursor.execute(f\"SELECT * FROM users WHERE name = '{name}'\")\n"
         "    return cursor.fetchone()\n", 3),
    Case("mutable_default", "cart.py",
         "def add_item(item):\n    return [item]\n",
         "def add_item(item, items=[]):\n    items.append(item)\n    return items\n", 1),
    Case("swallowed_error", "loader.py",
         "import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.load(f)\n",
         "import json\n\n\ndef load(path):\n    try:\n        with open(path) as f:\n"
         "            return json.load(f)\n    except Exception:\n        pass\n", 8),
    Case("hardcoded_secret", "client.py",
         "import os\n\nAPI_KEY = os.environ[\"PAYMENTS_API_KEY\"]\n",
         "import os\n\nAPI_KEY = \"sk_live_51HqLyjWDarjtT1zdp7dcXyZ\"\n", 3),
    Case("missing_zero_check", "ratio.py",
         "def ratio(a, b):\n    if b == 0:\n        return 0.0\n    return a / b\n",
         "def ratio(a, b):\n    return a / b\n", 2),
    Case("clean_docstring", "geometry.py",
         "def area(w, h):\n    return w * h\n",
         "def area(w, h):\n    \"\"\"The area of a w by h rectangle.\"\"\"\n    return w * h\n", None),
    Case("clean_rename", "names.py",
         "def greet(n):\n    return f\"Hello, {n}!\"\n",
         "def greet(name):\n    return f\"Hello, {name}!\"\n", None),
)


def diff_of(case: Case) -> str:
    return "".join(difflib.unified_diff(case.before.splitlines(keepends=True),
                                        case.after.splitlines(keepends=True),
                                        f"a/{case.path}", f"b/{case.path}"))


def task_for(case: Case, max_tokens: int, route: str) -> tuple[dict[str, Any], Any]:
    """The routed task ``smallcode review`` sends for this change, and the parsed file."""
    [file] = diffs.parse(f"diff --git a/{case.path} b/{case.path}\n{diff_of(case)}")
    task: dict[str, Any] = {"prompt": task_text("review", [file]), "type": "review",
                            "max_tokens": max_tokens, "route": route}
    context = enclosing(case.path, case.after, file.changed_lines())
    if context:
        task["files"] = [{"path": file.name, "content": context}]
    return task, file


def score(case: Case, findings: list[Any]) -> dict[str, Any]:
    hit = case.bug_line is not None and any(abs(f.line - case.bug_line) <= 1 for f in findings)
    noise = [f for f in findings if case.bug_line is None or abs(f.line - case.bug_line) > 1]
    return {"case": case.name, "bug": case.bug_line is not None, "found": hit,
            "findings": len(findings), "noise": len(noise),
            "lines": [str(f) for f in findings]}


def run(config_file: Path | None, *, route: str = "local", max_tokens: int = 256,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    settings = load_settings(config_file)
    local = build_local(settings)
    rows = []
    try:
        context = build_context(settings, local, build_cloud(settings))
        graph = build_graph()
        for case in CASES:
            task, file = task_for(case, max_tokens, route)
            started = time.perf_counter()
            answer = run_task(graph, task, context)  # type: ignore[arg-type]
            row = score(case, parse_findings(answer.text, [file]))
            row.update(seconds=round(time.perf_counter() - started, 1),
                       route=answer.record["final"], answer=answer.text[:400])
            rows.append(row)
            log(f"{case.name}: found {row['found']}, {row['findings']} findings "
                f"({row['noise']} noise), {row['seconds']} s")
    finally:
        local.close()
    bugs = [r for r in rows if r["bug"]]
    return {"model": settings.local.model if route == "local" else settings.cloud.model,
            "route": route, "cases": rows, "bugs": len(bugs),
            "found": sum(r["found"] for r in bugs),
            "noise": sum(r["noise"] for r in rows),
            "clean_with_findings": sum(1 for r in rows if not r["bug"] and r["findings"])}
