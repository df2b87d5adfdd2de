from __future__ import annotations

import pytest

from router.checks.code import CodeBlock, canonical_language, extract_code_blocks, syntax_ok

ANSWER = """Here is the function:

```python
def add(a, b):
    return a + b
```

And a JavaScript version:

```js
const add = (a, b) => a + b;
```
"""


def test_fenced_blocks_in_order_with_languages() -> None:
    assert extract_code_blocks(ANSWER) == [
        CodeBlock("python", "def add(a, b):\n    return a + b\n"),
        CodeBlock("javascript", "const add = (a, b) => a + b;\n"),
    ]


def test_unlabelled_fence_takes_the_default_or_python_or_none() -> None:
    text = "```\nfunc main() {}\n```\n"
    assert extract_code_blocks(text, default_language="golang") == [
        CodeBlock("go", "func main() {}\n")
    ]
    assert extract_code_blocks(text) == [CodeBlock(None, "func main() {}\n")]
    assert extract_code_blocks("```\nx = 1\n```") == [CodeBlock("python", "x = 1\n")]


def test_truncated_last_fence_runs_to_the_end() -> None:
    blocks = extract_code_blocks("Sure:\n~~~python\ndef f(:\n")
    assert blocks == [CodeBlock("python", "def f(:\n")]
    assert syntax_ok(blocks[0]) is False


def test_bare_python_answer_is_one_block_but_prose_is_none() -> None:
    code = "def add(a, b):\n    return a + b\n"
    assert extract_code_blocks(code) == [CodeBlock("python", code)]
    assert extract_code_blocks("Yes") == []
    assert extract_code_blocks("The answer is 42.") == []


@pytest.mark.parametrize(
    ("language", "good", "bad"),
    [
        ("python", "def f(x):\n    return x * 2\n", "def f(x)\n    return x * 2\n"),
        ("javascript", "function f(x) { return x * 2; }", "function f(x { return x * 2; }"),
        ("typescript", "function f(x: number): number { return x; }", "function f(x: ) {"),
        ("go", "package main\n\nfunc f(x int) int { return x * 2 }\n",
         "package main\n\nfunc f(x int) int { return x * \n"),
        ("rust", "fn f(x: i32) -> i32 { x * 2 }", "fn f(x: i32) -> i32 { x * }"),
        ("java", "class A { int f(int x) { return x; } }", "class A { int f(int x) { return x } }"),
        ("c", "int f(int x) { return x; }", "int f(int x) { return x }"),
        ("cpp", "int f(int x) { return x; }", "int f(int x { return x; }"),
    ],
)
def test_syntax_ok_and_failing(language: str, good: str, bad: str) -> None:
    assert syntax_ok(CodeBlock(language, good)) is True
    assert syntax_ok(CodeBlock(language, bad)) is False


def test_python_syntax_warning_is_not_a_failure() -> None:
    assert syntax_ok(CodeBlock("python", "import re\nP = re.compile('\\d+')\n")) is True


def test_unknown_language_is_not_checked() -> None:
    assert syntax_ok(CodeBlock("cobol", "IDENTIFICATION DIVISION.")) is None
    assert syntax_ok(CodeBlock(None, "whatever")) is None


def test_canonical_language() -> None:
    assert canonical_language("py") == "python"
    assert canonical_language("C++") == "cpp"
    assert canonical_language("{.python}") == "python"
    assert canonical_language("") is None
