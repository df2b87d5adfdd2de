"""Moving cached runs past an edit (agents.kv_reuse): the plan on token lists, then the real
0.5B coder, whose completion after a keystroke must not depend on what its cache held."""

from __future__ import annotations

from typing import Any

from agents.base import InfillRequest
from agents.kv_reuse import Run, evaluated, plan

PRE, SUF, MID = -1, -2, -3


def test_a_line_typed_at_the_cursor_keeps_the_suffix_moved_right() -> None:
    prefix, suffix, typed = list(range(100)), list(range(200, 300)), [900, 901, 902]
    old = [PRE, *prefix, SUF, *suffix, MID, 7, 8]  # the last completion's tokens at the end
    new = [PRE, *prefix, *typed, SUF, *suffix, MID]
    runs = plan(old, new, min_tokens=16)
    assert runs == [Run(0, 0, 101), Run(101, 104, 101)]  # <suf> ... suffix moved 3 right
    assert evaluated(runs, len(new)) == 4  # the typed tokens and <mid> again


def test_refresh_evaluates_the_head_of_each_moved_run_again() -> None:
    prefix, suffix, typed = list(range(100)), list(range(200, 300)), [900, 901, 902]
    old = [PRE, *prefix, SUF, *suffix, MID]
    new = [PRE, *prefix, *typed, SUF, *suffix, MID]
    runs = plan(old, new, min_tokens=16, refresh=32)
    assert runs == [Run(0, 0, 101), Run(133, 136, 69)]  # <suf> and 31 suffix tokens again
    assert evaluated(runs, len(new)) == 3 + 32 + 1
    assert plan(old, new, min_tokens=16, refresh=101) == [Run(0, 0, 101)]  # nothing left


def test_a_line_deleted_above_the_cursor_moves_the_rest_left() -> None:
    old = [PRE, *range(50), *range(500, 520), *range(100, 200), SUF, MID]
    new = [PRE, *range(50), *range(100, 200), SUF, MID]
    runs = plan(old, new, min_tokens=16)
    assert runs[0] == Run(0, 0, 51) and runs[1] == Run(71, 51, 101)
    assert evaluated(runs, len(new)) == 1


def test_short_runs_are_evaluated_again_and_the_last_token_always() -> None:
    old = [PRE, 1, 2, 3, 50, 51, 52, 53, 9, MID]
    new = [PRE, 1, 2, 3, 60, 51, 52, 53, 9, MID]
    runs = plan(old, new, min_tokens=16)
    assert runs == [Run(0, 0, 4)]  # 51..9 is too short to move
    assert plan(new, new, min_tokens=16) == [Run(0, 0, len(new) - 1)]


def test_an_unrelated_prompt_keeps_nothing() -> None:
    assert plan(list(range(100)), list(range(1000, 1100)), min_tokens=16) == []


FILE = "".join(f"def scale_{i}(values, k):\n    return [v * k for v in values]\n\n\n"
               for i in range(30))
PREFIX = FILE + 'def circle_area(radius: float) -> float:\n    """The area of a circle."""\n'
SUFFIX = "\n\ndef main() -> None:\n    print(circle_area(2.0))\n" + FILE.replace("scale_", "grow_")


def ask(coder: Any, prefix: str, reuse: int, refresh: int = 0) -> Any:
    *_, final = coder.infill(InfillRequest(prefix=prefix, suffix=SUFFIX, max_tokens=16,
                                           reuse_min_tokens=reuse, reuse_refresh_tokens=refresh))
    return final


def test_a_keystroke_evaluates_only_the_typed_line_and_completes_as_from_scratch(
        coder: Any) -> None:
    typed = PREFIX + "    import math\n"
    ask(coder, "x = 1\n", reuse=0)  # another file: nothing shared
    cold = ask(coder, typed, reuse=0)
    ask(coder, PREFIX, reuse=16)  # the file before the line was typed
    warm = ask(coder, typed, reuse=16)
    assert warm.extra["moved_prompt_tokens"] > 200  # the suffix window (256 tokens), moved
    assert warm.extra["cached_prompt_tokens"] >= warm.usage.prompt_tokens - 8
    assert "math.pi" in warm.text and warm.text == cold.text


def test_refreshed_tokens_are_evaluated_after_the_keystroke(coder: Any) -> None:
    typed = PREFIX + "    import math\n"
    ask(coder, PREFIX, reuse=16)
    moved = ask(coder, typed, reuse=16).extra["moved_prompt_tokens"]
    ask(coder, PREFIX, reuse=16)
    warm = ask(coder, typed, reuse=16, refresh=32)
    assert warm.extra["moved_prompt_tokens"] == moved - 32
    assert "math.pi" in warm.text
