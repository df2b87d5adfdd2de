"""Edit formats of the common coding clients, and whether an answer keeps to the one asked.

Aider asks for SEARCH/REPLACE blocks (its default), whole files, or unified diffs; Continue's
edit asks for the selected code rewritten in one code block. A small local model often breaks
the format (it echoes the instructions, invents ``path/to/filename.js``, or rewrites a file
and loses a function), and the client then applies nonsense. The judge escalates such an
answer (``failed_checks``). Pure functions of the texts; the files are what the client sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["search_replace", "whole_file", "unified_diff", "rewrite"]

_EXT = r"[\w-][\w.-]*\.[A-Za-z0-9]{1,8}"
_PATH_LINE = rf"[ \t]*[`*]*((?:[\w.-]+/)*{_EXT})[`*:]*[ \t]*"
_LABELLED = re.compile(rf"^{_PATH_LINE}\n[ \t]*(`{{3,}}|~{{3,}})[^\n]*\n(.*?)^[ \t]*\2[ \t]*$",
                       re.M | re.S)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
_SEARCH_REPLACE = re.compile(
    r"<{5,9} SEARCH[^\n]*\n(.*?)^={5,9}[ \t]*\n(.*?)^>{5,9} REPLACE", re.M | re.S)
_DIFF_FILE = re.compile(r"^\+\+\+ (?:b/)?(\S+)", re.M)
_DEFINITION = re.compile(r"^(?:async\s+)?(?:def|class|function|func|fn)\s+([A-Za-z_]\w*)", re.M)
_REMOVAL = re.compile(r"\b(remove|delete|drop|rename|replace|merge|inline)\b", re.I)


@dataclass(frozen=True)
class EditCheck:
    format: Format
    edits: int
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "edits": self.edits, "passed": self.passed,
                "problems": self.problems}


_ASKS_FOR_DIFF = re.compile(
    r"\bunified diffs?\b|\b(?:reply|answer|respond|return|output|write)\b[^.\n]{0,60}\bdiffs?\b",
    re.I)


def requested_format(instructions: str) -> Format | None:
    """The edit format the client's instructions (system prompt, earlier turns, the task)
    ask for, or None when they ask for none."""
    if "<<<<<<< SEARCH" in instructions and ">>>>>>> REPLACE" in instructions:
        return "search_replace"
    # A diff in the text is not yet a request for one (Aider's commit-message request sends the
    # diff to describe): the instructions must ask for diffs too.
    if re.search(r"^--- \S", instructions, re.M) and re.search(r"^\+\+\+ \S", instructions, re.M) \
            and "@@" in instructions and _ASKS_FOR_DIFF.search(instructions):
        return "unified_diff"
    if re.search(r"entire (?:file )?content|whole file|full contents? of (?:each|the) file",
                 instructions, re.I):
        return "whole_file"
    if re.search(r"rewrite the (?:above )?code|output only a code block with the rewritten code",
                 instructions, re.I):
        return "rewrite"
    return None


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def without_instructions(prompt: str, system: str) -> str:
    """The task without the client's instructions it repeats from its system prompt.

    Aider appends its format reminder (with its example ``path/to/filename.js`` and a code
    block) to the last user turn; that text is the client's, not the user's, and names no
    file the task touches. Paragraphs of ``prompt`` that ``system`` holds verbatim are left
    out; when nothing else is left, the prompt is the task after all."""
    if not system.strip():
        return prompt
    kept = [p for p in _PARAGRAPH_BREAK.split(prompt)
            if len(p.strip()) < 24 or p.strip() not in system]
    return "\n\n".join(kept) if any(p.strip() for p in kept) else prompt


def sent_files(texts: list[str], attached: list[Mapping[str, Any]]) -> dict[str, str]:
    """The files the client sent: attached ones, and those an earlier user turn or the task
    carries as a path line followed by a code block with the file's content."""
    files = {str(f["path"]): str(f["content"]) for f in attached}
    for text in texts:
        for match in _LABELLED.finditer(text):
            files.setdefault(match.group(1).lstrip("./"), match.group(3))
    return files


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _definitions(code: str) -> set[str]:
    return set(_DEFINITION.findall(code))


def _dropped(original: str, new: str, task: str) -> list[str]:
    """Top-level definitions the original had and the new code lost (unless the task asks to
    remove or rename something)."""
    if _REMOVAL.search(task):
        return []
    return sorted(_definitions(original) - _definitions(new))


def _unknown(path: str, files: Mapping[str, str], task: str) -> bool:
    """A path the client did not send and the task does not name (a file invented)."""
    return path not in files and path not in task


