"""Adapt the embedding model to a code base: contrastive fine-tuning on docstring → code pairs.

The bundled MiniLM was trained mostly on prose, and a query ("Stop the event loop as soon as
reasonable") rarely shares words with the undocumented code that answers it. A code base that
documents some of its functions teaches the model the rest: each Python function or method
with a docstring of at least 20 characters gives one pair, its docstring (what a query looks
like) and its chunk with the docstring taken out, in the very text the index embeds
(``index.embedding_text``).

Training uses in-batch negatives (the symmetric multiple-negatives ranking loss): within a
batch each docstring must score its own function above every other function, and each
function its own docstring. Batches are cut from the pairs sorted by file, then shuffled, so a
query's negatives are mostly its neighbours in the same module, the functions it is most
easily confused with.

The result is a sentence-transformers directory with a ``smallcode-tuning.json`` manifest.
Point ``retrieval.embedding_model`` at it and re-index: an index remembers the model that
built it and refuses queries embedded by another.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from retrieval import walk as walking
from retrieval.chunking import analyse
from retrieval.config import RetrievalConfig
from retrieval.docstrings import strip_docstrings
from retrieval.embed import load_model
from retrieval.errors import TuningError
from retrieval.index import embedding_text

MANIFEST = "smallcode-tuning.json"
MIN_PAIRS = 8
QUERY_MAX_TOKENS = 128  # docstrings past this say little more
SCALE = 20.0  # cosine similarities times this are the logits of the ranking loss

Progress = Callable[[int, int, float], None]  # (step, steps, loss)


@dataclass(frozen=True)
class Pair:
    path: str
    symbol: str
    query: str  # the docstring
    document: str  # the function's embedding text, docstring removed


@dataclass(frozen=True)
class TuneOptions:
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 3e-5
    seed: int = 0

    def check(self) -> None:
        if not 0 < self.epochs <= 20:
            raise TuningError(f"epochs must be above 0 and at most 20, not {self.epochs}")
        if not 2 <= self.batch_size <= 512:
            raise TuningError(f"batch size must be 2 to 512, not {self.batch_size}")
        if not 0 < self.learning_rate <= 1e-3:
            raise TuningError(
                f"learning rate must be above 0 and at most 0.001, not {self.learning_rate}"
            )


@dataclass(frozen=True)
class TuneSummary:
    base_model: str
    out: str
    pairs: int
    steps: int
    epochs: float
    batch_size: int
    learning_rate: float
    first_loss: float
    last_loss: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect_pairs(
    root: Path, config: RetrievalConfig, exclude: Sequence[str] = ()
) -> list[Pair]:
    """Docstring → code pairs from the Python files under root that the index would read.

    ``exclude``: globs on '/'-separated paths relative to root (``tests/*``) left out, for
    example to keep an evaluation set unseen. Files that do not parse are passed over.
    """
    root = walking.resolve_root(root)
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    for source in walking.walk(root, config):
        if isinstance(source, walking.Skipped) or not source.path.endswith(".py"):
            continue
        if any(fnmatchcase(source.path, pattern) for pattern in exclude):
            continue
        text = walking.read_text(root, source)
        if isinstance(text, walking.Skipped):
            continue
        try:
            stripped, documented = strip_docstrings(text, source.path)
        except (SyntaxError, ValueError):
            continue
        chunks = analyse(
            source.path, stripped,
            max_chunk_lines=config.max_chunk_lines, window_lines=config.window_lines,
        ).chunks
        by_symbol = {chunk.symbol: chunk for chunk in chunks if chunk.symbol}
        for item in documented:
            chunk = by_symbol.get(item.symbol)
            if chunk is None:  # a long function split into windows has no single chunk
                continue
            document = embedding_text(chunk)
            if (item.docstring, document) in seen:
                continue
            seen.add((item.docstring, document))
            pairs.append(Pair(item.path, item.symbol, item.docstring, document))
    return pairs


def tune(
    base_model: str,
    pairs: Sequence[Pair],
    out: Path,
    options: TuneOptions = TuneOptions(),
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> TuneSummary:
    """Fine-tune ``base_model`` on the pairs and save it to ``out`` (a new directory).

    The model is written to a sibling temporary directory and renamed into place when
    training and saving succeeded, so a failed run leaves nothing at ``out``.
    """
    options.check()
    if len(pairs) < MIN_PAIRS:
        raise TuningError(
            f"found {len(pairs)} documented Python functions; tuning needs at least {MIN_PAIRS} "
            "(functions or methods with a docstring of 20 characters or more)"
        )
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise TuningError(f"{out} exists and is not empty: choose another --out or pass --force")
    # deferred: torch is heavy; only tuning itself needs it
    import torch
    import torch.nn.functional as F

    model = load_model(base_model)
    torch.manual_seed(options.seed)
    batches = _batches(pairs, options.batch_size, options.seed)
    if not batches:
        raise TuningError("every documented function has the same docstring: nothing to learn")
    steps = max(1, math.ceil(len(batches) * options.epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, (steps - step) / max(steps - warmup, 1))
    )
    document_tokens = int(model.max_seq_length or 256)

    def encode(texts: list[str], max_tokens: int) -> torch.Tensor:
        model.max_seq_length = max_tokens
        features = model.preprocess(texts)
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    started = time.perf_counter()
    losses: list[float] = []
    model.train()
    for step in range(steps):
        batch = batches[step % len(batches)]
        queries = encode([p.query for p in batch], min(QUERY_MAX_TOKENS, document_tokens))
        documents = encode([p.document for p in batch], document_tokens)
        logits = queries @ documents.T * SCALE
        labels = torch.arange(len(batch))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.item()))
        if progress is not None:
            progress(step + 1, steps, losses[-1])
    model.eval()
    model.max_seq_length = document_tokens
    summary = TuneSummary(
        base_model=base_model,
        out=str(out),
        pairs=len(pairs),
        steps=steps,
        epochs=options.epochs,
        batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        first_loss=round(losses[0], 4),
        last_loss=round(sum(losses[-10:]) / len(losses[-10:]), 4),
        seconds=round(time.perf_counter() - started, 1),
    )
    _save(model, out, summary)
    return summary


def _batches(pairs: Sequence[Pair], size: int, seed: int) -> list[list[Pair]]:
    """Batches cut from the pairs in file order (near neighbours as negatives), shuffled.

    A batch never holds one docstring twice: a second copy would be a false negative.
    """
    ordered = sorted(pairs, key=lambda p: (p.path, p.symbol))
    batches: list[list[Pair]] = []
    current: list[Pair] = []
    queries: set[str] = set()
    for pair in ordered:
        if len(current) == size or pair.query in queries:
            batches.append(current)
            current, queries = [], set()
        current.append(pair)
        queries.add(pair.query)
    if len(current) >= 2:
        batches.append(current)
    elif current and batches:
        batches[-1].extend(p for p in current if p.query not in {q.query for q in batches[-1]})
    random.Random(seed).shuffle(batches)
    return [batch for batch in batches if len(batch) >= 2]


def _save(model: Any, out: Path, summary: TuneSummary) -> None:
    staging = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save(str(staging))
        (staging / MANIFEST).write_text(json.dumps(summary.as_dict(), indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise TuningError(f"could not save the tuned model to {out}: {exc.strerror or exc}") from None
