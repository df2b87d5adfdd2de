"""Languages with a tree-sitter grammar: file extensions, parsers, and the node types that
define symbols, call them, or import them. Grammars come from the per-language PyPI wheels
(``tree-sitter-python`` ...), which ship compiled parsers and need no download.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Parser


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str
    factory: str
    # definitions whose body is not searched for further chunks (functions, methods, types)
    leaves: frozenset[str]
    # definitions whose body holds further definitions (classes, impls, namespaces)
    containers: frozenset[str]
    # nodes that hold a definition without being one (decorators, export, templates)
    wrappers: frozenset[str]
    calls: frozenset[str]
    imports: frozenset[str]


_C_LIKE_CALLS = frozenset({"call_expression"})
SPECS: dict[str, LanguageSpec] = {}


def _add(spec: LanguageSpec, *extensions: str) -> None:
    for ext in extensions:
        SPECS[ext] = spec


_add(LanguageSpec(
    "python", "tree_sitter_python", "language",
    leaves=frozenset({"function_definition"}),
    containers=frozenset({"class_definition"}),
    wrappers=frozenset({"decorated_definition"}),
    calls=frozenset({"call"}),
    imports=frozenset({"import_statement", "import_from_statement"}),
), ".py", ".pyi")
_JS_LEAVES = frozenset({
    "function_declaration", "generator_function_declaration", "method_definition",
    "lexical_declaration", "variable_declaration",
})
_JS = dict(
    containers=frozenset({"class_declaration", "class", "abstract_class_declaration"}),
    wrappers=frozenset({"export_statement"}),
    calls=frozenset({"call_expression", "new_expression"}),
    imports=frozenset({"import_statement"}),
)
_add(LanguageSpec("javascript", "tree_sitter_javascript", "language", leaves=_JS_LEAVES, **_JS),
     ".js", ".jsx", ".mjs", ".cjs")
_TS_LEAVES = _JS_LEAVES | {"interface_declaration", "type_alias_declaration", "enum_declaration",
                           "function_signature"}
_add(LanguageSpec("typescript", "tree_sitter_typescript", "language_typescript",
                  leaves=_TS_LEAVES, **_JS), ".ts", ".mts", ".cts")
_add(LanguageSpec("tsx", "tree_sitter_typescript", "language_tsx", leaves=_TS_LEAVES, **_JS),
     ".tsx")
_add(LanguageSpec(
    "go", "tree_sitter_go", "language",
    leaves=frozenset({"function_declaration", "method_declaration", "type_declaration"}),
    containers=frozenset(),
    wrappers=frozenset(),
    calls=_C_LIKE_CALLS,
    imports=frozenset({"import_declaration"}),
), ".go")
_add(LanguageSpec(
    "java", "tree_sitter_java", "language",
    leaves=frozenset({"method_declaration", "constructor_declaration"}),
    containers=frozenset({"class_declaration", "interface_declaration", "enum_declaration",
                          "record_declaration"}),
    wrappers=frozenset(),
    calls=frozenset({"method_invocation", "object_creation_expression"}),
    imports=frozenset({"import_declaration"}),
), ".java")
_add(LanguageSpec(
    "rust", "tree_sitter_rust", "language",
    leaves=frozenset({"function_item", "struct_item", "enum_item", "type_item", "macro_definition",
                      "function_signature_item"}),
    containers=frozenset({"impl_item", "trait_item", "mod_item"}),
    wrappers=frozenset(),
    calls=frozenset({"call_expression", "macro_invocation"}),
    imports=frozenset({"use_declaration"}),
), ".rs")
_C_LEAVES = frozenset({"function_definition", "struct_specifier", "enum_specifier"})
_add(LanguageSpec(
    "c", "tree_sitter_c", "language",
    leaves=_C_LEAVES, containers=frozenset(), wrappers=frozenset(),
    calls=_C_LIKE_CALLS, imports=frozenset(),
), ".c", ".h")
_add(LanguageSpec(
    "cpp", "tree_sitter_cpp", "language",
    leaves=_C_LEAVES,
    containers=frozenset({"class_specifier", "namespace_definition"}),
    wrappers=frozenset({"template_declaration"}),
    calls=_C_LIKE_CALLS, imports=frozenset({"using_declaration"}),
), ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx")


def spec_for(path: str) -> LanguageSpec | None:
    dot = path.rfind(".")
    return SPECS.get(path[dot:].lower()) if dot != -1 else None


def language_of(path: str) -> str:
    """The language name for the chunk metadata: a grammar's name, else the extension."""
    spec = spec_for(path)
    if spec is not None:
        return spec.name
    dot = path.rfind(".")
    return path[dot + 1 :].lower() if dot > path.rfind("/") else "text"


@cache
def parser_for(spec: LanguageSpec) -> Parser | None:
    """A parser for the language, or None when its grammar package is not installed."""
    from tree_sitter import Language, Parser  # deferred: loaded only when a file is parsed

    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        return None
    return Parser(Language(getattr(module, spec.factory)()))
