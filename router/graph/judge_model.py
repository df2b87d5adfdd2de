"""The learned judge: a logistic regression over every signal of a local answer, giving the
probability that the answer is right.

Its inputs (:func:`features`) are plain numbers derived from the logprobs (mean, low
quantiles, the worst token and window, the top-k entropy, the length), the code checks
(examples passed, failed or absent, how many ran, syntax errors, no code at all, repair rounds
used) and the task (type, prompt tokens, files). The model is a small JSON file (feature
names, standardisation, coefficients, intercept, the threshold chosen for a target, and
what it was fitted on), never a pickle: ``smallcode calibrate --fit`` writes it and the judge
reads it (:func:`load`). Fitting (:func:`fit`) is the only place scikit-learn is imported.

The judge escalates below the model's threshold; no logprobs is still no evidence (None).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from router.graph import signals

#: The features, in the model file's order.
FEATURES = (
    "lp_mean", "lp_q10", "lp_q25", "lp_min", "lp_window", "entropy_mean", "log_tokens",
    "examples_passed", "examples_failed", "examples_none", "examples_log_ran",
    "examples_pass_rate", "syntax_error", "no_code", "repair_rounds",
    "task_generate", "task_complete", "log_prompt_tokens", "files",
)
BUILTIN = "builtin"
FORMAT = 1


class JudgeModelError(Exception):
    """A judge model file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class JudgeModel:
    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)
    #: Each feature's range in the fitted data (empty: unknown, no clamping).
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def probability(self, values: Mapping[str, float]) -> float:
        """The probability that the answer is right, from :func:`features`' values. A value
        outside the range the model was fitted on counts as the range's end: a linear model
        must not extrapolate (HumanEval's prompts are 30 to 450 tokens; a client's system
        prompt alone can be 2,000)."""
        z = self.intercept
        for i, (name, m, s, c) in enumerate(zip(self.features, self.mean, self.scale,
                                                self.coef, strict=True)):
            value = values.get(name, 0.0)
            if self.low:
                value = max(self.low[i], min(self.high[i], value))
            z += c * (value - m) / s
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def weights(self) -> dict[str, float]:
        """Each feature's coefficient on the standardised scale (what the model leans on)."""
        return dict(zip(self.features, self.coef, strict=True))


# --- the features ------------------------------------------------------------------------

def logprob_features(logprobs: Sequence[float],
                     tops: Sequence[Sequence[float]] = ()) -> dict[str, float] | None:
    """Length-robust views of the chosen tokens' probabilities, and the mean entropy of each
    step's top-k alternatives (the rest of the mass as one more outcome). None without
    logprobs: no evidence."""
    if not logprobs:
        return None
    probs = signals.token_probs(logprobs)
    entropies = []
    for top in tops:
        ps = [math.exp(lp) for lp in top]
        rest = max(0.0, 1.0 - sum(ps))
        entropies.append(-sum(p * math.log(p) for p in [*ps, rest] if p > 0))
    return {
        "lp_mean": sum(probs) / len(probs),
        "lp_q10": signals.quantile(probs, 0.1),
        "lp_q25": signals.quantile(probs, 0.25),
        "lp_min": min(probs),
        "lp_window": signals.worst_window(probs),
        "entropy_mean": sum(entropies) / len(entropies) if entropies else 0.0,
        "log_tokens": math.log1p(len(probs)),
    }


def features(*, logprob: Mapping[str, float] | None, syntax_errors: int, code_blocks: int,
             examples: Mapping[str, Any] | None, repair_rounds: int, task_type: str | None,
             prompt_tokens: int, files: int) -> dict[str, float] | None:
    """Every signal of one local answer as numbers; None without logprobs. ``examples``: the
    execution checks' ``passed``, ``ran`` and ``failed`` (None: no example could run)."""
    if logprob is None:
        return None
    ran = int(examples["ran"]) if examples is not None else 0
    failed = int(examples["failed"]) if examples is not None else 0
    return {
        **logprob,
        "examples_passed": float(examples is not None and bool(examples["passed"])),
        "examples_failed": float(examples is not None and not examples["passed"]),
        "examples_none": float(examples is None),
        "examples_log_ran": math.log1p(ran),
        "examples_pass_rate": (ran - failed) / ran if ran else 0.0,
        "syntax_error": float(syntax_errors > 0),
        "no_code": float(code_blocks == 0),
        "repair_rounds": float(repair_rounds),
        "task_generate": float(task_type == "generate"),
        "task_complete": float(task_type == "complete"),
        "log_prompt_tokens": math.log1p(prompt_tokens),
        "files": float(files),
    }


