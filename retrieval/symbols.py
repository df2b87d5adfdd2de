"""Symbol definitions and references (calls and imports) in a tree-sitter tree.

Names are bare identifiers: ``parse_config`` for ``utils.parse_config(...)``,
``cfg.parse_config()`` or ``from utils import parse_config``. The index stores them per file,
so ``references(repo, symbol)`` can answer which files define and which use a symbol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrieval.languages import LanguageSpec

if TYPE_CHECKING:
    from tree_sitter import Node

IDENTIFIERS = frozenset({
    "identifier", "property_identifier", "field_identifier", "type_identifier",
    "shorthand_property_identifier", "package_identifier", "namespace_identifier",
    "private_property_identifier", "constant", "destructor_name", "operator_name",
})
# fields that lead from an expression to the name it ends with: a.b.c -> c, a::b -> b
_NAME_FIELDS = ("attribute", "property", "field", "name", "function", "macro", "constructor",
                "type", "declarator")


def definition_name(node: Node) -> str | None:
    """The name a definition node introduces, or None (anonymous)."""
    if node.type in ("lexical_declaration", "variable_declaration"):
        for declarator in node.named_children:
            name = declarator.child_by_field_name("name")
            if name is not None and name.type in IDENTIFIERS:
                return _text(name)
        return None
    if node.type == "type_declaration":  # Go: type X struct {...}
        for spec in node.named_children:
            name = spec.child_by_field_name("name")
            if name is not None:
                return _text(name)
        return None
    if node.type == "impl_item":  # Rust: impl Trait for Type -> Type
        return _last_name(node.child_by_field_name("type"))
    named = node.child_by_field_name("name")
    if named is not None:
        return _last_name(named)
    return _last_name(node.child_by_field_name("declarator"))  # C/C++ functions


def references_in(root: Node, spec: LanguageSpec) -> set[str]:
    """Names called or imported anywhere in the tree."""
    found: set[str] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type in spec.calls:
            target = None
            for field in ("function", "name", "constructor", "type", "macro"):
                target = node.child_by_field_name(field)
                if target is not None:
                    break
            name = _last_name(target)
            if name:
                found.add(name)
        elif node.type in spec.imports:
            found.update(_imported_names(node))
            continue
        stack.extend(node.children)
    return found


def _imported_names(node: Node) -> set[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type in IDENTIFIERS:
            names.add(_text(current))
        elif current.type == "interpreted_string_literal" and current.parent is not None and (
            current.parent.type == "import_spec"
        ):  # Go: "example.com/pkg/utils" -> utils
            names.add(_text(current).strip('"').rsplit("/", 1)[-1])
            continue
        stack.extend(current.children)
    return names


def _last_name(node: Node | None) -> str | None:
    """Follow name-bearing fields down to the identifier an expression ends with."""
    for _ in range(32):
        if node is None:
            return None
        if node.type in IDENTIFIERS:
            return _text(node)
        nxt = None
        for field in _NAME_FIELDS:
            nxt = node.child_by_field_name(field)
            if nxt is not None:
                break
        if nxt is None:
            named = node.named_children
            nxt = named[0] if named else None
        node = nxt
    return None


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", errors="replace")
