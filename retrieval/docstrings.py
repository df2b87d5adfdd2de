"""Python functions with their docstrings taken out: the pairs that tuning and the benchmark use.

``strip_docstrings`` removes every function and method docstring (not those of functions nested
in functions) and reports each one with its function's qualified name (``Class.method``), the
same symbol the chunker gives the function's chunk. A function whose only statement was its
docstring keeps a ``pass`` so the code still parses.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass

MIN_DOCSTRING_CHARS = 20  # shorter docstrings ("Close.") say too little to be a query


@dataclass(frozen=True)
class Documented:
    path: str
    symbol: str
    docstring: str


def strip_docstrings(text: str, rel: str) -> tuple[str, list[Documented]]:
    """The source without function docstrings, and the docstrings of at least 20 characters.

    Raises SyntaxError (or ValueError for a null byte) when the text is not Python.
    """
    tree = ast.parse(text)
    lines = text.split("\n")
    found: list[Documented] = []
    spans: list[tuple[int, int, bool]] = []

    def visit(body: list[ast.stmt], scope: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{scope}{node.name}.")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                first = node.body[0]
                if doc and isinstance(first, ast.Expr) and first.end_lineno is not None:
                    spans.append((first.lineno, first.end_lineno, len(node.body) == 1))
                    if len(doc) >= MIN_DOCSTRING_CHARS:
                        found.append(Documented(rel, scope + node.name, inspect.cleandoc(doc)))

    visit(tree.body, "")
    for start, end, only in sorted(spans, reverse=True):
        indent = lines[start - 1][: len(lines[start - 1]) - len(lines[start - 1].lstrip())]
        lines[start - 1 : end] = [indent + "pass"] if only else []
    return "\n".join(lines), found
