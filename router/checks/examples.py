"""The runnable examples of a task prompt, in every form a docstring writes them.

Docstrings show examples in many ways besides doctest's ``>>>`` (which
:func:`router.checks.sandbox.doctest_examples` reads)::

    f(x) == y        f(x) ➞ y        f(x) -> y        f(x) => y        f(x) ==> y
    f(x) = y         f(x) returns y  f(x) should return y.             f(x)  # => y
    For x = 3 the output should be 5.      For s = "ab", c = "a", the result should be ('b', True)
    Input: arr = [1, 2], k = 1             Example 1:
    Output: [2]                                Input: [4, 2, 3]
                                               Output: [2, 1]
    arr = [2, 1]                           (a prose list: the argument, then what to return)
    return ["Two", "One"]

:func:`find_examples` reads them all (pure: text in, :class:`Example` list out) and
:func:`as_test_code` turns them into Python test code, one ``test_*`` function per example,
for :meth:`router.checks.sandbox.Sandbox.run_tests`. An example counts only when every
argument and the expected value are Python literals (``true``/``false``/``null`` read as
``True``/``False``/``None``): a call that names variables, or an expected value written in
words, is prose, not a check. Each failing test says which call, what it should return and
what it returned, so the local model can be told (:mod:`router.graph.repair`).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass

#: Separators between a call and its expected value, strongest first. ``=`` and ``is`` are
#: weak (a docstring also writes definitions that way: ``tri(1) = 3``): they count only after
#: the docstring's last "Example" heading, when it has one.
_STRONG = re.compile(
    r"\s*(?:#\s*)?(?:==>|===|==|=>|->|➞|→|⟶|-->|should\s+return|returns|will\s+return"
    r"|should\s+be|gives|evaluates\s+to|outputs?)\s*:?\s*", re.IGNORECASE)
_WEAK = re.compile(r"\s*(?:=|:|is|is\s+equal\s+to|equals)\s+|\s*=\s*(?=\S)", re.IGNORECASE)
_HEADING = re.compile(r"^\s*(?:for\s+)?(?:examples?|e\.g\.|\[input/output\]\s+samples?)\b",
                      re.IGNORECASE | re.MULTILINE)
_DEF = re.compile(r"^[ \t]*def[ \t]+(?P<name>\w+)[ \t]*\((?P<params>.*?)\)[^\n]*:",
                  re.MULTILINE | re.DOTALL)
_FOR_OUTPUT = re.compile(
    r"^\W*for\s+(?P<inputs>.+?)\s*,?\s*the\s+(?:output|result|answer|return\s+value)\s+"
    r"(?:should\s+be|will\s+be|is|=)\s*:?\s*(?P<want>.+)$", re.IGNORECASE)
_INPUT = re.compile(r"^\W*input\s*:\s*(?P<rest>.*)$", re.IGNORECASE)
_OUTPUT = re.compile(r"^\W*output\s*:\s*(?P<rest>.*)$", re.IGNORECASE)
_ASSIGN = re.compile(r"\s*(?P<name>[A-Za-z_]\w*)\s*[=:]\s*")
_RETURN = re.compile(r"^\W*return\s*=?\s*(?P<want>.+)$", re.IGNORECASE)
_WORDS = {"true": "True", "false": "False", "none": "None", "null": "None"}


@dataclass(frozen=True)
class Example:
    """One example: ``call`` (a call of the function on literals, as Python source) should
    return ``expected`` (a literal, as Python source). ``form`` names how it was written."""

    function: str
    call: str
    expected: str
    form: str


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[str, ...]
    start: int  # where its definition starts in the prompt
    end: int  # where the next definition starts (its docstring lies between)


def functions_of(prompt: str) -> list[Function]:
    """The functions a prompt defines (``def`` lines), with their positional parameters."""
    found = []
    matches = list(_DEF.finditer(prompt))
    for index, match in enumerate(matches):
        try:
            tree = ast.parse(f"def _({match.group('params')}): pass")
        except SyntaxError:
            continue
        node = tree.body[0]
        assert isinstance(node, ast.FunctionDef)
        params = tuple(a.arg for a in [*node.args.posonlyargs, *node.args.args]
                       if a.arg not in ("self", "cls"))
        end = matches[index + 1].start() if index + 1 < len(matches) else len(prompt)
        found.append(Function(match.group("name"), params, match.start(), end))
    return found


def find_examples(prompt: str, entry_point: str | None = None) -> list[Example]:
    """Every runnable example the prompt gives for its functions (``entry_point``: the one
    under test; default: the last function the prompt defines), without duplicates.
    ``>>>`` lines are left to the doctest reader."""
    functions = functions_of(prompt)
    if not functions:
        return []
    target = next((f for f in functions if f.name == entry_point), functions[-1])
    names = {f.name for f in functions}
    found: list[Example] = []
    for function in functions:
        text = prompt[function.start:function.end]
        found += _call_examples(text, function.name, function.name)
        if function is target:
            found += _for_output_examples(text, function)
            found += _input_output_examples(text, function)
            found += _prose_examples(text, function)
    if not any(e.function == target.name for e in found):
        # An example that calls the function by another name (``grade_equation(...) ==> ...``
        # in the docstring of ``numerical_letter_grade``): the one defined is meant.
        text = prompt[target.start:target.end]
        for other in sorted(set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", text)) - names):
            if other not in _NOT_RENAMED:
                found += [e for e in _call_examples(text, other, target.name)
                          if e.form != "="]
    unique: dict[tuple[str, str], Example] = {}
    for example in found:
        unique.setdefault((example.call, example.expected), example)
    calls = [call for call, _ in unique]
    # One call with two different expected values is prose (``tri(3) = tri(2) + ...``).
    return [e for e in unique.values() if calls.count(e.call) == 1]


_NOT_RENAMED = frozenset({
    "print", "len", "range", "int", "str", "float", "list", "dict", "set", "tuple", "sum",
    "max", "min", "sorted", "abs", "round", "ord", "chr", "bin", "hex", "isinstance", "type",
    "Input", "Output", "Example", "assert", "return", "for", "if", "and", "or", "not",
})


def _call_examples(text: str, written: str, function: str) -> list[Example]:
    """``written(args) <separator> expected``: the call's arguments must be literals."""
    heading = max((m.end() for m in _HEADING.finditer(text)), default=0)
    examples = []
    for match in re.finditer(rf"(?<![\w.]){re.escape(written)}\s*\(", text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        prefix = text[line_start:match.start()]
        if prefix.lstrip().startswith((">>>", "...", "def ")) or "def " in prefix:
            continue
        close = _closing(text, match.end() - 1)
        if close is None:
            continue
        arguments = _literal_arguments(text[match.end() - 1:close + 1])
        if arguments is None:
            continue
        rest = _line_from(text, close + 1)
        separator = _STRONG.match(rest)
        form = None
        if separator and separator.group().strip():
            form = _form(separator.group())
        elif match.start() >= heading:
            separator = _WEAK.match(rest)
            if separator and separator.group().strip():
                form = "="
        if form is None or separator is None:
            continue
        expected = _expected(rest[separator.end():])
        if expected is None:
            continue
        examples.append(Example(function, f"{function}({arguments})", expected, form))
    return examples


def _line_from(text: str, start: int) -> str:
    """The rest of the line from ``start``, continued on the next lines while a bracket it
    opens is still open."""
    end = text.find("\n", start)
    while end != -1 and _depth(text[start:end]) > 0 and end - start < 4000:
        end = text.find("\n", end + 1)
    return text[start:] if end == -1 else text[start:end]


def _form(separator: str) -> str:
    words = " ".join(separator.replace("#", " ").split()).lower().rstrip(":").strip()
    return words or "="


def _for_output_examples(text: str, function: Function) -> list[Example]:
    """``For x = 3 the output should be 5`` (several ``name = value`` pairs allowed)."""
    examples = []
    for line in _joined_lines(text):
        match = _FOR_OUTPUT.match(line)
        if not match:
            continue
        call = _call_from_inputs(match.group("inputs"), function)
        expected = _expected(match.group("want"))
        if call and expected is not None:
            examples.append(Example(function.name, call, expected, "for ... the output"))
    return examples


def _input_output_examples(text: str, function: Function) -> list[Example]:
    """``Input: ...`` (on its line and the lines below it) then ``Output: ...``."""
    examples = []
    lines = _joined_lines(text)
    for index, line in enumerate(lines):
        match = _INPUT.match(line)
        if not match:
            continue
        inputs = [match.group("rest")]
        for later in lines[index + 1:index + 12]:
            output = _OUTPUT.match(later)
            if output:
                call = _call_from_inputs(", ".join(i for i in inputs if i.strip()), function)
                expected = _expected(output.group("rest"))
                if call and expected is not None:
                    examples.append(Example(function.name, call, expected, "input/output"))
                break
            if _INPUT.match(later):
                break
            inputs.append(later.strip())
    return examples


def _prose_examples(text: str, function: Function) -> list[Example]:
    """A prose list: ``arg = value`` of the only parameter, then ``return value`` within a
    few lines."""
    if len(function.params) != 1:
        return []
    examples = []
    lines = _joined_lines(text)
    name = function.params[0]
    for index, line in enumerate(lines):
        match = re.match(rf"^\W*{re.escape(name)}\s*=\s*(?P<value>.+)$", line)
        if not match:
            continue
        value = _expected(match.group("value"))
        if value is None:
            continue
        for later in lines[index + 1:index + 5]:
            returned = _RETURN.match(later)
            if returned:
                expected = _expected(returned.group("want"))
                if expected is not None:
                    examples.append(Example(function.name, f"{function.name}({value})",
                                            expected, "prose"))
                break
    return examples


def _call_from_inputs(inputs: str, function: Function) -> str | None:
    """``a = 1, b = [2]`` or ``grid : [[1]]`` or a bare literal, mapped to the parameters by
    name, else by position when the count matches."""
    pairs: list[tuple[str, str]] = []
    rest = inputs.strip()
    while rest:
        assign = _ASSIGN.match(rest)
        if not assign:
            break
        value, used = _leading_literal(rest[assign.end():])
        if value is None:
            break
        pairs.append((assign.group("name"), value))
        rest = rest[assign.end() + used:].lstrip(" ,;\n")
        if rest.lower().startswith("and "):
            rest = rest[4:]
    params = function.params
    if pairs:
        names = [n for n, _ in pairs]
        if set(names) == set(params) and len(names) == len(params):
            by_name = dict(pairs)
            return f"{function.name}({', '.join(by_name[p] for p in params)})"
        if len(pairs) == len(params) and all(n == p or n not in params
                                              for n, p in zip(names, params, strict=True)):
            return f"{function.name}({', '.join(v for _, v in pairs)})"
        return None
    value, used = _leading_literal(inputs)
    if value is None or inputs[used:].strip(" .,"):
        return None
    if len(params) == 1:
        return f"{function.name}({value})"
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return None
    if isinstance(parsed, tuple) and len(parsed) == len(params):
        return f"{function.name}{value}"
    return None


def _joined_lines(text: str) -> list[str]:
    """The text's lines, a line whose brackets are still open joined with the next ones."""
    joined: list[str] = []
    pending = ""
    for line in text.splitlines():
        pending = f"{pending} {line.strip()}" if pending else line
        if _depth(pending) <= 0 or len(pending) > 2000:
            joined.append(pending)
            pending = ""
    if pending:
        joined.append(pending)
    return joined


def _depth(text: str) -> int:
    """How many brackets ``text`` leaves open (quotes respected; an apostrophe inside a word,
    as in "let's", opens none)."""
    depth, quote = 0, None
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char == '"' or (char == "'" and not text[index - 1:index].isalnum()):
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
    return depth


def _closing(text: str, start: int) -> int | None:
    """The index of the bracket closing the one at ``start`` (quotes respected)."""
    depth, quote, index = 0, None, start
    while index < len(text) and index < start + 4000:
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _literal_arguments(parenthesised: str) -> str | None:
    """``(1, [2, 3], "a")`` → ``1, [2, 3], 'a'`` when every argument is a literal."""
    source = _normalise_words(parenthesised)
    if source is None:
        return None
    try:
        tree = ast.parse(f"_{source}".replace("\n", " "), mode="eval")
    except SyntaxError:
        return None
    call = tree.body
    if not isinstance(call, ast.Call) or (call.keywords and any(k.arg is None for k in call.keywords)):
        return None
    parts = []
    for node in [*call.args, *(k.value for k in call.keywords)]:
        if isinstance(node, ast.Starred) or not _is_literal(node):
            return None
    for node in call.args:
        parts.append(ast.unparse(node))
    for keyword in call.keywords:
        parts.append(f"{keyword.arg}={ast.unparse(keyword.value)}")
    return ", ".join(parts)


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _expected(text: str) -> str | None:
    """The expected value at the start of ``text``: a literal, read up to where the prose
    begins (``'No' (the name should ...)``, ``24 # sum of 21 + 3``, ``True.``); in a chain
    of equalities (``19 - 5 - 6 = 8``) the last one."""
    text = text.strip()
    if not text:
        return None
    segments = _split_equals(text)
    if len(segments) > 1:
        value, used = _leading_literal(segments[-1])
        return value if value is not None and not segments[-1][used:].strip(" .,;") else None
    value, _ = _leading_literal(text)
    return value


def _split_equals(text: str) -> list[str]:
    """``a = b = c`` split on single ``=`` signs outside quotes and brackets."""
    parts, quote, depth, start = [], None, 0, 0
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif (char == "=" and depth == 0 and text[index - 1:index] not in "=<>!"
              and text[index + 1:index + 2] != "="):
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _leading_literal(text: str) -> tuple[str | None, int]:
    """The longest literal the text starts with, as Python source, and how many characters
    of ``text`` it took; (None, 0) when it starts with none."""
    text = text.rstrip()
    ends = _token_ends(text)
    for end in sorted(ends, reverse=True):
        candidate = text[:end].rstrip()
        # A sentence's full stop or comma is not part of the value ("1." is not 1.0,
        # "1000," not a tuple), and a literal runs into no word or quote (""aaa").
        if candidate.endswith((".", ",")):
            candidate = candidate[:-1].rstrip()
            end = len(candidate)
        after = text[end:end + 1]
        if not candidate.strip() or (after and (after.isalnum() or after in "'\"_")):
            continue
        candidate = candidate.strip()
        source = _normalise_words(candidate)
        if source is None:
            continue
        try:
            value = ast.literal_eval(source)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, str) and candidate[:1] not in "'\"":
            continue
        return repr(value), end
    return None, 0


