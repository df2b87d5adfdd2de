"""Sampling agreement: where a task has no runnable example, several local answers are run on
the same inputs and compared by what they do (the CodeT / MBR-exec idea).

The inputs come from the task's examples when it has some, else from the argument types of
the function it defines (``int``, ``str``, ``list`` ...: a few ordinary and edge values each,
empty ones included). Each answer's behaviour is what every call returns or raises
(:meth:`router.checks.sandbox.Sandbox.run_calls`). Answers that behave the same form a
cluster; a strict majority of the k answers in one cluster is a confident answer (served from
that cluster, the greedy answer when it is in it), no majority escalates
(:func:`router.graph.decide.after_agreement`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from router.checks.sandbox import Sandbox

#: Values tried per annotated type (as Python source), ordinary ones first, then edge ones.
VALUES: dict[str, tuple[str, ...]] = {
    "int": ("3", "0", "1", "-2", "10", "100", "7"),
    "float": ("2.5", "0.0", "-1.5", "1.0", "100.25"),
    "bool": ("True", "False"),
    "str": ("'abc'", "''", "'Hello World'", "'  a  b '", "'aab'", "'a.b.c'", "'12'",
            "'x'", "'ABCdef'"),
    "list": ("[3, 1, 2]", "[]", "[1]", "[1, 1, 2, 2]", "['b', 'a', 'b']", "[-5, 0, 5]",
             "[[1, 2], [3, 4]]", "[(1, 3), (2, 6)]"),
    "dict": ("{'a': 1}", "{}", "{'a': {'b': [1, 2]}}"),
    "tuple": ("(1, 2)", "()", "(3,)"),
    "set": ("{1, 2}", "set()"),
    "any": ("[1, [2, 3]]", "''", "0", "'abc'", "[]", "None", "{'a': [1]}", "3"),
}
MAX_INPUTS = 12
_DEF = re.compile(r"^[ \t]*def[ \t]+(\w+)[ \t]*\((.*?)\)[^\n]*:", re.M | re.S)


@dataclass(frozen=True)
class Agreement:
    """``clusters``: answer indexes grouped by behaviour, largest first; ``share``: the
    largest cluster's share of the k answers; ``chosen``: the answer to serve (the greedy
    answer, index 0, when it is in the largest cluster)."""

    k: int
    inputs: int
    clusters: tuple[tuple[int, ...], ...]
    share: float
    chosen: int

    @property
    def majority(self) -> bool:
        return self.share * 2 > 1

    def as_dict(self) -> dict[str, Any]:
        return {"k": self.k, "inputs": self.inputs, "clusters": [len(c) for c in self.clusters],
                "share": round(self.share, 3), "majority": self.majority,
                "chosen": self.chosen}


def target_function(prompt: str) -> tuple[str, list[str]] | None:
    """The function the task defines last (its name and each positional parameter's
    annotation, ``any`` where there is none), or None when it defines none."""
    found = None
    for match in _DEF.finditer(prompt):
        try:
            node = ast.parse(f"def {match.group(1)}({match.group(2)}): pass").body[0]
        except SyntaxError:
            continue
        assert isinstance(node, ast.FunctionDef)
        args = [a for a in [*node.args.posonlyargs, *node.args.args]
                if a.arg not in ("self", "cls")]
        required = len(args) - len(node.args.defaults)
        found = (match.group(1), [_kind(a.annotation) for a in args[:required]])
    return found


def _kind(annotation: ast.expr | None) -> str:
    if annotation is None:
        return "any"
    text = ast.unparse(annotation).lower()
    for kind in ("list", "dict", "tuple", "set", "str", "float", "bool", "int"):
        if re.match(rf"(typing\.)?{kind}\b|(typing\.)?(sequence|iterable)\b", text):
            return "list" if text.startswith(("sequence", "iterable", "typing.seq")) else kind
    return "any"


def probe_calls(name: str, kinds: Sequence[str], examples: Sequence[str] = ()) -> list[str]:
    """Calls to compare answers on: the examples' calls, else up to ``MAX_INPUTS`` calls built
    from the argument types (each argument walks its type's values at its own offset, so the
    calls mix ordinary and edge values)."""
    if examples:
        return list(dict.fromkeys(examples))[:MAX_INPUTS]
    if not kinds:
        return [f"{name}()"]
    pools = [VALUES.get(kind, VALUES["any"]) for kind in kinds]
    longest = max(len(pool) for pool in pools)
    calls = []
    for i in range(max(longest, MAX_INPUTS if len(pools) > 1 else longest)):
        args = [pool[(i + offset) % len(pool)] for offset, pool in enumerate(pools)]
        calls.append(f"{name}({', '.join(args)})")
    if len(pools) > 1:  # and the all-edge combination (every argument's second value)
        calls.insert(1, f"{name}({', '.join(pool[min(1, len(pool) - 1)] for pool in pools)})")
    return list(dict.fromkeys(calls))[:MAX_INPUTS]


def behaviours(codes: Sequence[str | None], calls: Sequence[str], sandbox: Sandbox, *,
               timeout_s: float) -> list[tuple[str, ...]]:
    """Each answer's behaviour on the calls; an answer without code, or whose code does not
    load, behaves as ``("broken",)`` (all such answers agree with each other only)."""
    found = []
    for code in codes:
        result = sandbox.run_calls(code, calls, timeout_s=timeout_s) if code else None
        found.append(("broken",) if result is None else tuple(result))
    return found


def agree(found: Sequence[tuple[str, ...]], inputs: int) -> Agreement:
    """Cluster the answers by identical behaviour. An answer that does not even load never
    counts as a majority (a cluster of broken answers is no evidence)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, behaviour in enumerate(found):
        groups.setdefault(behaviour, []).append(index)
    ordered = sorted(groups.items(), key=lambda item: (item[0] == ("broken",), -len(item[1]),
                                                       item[1][0]))
    clusters = tuple(tuple(members) for _, members in ordered)
    top = clusters[0] if ordered and ordered[0][0] != ("broken",) else ()
    share = len(top) / len(found) if found else 0.0
    return Agreement(k=len(found), inputs=inputs, clusters=clusters, share=share,
                     chosen=0 if 0 in top or not top else top[0])

