"""The router's own prompt to the local model for an edit in a client's format.

Aider's whole-file prompt is long (its rules twice, an example file ``path/to/filename.js``,
an example conversation about ``show_greeting.py``); the 0.5B coder copies it: measured on six
one-function edits (BENCHMARKS.md, "Aider's whole-file edits on the 0.5B"), it wrote
``path/to/filename.js`` in all six and applied none. Told the same format rules in a few lines,
with the one file it may write and that file's content, it applied four. The client's format
is kept (the client parses the answer); only the local model's prompt is the router's. The
cloud gets the client's messages unchanged.

The repair round after an answer that broke the format uses the same prompt and says what was
wrong (:func:`messages` with ``problem``). Pure functions of the edit and the text.
"""

from __future__ import annotations

from agents.base import Message
from router.checks.edits import ClientEdit

WHOLE_FILE_SYSTEM = (
    "You are an expert software developer. You change code files as asked. To change a file, "
    "reply with its entire updated content as a file listing: the first line is the file's "
    "name and nothing else, the next line opens a code block with ```, then the whole file "
    "with every line it keeps, then a line with ``` alone.")


def _listing(path: str, content: str) -> str:
    return f"{path}\n```\n{content.rstrip(chr(10))}\n```"


def messages(edit: ClientEdit, *, problem: str | None = None) -> list[Message] | None:
    """The local model's prompt for ``edit``, or None where the router has none for its
    format (then the client's messages are used as they are). ``problem``: what the last
    answer got wrong (a repair round)."""
    if edit.format != "whole_file":
        return None
    paths = edit.writable()
    if not paths:
        return None
    shown = "\n\n".join(_listing(p, edit.files[p]) for p in paths if p in edit.files)
    names = " and ".join(paths)
    parts = [shown, edit.task.strip()] if shown else [edit.task.strip()]
    if problem:
        parts.append(f"Your previous answer broke the file listing format: {problem}. "
                     f"You may write {'one file only' if len(paths) == 1 else 'these files only'}"
                     f": {names}.")
    first = paths[0]
    parts.append(f"Reply with the line {first}, then ```, then the entire updated content of "
                 f"{first}" + (" (keep every function the task does not change)" if problem
                               else "") + ", then ```.")
    return [Message("system", WHOLE_FILE_SYSTEM), Message("user", "\n\n".join(parts))]