def _token_ends(text: str) -> list[int]:
    """Offsets in ``text`` where a Python token ends (a literal can only end there)."""
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    ends: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.ENDMARKER, tokenize.NEWLINE, tokenize.NL,
                              tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                continue
            row, col = token.end
            ends.add(offsets[row - 1] + col)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return [e for e in ends if e <= len(text)]


def _normalise_words(source: str) -> str | None:
    """``true``/``false``/``null``/``none`` outside strings as Python's constants."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    words = [t for t in tokens if t.type == tokenize.NAME and t.string in _WORDS]
    if not words:
        return source
    starts = [0]
    for line in source.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    out, last = [], 0
    for token in words:
        begin = starts[token.start[0] - 1] + token.start[1]
        out += [source[last:begin], _WORDS[token.string]]
        last = begin + len(token.string)
    out.append(source[last:])
    return "".join(out)


# --- as test code ------------------------------------------------------------------------------

_HELPER = '''
def _same(got, want):
    if isinstance(want, float) or isinstance(got, float):
        if isinstance(got, bool) or isinstance(want, bool):
            return got == want
        try:
            return abs(got - want) <= 1e-6 * max(1.0, abs(want))
        except TypeError:
            return False
    if isinstance(want, (list, tuple)) and type(got) is type(want):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    return got == want


def _check(call, got, want):
    if not _same(got, want):
        raise AssertionError(f"{call} should return {want!r}; it returned {got!r}")
'''


def as_test_code(examples: list[Example]) -> str | None:
    """Python test code with one ``test_example_N`` function per example (None when there
    are none). A failure reads ``AssertionError: f(2) should return 4; it returned 5``; an
    example whose call raises fails with that exception."""
    if not examples:
        return None
    parts = [_HELPER]
    for number, example in enumerate(examples, 1):
        parts.append(
            f"def test_example_{number}():\n"
            f"    _check({example.call!r}, {example.call}, {example.expected})\n")
    return "\n\n".join(parts)
