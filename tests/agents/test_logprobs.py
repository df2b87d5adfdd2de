import numpy as np
import pytest

from agents.logprobs import step_logprobs


def reference(logits: np.ndarray, token: int, k: int) -> tuple[float, list[tuple[int, float]]]:
    shifted = logits.astype(np.float64) - logits.max()
    log_probs = shifted - np.log(np.exp(shifted).sum())
    order = np.argsort(-log_probs, kind="stable")[:k]
    return float(log_probs[token]), [(int(i), float(log_probs[i])) for i in order]


@pytest.mark.parametrize("spread", [1.0, 5.0, 30.0])
def test_matches_a_full_log_softmax_and_sort(spread: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        logits = (rng.standard_normal(151_936) * spread).astype(np.float32)
        token = int(rng.integers(0, logits.size))
        for k in (0, 1, 2, 5):
            got, got_top = step_logprobs(logits, token, k)
            want, want_top = reference(logits, token, k)
            assert got == pytest.approx(want, abs=1e-4)
            assert [i for i, _ in got_top] == [i for i, _ in want_top]
            assert [lp for _, lp in got_top] == pytest.approx([lp for _, lp in want_top], abs=1e-4)


def test_peaked_distribution_still_returns_k_alternatives() -> None:
    # One token dominates by far more than the "near" window: the fallback must find k anyway.
    logits = np.full(1000, -50.0, dtype=np.float32)
    logits[3], logits[9] = 40.0, -20.0
    chosen, top = step_logprobs(logits, 3, 3)
    assert chosen == pytest.approx(0.0, abs=1e-6)
    assert [i for i, _ in top][:2] == [3, 9]
    assert len(top) == 3
