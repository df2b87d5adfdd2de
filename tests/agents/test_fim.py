"""Fill-in-the-middle's pure parts: the window around the cursor, the token layout, where a
completion's block ends."""

from __future__ import annotations

from agents import fim


def words(text: str) -> int:
    return len(text.split()) or 1


def test_window_keeps_whole_lines_nearest_the_cursor() -> None:
    prefix = "".join(f"line{i} a b\n" for i in range(100)) + "    x = "
    suffix = "1\n" + "".join(f"after{i} a b\n" for i in range(100))
    win = fim.window(prefix, suffix, prefix_tokens=90, suffix_tokens=30, count=words)
    assert win.prefix.endswith("line99 a b\n    x = ")
    assert win.prefix.startswith("line")  # whole lines only
    assert words(win.prefix) <= 90
    assert win.suffix.startswith("1\nafter0 a b\n")
    assert words(win.suffix) <= 30
    assert win.prefix_lines_dropped + len(win.prefix.splitlines()) == 101


def test_window_edges_stay_put_while_typing_at_the_cursor() -> None:
    """The KV cache is reused up to the first changed token: a keystroke at the cursor must
    not move where the window starts."""
    body = "".join(f"value_{i} = compute({i})\n" for i in range(300))
    starts = set()
    for typed in ("", "r", "re", "ret", "retu", "return", "return total"):
        win = fim.window(body + "    " + typed, "\n", prefix_tokens=400, suffix_tokens=64,
                         count=words)
        starts.add(win.prefix_lines_dropped)
    assert len(starts) == 1
    assert starts.pop() % fim.ANCHOR_LINES == 0


def test_small_text_is_kept_whole() -> None:
    win = fim.window("def f():\n    ", "\n", prefix_tokens=100, suffix_tokens=100, count=words)
    assert (win.prefix, win.suffix) == ("def f():\n    ", "\n")
    assert win.prefix_lines_dropped == win.suffix_lines_dropped == 0


def test_layout_orders() -> None:
    tokens = fim.FimTokens(prefix=1, suffix=2, middle=3)
    assert fim.layout([10, 11], [20], tokens) == [1, 10, 11, 2, 20, 3]
    assert fim.layout([10, 11], [20], tokens, order="spm", bos=[0]) == [0, 2, 20, 1, 10, 11, 3]


def block(prefix: str, suffix: str) -> fim.BlockEnd:
    return fim.BlockEnd.around(prefix, suffix)


def test_stops_at_a_blank_line_after_code() -> None:
    end = block("def f(x):\n", "")
    text = "    return x + 1\n\ndef g():\n"
    assert text[:end.cut(text)] == "    return x + 1"


def test_stops_where_the_suffix_starts_again() -> None:
    prefix = "def total(xs):\n    s = 0\n"
    suffix = "    return s\n"
    end = block(prefix, suffix)
    text = "    for x in xs:\n        s += x\n    return s\n"
    kept = text[:end.cut(text)]
    assert kept == "    for x in xs:\n        s += x\n"  # the newline stays: suffix starts a line
    assert prefix + kept + suffix == "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"


def test_stops_at_a_line_less_indented_than_the_block() -> None:
    prefix = "class A:\n    def f(self):\n        y = 1\n        "
    end = block(prefix, "\n")
    text = "return y\nclass B:\n"
    assert text[:end.cut(text)] == "return y"


def test_mid_line_cursor_finishes_the_line() -> None:
    end = block("    result = compute(", ")\n    print(result)\n")
    assert end.cut("a, b") is None
    text = "a, b)\n    print(result)\n"
    assert text[:end.cut(text)] == "a, b)"


def test_no_cut_while_the_block_goes_on() -> None:
    end = block("def f(xs):\n", "\n\nprint(f([1]))\n")
    assert end.cut("    out = []\n    for x in xs:\n        out.append(x)\n") is None


def test_safe_holds_back_a_line_that_may_end_the_block() -> None:
    end = block("def total(xs):\n    s = 0\n", "    return s\n")
    assert end.safe("    s += 1\n    ret") == len("    s += 1")  # may become the suffix line
    assert end.safe("    s += 1\n    x = 2") == len("    s += 1\n    x = 2")
    assert end.safe("    s += 1\n") == len("    s += 1")  # may be a blank line


def test_stop_strings_and_block_end_together() -> None:
    stopper = fim.with_block_end(fim.stop_strings(("#",)), block("def f():\n", ""))
    assert stopper("    x = 1  # note") == (len("    x = 1  "), len("    x = 1  # note"))
    cut, _ = stopper("    x = 1\n\n")
    assert cut == len("    x = 1")


def test_an_editors_fim_template_is_taken_apart() -> None:
    texts = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    assert fim.untemplate("<|fim_prefix|>def f():\n<|fim_suffix|>\nf()\n<|fim_middle|>",
                          texts) == ("def f():\n", "\nf()\n")
    assert fim.untemplate("<|fim_suffix|>\nf()\n<|fim_prefix|>def f():\n<|fim_middle|>",
                          texts) == ("def f():\n", "\nf()\n")
    assert fim.untemplate("x = '<|fim_middle|>'\n", texts) is None  # code that names a token
    assert fim.untemplate("def f():\n", texts) is None
