"""`smallcode review`'s pure parts: reading a diff, showing it to the model, splitting it,
reading findings back."""

from __future__ import annotations

import pytest

from router.review import diff as diffs
from router.review.findings import at_or_above, enclosing, parse_findings, task_text

DIFF = """diff --git a/calc.py b/calc.py
index 1111111..2222222 100644
--- a/calc.py
+++ b/calc.py
@@ -1,4 +1,5 @@
 def divide(a, b):
-    return a / b
+    # b may be zero
+    return a / b if b else None
 
 
@@ -10 +11 @@ def other():
--- a comment line removed, it starts with two dashes
+    pass
diff --git a/logo.png b/logo.png
Binary files a/logo.png and b/logo.png differ
diff --git a/notes.md b/notes.md
deleted file mode 100644
--- a/notes.md
+++ /dev/null
@@ -1 +0,0 @@
-old notes
"""


def test_parse_files_hunks_and_line_numbers() -> None:
    files = diffs.parse(DIFF)
    assert [(f.name, f.binary, f.deleted) for f in files] == [
        ("calc.py", False, False), ("logo.png", True, False), ("notes.md", False, True)]
    calc = files[0]
    assert len(calc.hunks) == 2  # the removed line reading "-- a comment" is not a header
    assert calc.hunks[1].lines == ["--- a comment line removed, it starts with two dashes",
                                   "+    pass"]
    assert calc.changed_lines() == [2, 3, 11]


def test_render_names_each_file_once_with_new_line_numbers() -> None:
    shown = diffs.parse(DIFF)[0].render()
    assert shown.splitlines()[0] == "File calc.py"
    assert "a/calc.py" not in shown and "b/calc.py" not in shown
    assert "    3 +     return a / b if b else None" in shown
    assert "      -     return a / b" in shown  # a removed line has no number


def test_split_per_file_only_when_too_large() -> None:
    files = diffs.parse(DIFF)
    assert [[f.name for f in chunk] for chunk in diffs.split(files, 10_000)] == [
        ["calc.py", "notes.md"]]  # the binary file is left out
    assert [[f.name for f in chunk] for chunk in diffs.split(files, 50)] == [
        ["calc.py"], ["notes.md"]]


@pytest.mark.parametrize(("data", "cause"), [
    (b"diff --git a/x b/x\n\x00\x01", "binary"),
    ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-caf\xe9\n".encode("latin-1"), "not UTF-8"),
])
def test_binary_and_non_utf8_diffs_are_refused(data: bytes, cause: str) -> None:
    with pytest.raises(diffs.DiffError, match=cause):
        diffs.decode(data, "--diff x.patch")


def test_text_that_is_not_a_diff_is_refused() -> None:
    with pytest.raises(diffs.DiffError, match="not a unified diff"):
        diffs.parse("Dear reviewer,\nplease look at my code.\n", "--diff letter.txt")
    assert diffs.parse("") == []


def test_findings_are_read_in_the_asked_form_and_kept_to_the_change() -> None:
    files = diffs.parse(DIFF)[:1]
    answer = """Here is my review:
calc.py:3: error: returns None instead of raising on division by zero
- 11: warning: `pass` leaves other() empty
calc.py:3: error: returns None instead of raising on division by zero
elsewhere.py:1: error: not part of this change
calc.py:40: error: a line the change does not show
calc.py:2: great: not a severity
no findings"""
    found = parse_findings(answer, files)
    assert [str(f) for f in found] == [
        "calc.py:3: error: returns None instead of raising on division by zero",
        "calc.py:11: warning: `pass` leaves other() empty"]
    assert [f.line for f in at_or_above(found, "error")] == [3]
    assert len(at_or_above(found, "info")) == 2


def test_task_text_and_enclosing_function() -> None:
    files = diffs.parse(DIFF)[:1]
    assert "PATH:LINE: SEVERITY: MESSAGE" in task_text("review", files)
    assert "pytest" in task_text("test", files)
    source = ("import os\n\n\ndef divide(a, b):\n    # b may be zero\n"
              "    return a / b if b else None\n\n\ndef far():\n    return 1\n")
    context = enclosing("calc.py", source, [5, 6])
    assert "def divide" in context and "def far" not in context
