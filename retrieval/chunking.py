"""Split one file into chunks: definitions by syntax (tree-sitter), line windows for the rest.

Functions, methods and types become one chunk each, named by their symbol (``Class.method``
inside a class). A class's own lines (header, docstring, fields) form a chunk named after the
class. Code outside any definition, and every file without a grammar, is cut into line
windows. A definition longer than ``max_chunk_lines`` is cut into windows that keep its name.
The same parse records the file's symbol definitions and references (see ``symbols``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from retrieval import symbols
from retrieval.languages import LanguageSpec, language_of, parser_for, spec_for

if TYPE_CHECKING:
    from tree_sitter import Node

_FUNCTION_VALUES = frozenset({
    "arrow_function", "function_expression", "function", "generator_function", "class",
})


@dataclass(frozen=True)
class Chunk:
    path: str
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    symbol: str | None
    language: str
    text: str


@dataclass
class FileAnalysis:
    chunks: list[Chunk] = field(default_factory=list)
    definitions: set[str] = field(default_factory=set)
    references: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Span:
    start: int  # 0-based row, inclusive
    end: int  # 0-based row, inclusive
    symbol: str | None


def analyse(path: str, text: str, *, max_chunk_lines: int, window_lines: int) -> FileAnalysis:
    """Chunks, definitions and references of one file."""
    lines = text.split("\n")
    language = language_of(path)
    spec = spec_for(path)
    parser = parser_for(spec) if spec is not None else None
    result = FileAnalysis()
    if spec is None or parser is None:
        windows = [
            window
            for run in _uncovered_runs(bytearray(len(lines)), 0, len(lines) - 1, lines)
            for window in _windows(_Span(run[0], run[1], None), window_lines)
        ]
        result.chunks = _materialise(path, language, lines, windows)
        return result

    tree = parser.parse(text.encode("utf-8"))
    definitions: list[_Span] = []
    remainders: list[_Span] = []
    _collect(tree.root_node, spec, None, definitions, remainders, result.definitions)
    covered = bytearray(len(lines))
    spans: list[_Span] = []
    for span in definitions:
        spans.extend(_windows(span, max_chunk_lines))
        covered[span.start : span.end + 1] = b"\1" * (span.end - span.start + 1)
    # a container's own lines (header, docstring, fields), then top-level code
    for owner in remainders:
        for run in _uncovered_runs(covered, owner.start, owner.end, lines):
            spans.extend(_windows(_Span(run[0], run[1], owner.symbol), window_lines))
        covered[owner.start : owner.end + 1] = b"\1" * (owner.end - owner.start + 1)
    for run in _uncovered_runs(covered, 0, len(lines) - 1, lines):
        spans.extend(_windows(_Span(run[0], run[1], None), window_lines))
    spans.sort(key=lambda s: (s.start, s.end))
    result.chunks = _materialise(path, language, lines, spans)
    result.references = symbols.references_in(tree.root_node, spec)
    return result


def _collect(
    node: Node,
    spec: LanguageSpec,
    parent: str | None,
    definitions: list[_Span],
    remainders: list[_Span],
    names: set[str],
) -> None:
    stack: list[tuple[Node, Node | None]] = [(child, None) for child in reversed(node.children)]
    while stack:
        current, outer = stack.pop()
        kind = current.type
        extent = outer or current
        if kind in spec.wrappers:
            inner = [c for c in current.named_children if c.type in spec.leaves | spec.containers]
            if inner:
                stack.append((inner[0], extent))
                continue
        if kind in spec.leaves:
            name = symbols.definition_name(current)
            if name is not None and (
                kind not in ("lexical_declaration", "variable_declaration")
                or _holds_function(current)
            ):
                names.add(name)
                qualified = f"{parent}.{name}" if parent else name
                definitions.append(
                    _Span(extent.start_point.row, _end_row(extent), qualified)
                )
                continue
        if kind in spec.containers:
            container = symbols.definition_name(current)
            if container is not None:
                names.add(container)
            scope: str | None = parent
            if container is not None:
                scope = f"{parent}.{container}" if parent else container
            # children first (they claim their lines), then the container's remainder
            _collect(current, spec, scope, definitions, remainders, names)
            remainders.append(_Span(extent.start_point.row, _end_row(extent), scope))
            continue
        stack.extend((child, None) for child in reversed(current.children))


def _end_row(node: Node) -> int:
    end = node.end_point
    # a node ending at column 0 ends on the previous line (its trailing newline)
    return max(node.start_point.row, end.row - 1 if end.column == 0 else end.row)


def _holds_function(declaration: Node) -> bool:
    for declarator in declaration.named_children:
        value = declarator.child_by_field_name("value")
        if value is not None and value.type in _FUNCTION_VALUES:
            return True
    return False


def _uncovered_runs(
    covered: bytearray, start: int, end: int, lines: list[str]
) -> list[tuple[int, int]]:
    """Maximal runs of uncovered rows in [start, end] that hold some word characters."""
    runs: list[tuple[int, int]] = []
    row = start
    while row <= end:
        if covered[row]:
            row += 1
            continue
        first = row
        while row <= end and not covered[row]:
            row += 1
        last = row - 1
        while first <= last and not lines[first].strip():
            first += 1
        while last >= first and not lines[last].strip():
            last -= 1
        if first <= last and any(
            ch.isalnum() for line in lines[first : last + 1] for ch in line
        ):
            runs.append((first, last))
    return runs


def _windows(span: _Span, size: int) -> list[_Span]:
    return [
        _Span(start, min(start + size - 1, span.end), span.symbol)
        for start in range(span.start, span.end + 1, size)
    ]


def _materialise(path: str, language: str, lines: list[str], spans: list[_Span]) -> list[Chunk]:
    chunks = []
    for span in spans:
        body = "\n".join(lines[span.start : span.end + 1])
        if body.strip():
            chunks.append(Chunk(path, span.start + 1, span.end + 1, span.symbol, language, body))
    return chunks
