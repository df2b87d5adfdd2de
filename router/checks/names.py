"""Names an answer uses but never defines, and imports that resolve nowhere.

The small model's typical repository mistakes: a helper's body copied without its imports
(``b64encode`` undefined), and import paths it invents (``from requests.api import
_basic_auth_str``). Static, nothing is executed: pyflakes finds the undefined names; imports
are resolved against the indexed repository's symbol table where one is given (its modules
and the names each defines or imports), else against the installed packages, by locating
the module's source file (no import runs) and reading its top-level names. A top-level
module known to neither is not a failure: it may be the user's own code, not installed here.

Only code that is a whole module is checked (it defines a function or a class): a one-line
usage example in prose is not a program. Names the task's own files and code blocks define
count as defined: an answer may change one function of a file it was sent.
"""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

Table = Mapping[str, frozenset[str]]


def problems(code: str, *, known: Iterable[str] = (), modules: Table | None = None) -> list[str]:
    """What the code uses that nothing defines or that cannot be imported; [] when fine or
    when the code is not a whole Python module."""
    tree = _parse(code)
    if tree is None or not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                               for n in tree.body):
        return []
    found = [*_undefined(tree, set(known)), *_unresolved(tree, modules)]
    return list(dict.fromkeys(found))


def defined_names(code: str) -> set[str]:
    """Top-level names a piece of Python code defines or imports (empty if it does not parse)."""
    tree = _parse(code)
    return _top_level(tree.body) if tree is not None else set()


def _parse(code: str) -> ast.Module | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(code)
        except (SyntaxError, ValueError):
            return None


def _undefined(tree: ast.Module, known: set[str]) -> list[str]:
    from pyflakes import checker, messages  # deferred: optional; only this check needs it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = checker.Checker(tree, filename="answer.py")
    out = []
    for message in report.messages:
        if isinstance(message, messages.UndefinedName):
            name = str(message.message_args[0])
            if name not in known:
                out.append(f"undefined name '{name}' (line {message.lineno}): import or "
                           "define it")
    return out


def _unresolved(tree: ast.Module, modules: Table | None) -> list[str]:
    out = []
    packages = {name.split(".", 1)[0] for name in modules or {}}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_exists(alias.name, modules, packages):
                    out.append(f"`import {alias.name}`: no module named '{alias.name}'")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if not _module_exists(module, modules, packages):
                out.append(f"`from {module} import ...`: no module named '{module}'")
                continue
            names = _names_of(module, modules, packages)
            if names is None:
                continue  # not readable, or it re-exports with `*`: trust it
            for alias in node.names:
                if alias.name == "*" or alias.name in names:
                    continue
                if _module_exists(f"{module}.{alias.name}", modules, packages):
                    continue
                out.append(f"`from {module} import {alias.name}`: '{module}' has no "
                           f"'{alias.name}'")
    return out


def _module_exists(name: str, modules: Table | None, packages: set[str]) -> bool:
    """Whether the module can be imported. A top-level name found neither in the table nor
    installed here counts as existing: it may be the user's own project, not installed."""
    top = name.split(".", 1)[0]
    if modules is not None and top in packages:
        return name in modules
    if _source_of(top) is False:
        return True
    return _source_of(name) is not False


def _names_of(module: str, modules: Table | None, packages: set[str]) -> frozenset[str] | None:
    if modules is not None and module.split(".", 1)[0] in packages:
        return modules.get(module)
    source = _source_of(module)
    if not isinstance(source, Path):
        return None
    return _file_names(str(source))


@lru_cache(maxsize=512)
def _source_of(name: str) -> Path | bool | None:
    """The module's source file; None where it exists without one (built in, extension);
    False where there is no such module. Parents are located, never imported."""
    loaded = sys.modules.get(name)  # os.path: an attribute module, already loaded
    if loaded is not None:
        origin = getattr(loaded, "__file__", None)
        return Path(origin) if origin and origin.endswith(".py") else None
    parts = name.split(".")
    if parts[0] in sys.builtin_module_names:
        return None if len(parts) == 1 else False
    try:
        spec = importlib.machinery.PathFinder.find_spec(parts[0])
        if spec is None and parts[0] in sys.stdlib_module_names:
            spec = importlib.util.find_spec(parts[0])  # frozen modules
    except (ImportError, ValueError):
        return False
    for part in parts[1:]:
        if spec is None or not spec.submodule_search_locations:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    if spec is None:
        return False
    origin = spec.origin
    return Path(origin) if origin and origin.endswith(".py") else None


@lru_cache(maxsize=256)
def _file_names(path: str) -> frozenset[str] | None:
    try:
        tree = _parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    if tree is None:
        return None
    names = _top_level(tree.body)
    if "*" in names or "__getattr__" in names:
        return None
    return frozenset(names)


def _top_level(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".", 1)[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for block in ("body", "orelse", "finalbody"):
                names |= _top_level(getattr(node, block, []) or [])
            for handler in getattr(node, "handlers", []) or []:
                names |= _top_level(handler.body)
    return names