# --- the file ----------------------------------------------------------------------------

def builtin_path() -> Path:
    """The shipped model: fitted on the calibrate half of HumanEval (BENCHMARKS.md)."""
    return Path(str(resources.files("router.graph").joinpath("models", "judge-humaneval.json")))


def resolve(setting: str) -> Path:
    """The file a ``judge_model`` setting names: ``builtin`` or a path."""
    return builtin_path() if setting == BUILTIN else Path(setting).expanduser()


def load(setting: str) -> JudgeModel:
    """The model a ``judge_model`` setting names (read once per file and change)."""
    path = resolve(setting)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as exc:
        raise JudgeModelError(f"judge model {path}: cannot read it ({exc.strerror}); fit one "
                              "with `smallcode calibrate --fit`, or set judge_model: null") from None
    return _load(path, stamp)


@lru_cache(maxsize=8)
def _load(path: Path, stamp: int) -> JudgeModel:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JudgeModelError(f"judge model {path}: not a JSON model file ({exc})") from None
    return from_dict(data, str(path))


def from_dict(data: Any, where: str = "judge model") -> JudgeModel:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise JudgeModelError(f"{where}: not a judge model of format {FORMAT}")
    try:
        names = tuple(str(n) for n in data["features"])
        mean, scale, coef = vectors = [tuple(float(v) for v in data[key])
                                       for key in ("mean", "scale", "coef")]
        low, high = (tuple(float(v) for v in data.get(key, ())) for key in ("low", "high"))
        model = JudgeModel(names, mean, scale, coef, intercept=float(data["intercept"]),
                           threshold=float(data["threshold"]), meta=dict(data.get("meta", {})),
                           low=low, high=high)
    except (KeyError, TypeError, ValueError) as exc:
        raise JudgeModelError(f"{where}: missing or bad field ({exc})") from None
    unknown = sorted(set(names) - set(FEATURES))
    if unknown:
        raise JudgeModelError(f"{where}: unknown features {', '.join(unknown)}")
    if not all(len(v) == len(names) for v in vectors) or any(s <= 0 for s in model.scale):
        raise JudgeModelError(f"{where}: mean, scale and coef must match the features")
    if (low or high) and not (len(low) == len(high) == len(names)
                              and all(a <= b for a, b in zip(low, high, strict=True))):
        raise JudgeModelError(f"{where}: low and high must match the features, low <= high")
    if not 0.0 <= model.threshold <= 1.0:
        raise JudgeModelError(f"{where}: threshold must be in [0, 1]")
    return model


def save(model: JudgeModel, path: Path) -> None:
    data = {"format": FORMAT, **asdict(model)}
    data["features"] = list(model.features)
    for key in ("mean", "scale", "coef", "low", "high"):
        data[key] = [round(v, 6) for v in getattr(model, key)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


# --- fitting -----------------------------------------------------------------------------

def fit(rows: Sequence[Mapping[str, float]], labels: Sequence[bool], *,
        threshold: float = 0.5, meta: Mapping[str, Any] | None = None) -> JudgeModel:
    """A logistic regression (L2, its strength chosen by 5-fold cross-validated log loss) on
    standardised features. A feature that never varies gets weight 0."""
    # deferred: numpy and sklearn are heavy; only fitting needs them, not loading
    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV

    if len(rows) != len(labels) or not rows:
        raise JudgeModelError("fit needs one label per row, and some rows")
    if len(set(labels)) < 2:
        raise JudgeModelError("fit needs both right and wrong answers among the outcomes")
    x = np.array([[float(r.get(name, 0.0)) for name in FEATURES] for r in rows])
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    y = np.array([bool(v) for v in labels])
    folds = max(2, min(5, int(y.sum()), int((~y).sum())))
    regression = LogisticRegressionCV(Cs=10, cv=folds, scoring="neg_log_loss", max_iter=5000,
                                      l1_ratios=(0.0,), use_legacy_attributes=False)
    regression.fit(z, y)
    return JudgeModel(FEATURES, tuple(float(v) for v in mean), tuple(float(v) for v in scale),
                      tuple(float(v) for v in regression.coef_[0]),
                      float(regression.intercept_[0]), threshold,
                      {**(meta or {}), "n": len(rows), "C": float(regression.C_)},
                      low=tuple(float(v) for v in x.min(axis=0)),
                      high=tuple(float(v) for v in x.max(axis=0)))