def check_edits(answer: str, fmt: Format, *, files: Mapping[str, str], task: str,
                original: str | None = None) -> EditCheck:
    """Whether ``answer`` keeps to ``fmt`` and to the files sent. ``original``: the code a
    ``rewrite`` replaces (the prompt's first code block)."""
    if fmt == "search_replace":
        return _check_search_replace(answer, files, task)
    if fmt == "whole_file":
        return _check_whole(answer, files, task)
    if fmt == "unified_diff":
        return _check_diff(answer, files, task)
    blocks = _FENCE.findall(answer)
    if not blocks:
        return EditCheck(fmt, 0, ["the answer has no code block with the rewritten code"])
    lost = _dropped(original or "", blocks[0][2], task)
    return EditCheck(fmt, 1, [f"the rewrite drops {', '.join(lost)}"] if lost else [])


def _check_search_replace(answer: str, files: Mapping[str, str], task: str) -> EditCheck:
    problems, edits = [], 0
    for fence in _FENCE.finditer(answer):
        body = fence.group(3)
        blocks = _SEARCH_REPLACE.findall(body)
        if not blocks:
            continue
        before = answer[:fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip().strip("`*:")
        path = before or fence.group(2).strip()
        for search, _replace in blocks:
            edits += 1
            if not re.fullmatch(rf"(?:[\w.-]+/)*{_EXT}", path):
                problems.append("a SEARCH/REPLACE block has no file path on the line before it")
            elif _unknown(path, files, task):
                problems.append(f"names {path}, which the client did not send")
            elif search.strip() and path in files and _normal(search) not in _normal(files[path]):
                problems.append(f"its SEARCH text is not in {path}")
    if not edits:
        problems.append("the answer has no SEARCH/REPLACE block")
    return EditCheck("search_replace", edits, problems)


def client_path(path: str, files: Mapping[str, str]) -> str:
    """The file a whole-file listing's path names as the client applies it: Aider writes
    ``path/to/shapes.py`` to ``shapes.py`` when that is a file in the chat and the longer path
    is not (small models copy the ``path/to/`` of its example)."""
    name = path.rsplit("/", 1)[-1]
    return name if path not in files and name != path and name in files else path


def _check_whole(answer: str, files: Mapping[str, str], task: str) -> EditCheck:
    problems, edits = [], 0
    for match in _LABELLED.finditer(answer):
        path, content = client_path(match.group(1).lstrip("./"), files), match.group(3)
        edits += 1
        if _unknown(path, files, task):
            problems.append(f"names {path}, which the client did not send")
        elif path in files and (lost := _dropped(files[path], content, task)):
            problems.append(f"the new {path} drops {', '.join(lost)}")
    if not edits:
        problems.append("the answer has no file: a path line, then the whole file in a code block")
    return EditCheck("whole_file", edits, problems)


def _check_diff(answer: str, files: Mapping[str, str], task: str) -> EditCheck:
    problems = []
    paths = [p for p in _DIFF_FILE.findall(answer) if p != "/dev/null"]
    for path in paths:
        if _unknown(path, files, task):
            problems.append(f"names {path}, which the client did not send")
    for path in paths:
        if path not in files:
            continue
        have = {line.rstrip() for line in files[path].splitlines()}
        section = answer.split(f"+++ b/{path}", 1)[-1].split("\n--- ", 1)[0]
        missing = [line[1:] for line in section.splitlines()
                   if line.startswith("-") and not line.startswith("---")
                   and line[1:].rstrip() not in have]
        if missing:
            problems.append(f"the diff removes lines {path} does not have")
    if not paths:
        problems.append("the answer has no unified diff (--- / +++ / @@ lines)")
    return EditCheck("unified_diff", len(paths), problems)


@dataclass(frozen=True)
class ClientEdit:
    """An edit a client asked for: its format, the files it sent (path -> content) and the
    task's own text (without the instructions the client repeats there)."""

    format: Format
    files: dict[str, str]
    task: str

    def writable(self) -> list[str]:
        """The files the answer may write: the sent files the task names, else every file
        sent, else the paths the task names (a new file)."""
        named = [path for path in self.files if path in self.task]
        if named or self.files:
            return named or list(self.files)
        return _TASK_PATH.findall(self.task)


_TASK_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.[A-Za-z][A-Za-z0-9]{0,7})"
                        r"(?![\w/-])")


def client_edit(prompt: str, *, system: str = "", history: Sequence[Mapping[str, Any]] = (),
                files: Sequence[Mapping[str, Any]] = ()) -> ClientEdit | None:
    """The edit format the client asked for (its system prompt says it first; else the earlier
    turns, its examples; else the task) with the files it sent, or None: no format asked."""
    task = without_instructions(prompt, system)  # Aider repeats its reminder in the task
    fmt = (requested_format(system) or requested_format("\n".join(t["content"] for t in history))
           or requested_format(task))
    if fmt is None:
        return None
    sent = sent_files([*(t["content"] for t in history if t["role"] == "user"), task],
                      list(files))
    return ClientEdit(fmt, sent, task)


def is_edit_block(code: str) -> bool:
    """A code block that is an edit (SEARCH/REPLACE markers, a diff), not code to parse."""
    return bool(_SEARCH_REPLACE.search(code)) or code.lstrip().startswith(("--- ", "@@ ", "diff --git"))
