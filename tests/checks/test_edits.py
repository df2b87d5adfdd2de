"""The edit formats of Aider and Continue: which one a client asked for, and whether an answer
keeps to it and to the files the client sent."""

from __future__ import annotations

import pytest

from router.checks.answer import check_answer
from router.checks.edits import (
    check_edits,
    client_edit,
    requested_format,
    sent_files,
    without_instructions,
)

AIDER_EDITBLOCK = """Act as an expert software developer.
Every *SEARCH/REPLACE block* must use this format:
1. The *FULL* file path alone on a line, verbatim.
2. The opening fence and code language, eg: ```python
3. The start of search block: <<<<<<< SEARCH
4. A contiguous chunk of lines to search for in the existing source code
5. The dividing line: =======
6. The lines to replace into the source code
7. The end of the replace block: >>>>>>> REPLACE
"""
AIDER_WHOLE = """Act as an expert software developer.
If you make changes to a file, reply with the entire file content:
path/to/filename.js
```
// entire file content ...
```
"""
GREETING = "def greet(name):\n    return 'hi ' + name\n\n\ndef main():\n    print(greet('x'))\n"
SENT = f"I have *added these files to the chat*.\n\nshow_greeting.py\n```\n{GREETING}```\n"


def test_the_format_is_read_from_the_clients_instructions() -> None:
    assert requested_format(AIDER_EDITBLOCK) == "search_replace"
    assert requested_format(AIDER_WHOLE) == "whole_file"
    assert requested_format("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\nreply with a unified diff") \
        == "unified_diff"
    assert requested_format("```python\nx = 1\n```\nYou will rewrite the above code to do the "
                            "following: ... Output only a code block with the rewritten code:") \
        == "rewrite"
    assert requested_format("Write a function add(a, b).") is None
    # a diff to describe is not a request for one (Aider's commit-message request)
    assert requested_format("Generate a one-line commit message for those changes.\n\n# Diffs:\n"
                            "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n"
                            "-x = 1\n+x = 2\n") is None


def test_the_files_a_client_sent_are_read_from_its_turns() -> None:
    files = sent_files([SENT], [{"path": "b.py", "content": "y = 2\n"}])
    assert files == {"b.py": "y = 2\n", "show_greeting.py": GREETING}


def edit(path: str, search: str, replace: str) -> str:
    return f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"


def test_a_good_search_replace_edit_passes() -> None:
    answer = "Here is the change:\n\n" + edit(
        "show_greeting.py", "    return 'hi ' + name\n", "    return 'hello ' + name\n")
    result = check_edits(answer, "search_replace", files={"show_greeting.py": GREETING},
                         task="say hello instead of hi")
    assert result.passed and result.edits == 1


@pytest.mark.parametrize(("answer", "problem"), [
    ("I would change greet to say hello.", "no SEARCH/REPLACE block"),
    (edit("path/to/filename.js", "x\n", "y\n"), "path/to/filename.js, which the client did not send"),
    (edit("show_greeting.py", "    return 'bye'\n", "    return 'hello'\n"),
     "SEARCH text is not in show_greeting.py"),
])
def test_a_broken_search_replace_edit_fails_and_says_why(answer: str, problem: str) -> None:
    result = check_edits(answer, "search_replace", files={"show_greeting.py": GREETING},
                         task="say hello instead of hi")
    assert not result.passed and problem in " ".join(result.problems)


def test_a_whole_file_that_drops_a_function_fails() -> None:
    answer = "show_greeting.py\n```\ndef greet(name):\n    return 'hello ' + name\n```\n"
    result = check_edits(answer, "whole_file", files={"show_greeting.py": GREETING},
                         task="say hello instead of hi")
    assert result.problems == ["the new show_greeting.py drops main"]
    kept = f"show_greeting.py\n```\n{GREETING.replace('hi ', 'hello ')}```\n"
    assert check_edits(kept, "whole_file", files={"show_greeting.py": GREETING},
                       task="say hello instead of hi").passed
    # Asked to remove it, losing it is right.
    assert check_edits(answer, "whole_file", files={"show_greeting.py": GREETING},
                       task="remove main").passed


def test_a_unified_diff_must_remove_lines_the_file_has() -> None:
    good = ("--- a/show_greeting.py\n+++ b/show_greeting.py\n@@ -1,2 +1,2 @@\n def greet(name):\n"
            "-    return 'hi ' + name\n+    return 'hello ' + name\n")
    files = {"show_greeting.py": GREETING}
    assert check_edits(good, "unified_diff", files=files, task="hello").passed
    bad = good.replace("-    return 'hi ' + name", "-    return 'bye'")
    assert not check_edits(bad, "unified_diff", files=files, task="hello").passed


def test_check_answer_reports_the_edit_format_and_skips_parsing_edit_blocks() -> None:
    answer = edit("show_greeting.py", "    return 'hi ' + name\n", "    return 'hello ' + name\n")
    checks = check_answer("say hello instead of hi", [], answer, None, system=AIDER_EDITBLOCK,
                          history=[{"role": "user", "content": SENT},
                                   {"role": "assistant", "content": "Ok."}])
    assert checks["edit_format"] == {"format": "search_replace", "edits": 1, "passed": True,
                                     "problems": []}
    assert checks["syntax_errors"] == 0  # the SEARCH/REPLACE block is an edit, not Python


def test_the_instructions_a_client_repeats_in_the_task_are_left_out() -> None:
    reminder = ("To suggest changes to a file you MUST return the entire content of the file.\n\n"
                "path/to/filename.js\n```\n// entire file content ...\n```")
    system = "Act as an expert software developer.\n" + reminder
    task = "Make area() return s ** 2."
    assert without_instructions(f"{task}\n\n{reminder}", system) == task
    assert without_instructions(task, system) == task
    assert without_instructions(reminder, system) == reminder  # nothing else: it is the task
    assert without_instructions(f"{task}\n\n{reminder}", "") == f"{task}\n\n{reminder}"


def test_a_whole_file_under_the_examples_path_to_prefix_is_the_file_aider_writes() -> None:
    # Aider writes path/to/show_greeting.py to show_greeting.py, the file in its chat.
    kept = f"path/to/show_greeting.py\n```\n{GREETING.replace('hi ', 'hello ')}```\n"
    files = {"show_greeting.py": GREETING}
    assert check_edits(kept, "whole_file", files=files, task="say hello").passed
    lost = "path/to/show_greeting.py\n```\ndef greet(name):\n    return 'hello'\n```\n"
    assert check_edits(lost, "whole_file", files=files, task="say hello").problems == [
        "the new show_greeting.py drops main"]
    assert not check_edits("path/to/other.py\n```\nx = 1\n```\n", "whole_file", files=files,
                           task="say hello").passed


def test_the_client_edit_names_the_files_the_answer_may_write() -> None:
    history = [{"role": "user", "content": SENT}, {"role": "assistant", "content": "Ok."}]
    edit = client_edit("In show_greeting.py, say hello.", system=AIDER_WHOLE, history=history)
    assert edit is not None and edit.format == "whole_file"
    assert edit.files == {"show_greeting.py": GREETING}
    assert edit.writable() == ["show_greeting.py"]
    # no file sent: the file the task names (a new one); no format asked: no edit
    new = client_edit("Write add(a, b) in calc.py; it returns 0.0 for nothing.", system=AIDER_WHOLE)
    assert new is not None and new.writable() == ["calc.py"]
    assert client_edit("Write add(a, b).") is None
