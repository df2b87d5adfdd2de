"""Per-token logprobs read straight from llama.cpp's logits, cheaply.

llama-cpp-python's own ``logprobs=True`` path needs ``logits_all=True`` and ranks the whole
vocabulary in Python for every token (about eleven times slower here). This module computes
what the router needs from the single row of logits the sampler already used: the chosen
token's log-probability (an exact log-softmax) and the top-k alternatives, found among the few
tokens near the maximum instead of sorting 150k entries.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Alternatives are looked for within this many nats of the best logit; anything further has
# a probability below e^-12 of the best and is only needed when fewer than k tokens are close.
_NEAR_NATS = 12.0


def step_logprobs(
    logits: npt.NDArray[np.float32], token: int, k: int
) -> tuple[float, list[tuple[int, float]]]:
    """Return (logprob of ``token``, [(token id, logprob)] of the k most likely tokens)."""
    top = float(logits.max())
    log_z = top + float(np.log(np.exp(logits - top).sum(dtype=np.float64)))
    chosen = float(logits[token]) - log_z
    if k <= 0:
        return chosen, []
    candidates = np.flatnonzero(logits >= top - _NEAR_NATS)
    if candidates.size < k:
        candidates = np.argpartition(logits, -k)[-k:]
    best = candidates[np.argsort(-logits[candidates], kind="stable")[:k]]
    return chosen, [(int(i), float(logits[i]) - log_z) for i in best]
