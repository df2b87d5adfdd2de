"""Code blocks in an answer, and whether each parses in its language.

Python is parsed with :mod:`ast`. Other languages use tree-sitter grammars from the
per-language wheels (``tree-sitter-javascript`` ...): tree-sitter-language-pack 1.23.1
downloads its grammars at run time, which an offline host cannot do. A tree with an ERROR or
MISSING node fails. A language without an installed grammar gives None (not checked).
"""

from __future__ import annotations

import ast
import importlib
import re
import warnings
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Parser


@dataclass(frozen=True)
class CodeBlock:
    """One block of code: its canonical language name (None when unknown) and its text."""

    language: str | None
    code: str


# alias (the fence's info string, lower case) -> canonical name
_ALIASES = {
    "python": "python", "py": "python", "python3": "python", "py3": "python",
    "javascript": "javascript", "js": "javascript", "jsx": "javascript", "node": "javascript",
    "mjs": "javascript", "cjs": "javascript",
    "typescript": "typescript", "ts": "typescript", "tsx": "tsx",
    "go": "go", "golang": "go",
    "rust": "rust", "rs": "rust",
    "java": "java",
    "c": "c", "h": "c",
    "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
}
# canonical name -> (grammar module, factory)
_GRAMMARS = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}

_FENCE = re.compile(
    r"^(?P<indent>[ \t]{0,3})(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n"
    r"(?P<code>.*?)"
    r"(?:^[ \t]{0,3}(?P=fence)[`~]*[ \t]*$|\Z)",
    re.DOTALL | re.MULTILINE,
)


def canonical_language(name: str | None) -> str | None:
    """The canonical name of a fence's language (``py`` → ``python``); None when unknown."""
    words = (name or "").strip().lstrip("{.").split()
    if not words:
        return None
    word = words[0].rstrip("}").lower()
    return _ALIASES.get(word, word)


def extract_code_blocks(text: str, *, default_language: str | None = None) -> list[CodeBlock]:
    """The fenced code blocks of a markdown answer, in order.

    A fence without a language takes ``default_language`` when given (the task's language),
    else ``python`` when it parses as Python, else None. An unterminated last fence (a
    truncated answer) runs to the end of the text. An answer without any fence that parses
    as Python, and is more than a bare word or constant, counts as one python block.
    """
    blocks = []
    for match in _FENCE.finditer(text):
        code = match.group("code")
        language = canonical_language(match.group("info"))
        if language is None:
            if default_language:
                language = canonical_language(default_language)
            elif _python_ok(code):
                language = "python"
        blocks.append(CodeBlock(language, code))
    if not blocks and _looks_like_python_code(text):
        blocks.append(CodeBlock("python", text))
    return blocks


def syntax_ok(block: CodeBlock) -> bool | None:
    """True when the block parses in its language, False when it does not, None when its
    language cannot be checked here."""
    if block.language == "python":
        return _python_ok(block.code)
    if block.language is None or block.language not in _GRAMMARS:
        return None
    parser = _parser(block.language)
    if parser is None:
        return None
    tree = parser.parse(block.code.encode("utf-8"))
    return not tree.root_node.has_error


def _parse_python(code: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a failure
        try:
            return ast.parse(code)
        except (SyntaxError, ValueError):  # ValueError: null bytes
            return None


def _python_ok(code: str) -> bool:
    return _parse_python(code) is not None


def _looks_like_python_code(text: str) -> bool:
    tree = _parse_python(text)
    if tree is None:
        return False
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Name | ast.Constant))
        for node in tree.body
    )


@cache
def _parser(language: str) -> Parser | None:
    from tree_sitter import Language, Parser  # deferred: loaded only when code is parsed

    module_name, factory = _GRAMMARS[language]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Parser(Language(getattr(module, factory)()))
