"""`smallcode bench retrieval`: indexing speed, query latency, and docstring→function quality.

The corpus is a copy of standard-library packages (json, email, asyncio by default) with every
function's docstring removed from the indexed text; each removed docstring becomes a query whose
answer is its function. The index lives in a temporary embedded Chroma directory. For the
latency at scale, the collection is filled with random unit vectors up to ``fill`` chunks.
"""

from __future__ import annotations

import json
import random
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from retrieval.config import RetrievalConfig
from retrieval.docstrings import Documented, strip_docstrings
from retrieval.retriever import Retriever
from retrieval.search import rank
from retrieval.store import RepoStore
from retrieval.tuning import MANIFEST, collect_pairs, tune
from router.graph.signals import quantile

PACKAGES = ("json", "email", "asyncio")


def run_retrieval_bench(config: RetrievalConfig, *, functions: int = 400, fill: int = 100_000,
                        n_queries: int = 200, tune_dir: Path | None = None) -> dict[str, Any]:
    """Run the benchmark with ``config``'s embedding model: ``functions`` docstring queries,
    the collection filled to ``fill`` chunks for latency at scale, ``n_queries`` timed
    queries; ``tune_dir``: fine-tune the model on the corpus first, saved there."""
    tuning: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="smallcode-bench-") as tmp:
        work = Path(tmp)
        corpus = work / "corpus"
        targets = build_corpus(corpus, PACKAGES)
        sample = random.Random(0).sample(targets, min(functions, len(targets)))
        sampled = set(sample)
        rest = [t for t in targets if t not in sampled]
        if tune_dir is not None:
            tuning = tune_on_stdlib(config, Path(tune_dir), targets)
            config = config.model_copy(update={"embedding_model": str(tune_dir)})
        bench_config = config.model_copy(update={"chroma_path": work / "chroma",
                                                 "chroma_url": None})
        with Retriever(bench_config, work) as retriever:
            load_started = time.perf_counter()
            _ = retriever.embedder
            load_s = time.perf_counter() - load_started
            summary = retriever.index(corpus, "bench")
            result: dict[str, Any] = {
                "corpus": "stdlib " + ", ".join(PACKAGES) + " (docstrings removed)",
                "embedding_model": config.embedding_model,
                "model_load_s": round(load_s, 2),
                "files": summary.files,
                "chunks": summary.chunks,
                "index_s": summary.seconds,
                "files_per_s": round(summary.files / summary.seconds, 1),
                "chunks_per_s": round(summary.chunks / summary.seconds, 1),
                "functions": len(sample),
                "tuning": tuning,
            }
            reindex = retriever.index(corpus, "bench")
            result["reindex_unchanged_s"] = reindex.seconds
            result["reindex_embedded"] = reindex.embedded
            result.update(_quality(retriever, sample, "repo"))
            if rest:
                result["functions_unsampled"] = len(rest)
                result.update(_quality(retriever, rest, "unsampled"))
            result.update(_latency(retriever, sample, n_queries, "repo"))
            if fill <= 0:
                return result
            store = RepoStore.open(retriever.client, "bench")
            fill_started = time.perf_counter()
            added = _fill(store, fill, retriever.embedder.dimension)
            result["fill_chunks"] = store.chunks.count()
            result["fill_s"] = round(time.perf_counter() - fill_started, 1)
            result["fill_added"] = added
            result.update(_latency(retriever, sample, n_queries, "filled"))
            result.update(_quality(retriever, sample, "filled"))
    return result


def tune_on_stdlib(
    config: RetrievalConfig, out: Path, held_out: list[Documented]
) -> dict[str, Any]:
    """Fine-tune the embedding model on the standard library outside the benchmark.

    Trains on every other stdlib package's documented functions (tests, idlelib and lib2to3
    left out), dropping any pair whose docstring is also one of the benchmark's, so no query
    is seen in training. An existing tuned model at ``out`` is reused.
    """
    if (out / MANIFEST).is_file():
        return {"reused": str(out), **json.loads((out / MANIFEST).read_text())}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    exclude = [f"{package}/*" for package in PACKAGES] + [
        "test/*", "*/test/*", "*/tests/*", "idlelib/*", "lib2to3/*",
    ]
    seen = {" ".join(t.docstring.split()) for t in held_out}
    pairs = [
        p for p in collect_pairs(stdlib, config, exclude) if " ".join(p.query.split()) not in seen
    ]
    return tune(config.embedding_model, pairs, out).as_dict()


def build_corpus(target: Path, packages: tuple[str, ...]) -> list[Documented]:
    """Copy the packages' .py files with function docstrings removed; return the targets."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    targets: list[Documented] = []
    for package in packages:
        for source in sorted((stdlib / package).rglob("*.py")):
            if "test" in source.relative_to(stdlib).parts[1:-1]:
                continue
            rel = source.relative_to(stdlib).as_posix()
            text, found = strip_docstrings(source.read_text(encoding="utf-8"), rel)
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
            targets.extend(found)
    return targets


def _quality(retriever: Retriever, sample: list[Documented], label: str) -> dict[str, Any]:
    """recall@5 and MRR (over the top 10) of docstring → function: hybrid and vector-only."""
    store = RepoStore.open(retriever.client, "bench")
    vectors = retriever.embedder.embed([t.docstring for t in sample])
    result: dict[str, Any] = {}
    for suffix, hybrid in (("", True), ("_vector", False)):
        hits_at_5 = 0
        reciprocal = 0.0
        for target, vector in zip(sample, vectors, strict=True):
            hits = rank(store, target.docstring, vector, 10, hybrid=hybrid,
                        lexical_weight=retriever.config.lexical_weight)
            for position, hit in enumerate(hits, start=1):
                if hit.path == target.path and hit.symbol == target.symbol:
                    hits_at_5 += position <= 5
                    reciprocal += 1.0 / position
                    break
        n = max(len(sample), 1)
        result[f"recall_at_5{suffix}_{label}"] = round(hits_at_5 / n, 3)
        result[f"mrr{suffix}_{label}"] = round(reciprocal / n, 3)
    return result


def _latency(
    retriever: Retriever, sample: list[Documented], n_queries: int, label: str
) -> dict[str, Any]:
    """p50/p99 (ms) of the vector query alone, of the hybrid ranking (vector query and
    re-rank, query already embedded), and of a whole search (embed + hybrid)."""
    store = RepoStore.open(retriever.client, "bench")
    queries = [t.docstring for t in sample[:n_queries]]
    vectors = retriever.embedder.embed(queries)
    store.query(vectors[0], 5)  # warm-up
    weight = retriever.config.lexical_weight
    rank(store, queries[0], vectors[0], 5, lexical_weight=weight)
    vector_ms, hybrid_ms, total_ms = [], [], []
    for query, vector in zip(queries, vectors, strict=True):
        started = time.perf_counter()
        store.query(vector, 5)
        vector_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        rank(store, query, vector, 5, lexical_weight=weight)
        hybrid_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        retriever.search("bench", query, k=5)
        total_ms.append((time.perf_counter() - started) * 1000)
    return {
        f"chunks_{label}": store.chunks.count(),
        f"query_p50_ms_{label}": round(quantile(vector_ms, 0.50), 2),
        f"query_p99_ms_{label}": round(quantile(vector_ms, 0.99), 2),
        f"hybrid_p50_ms_{label}": round(quantile(hybrid_ms, 0.50), 2),
        f"hybrid_p99_ms_{label}": round(quantile(hybrid_ms, 0.99), 2),
        f"search_p50_ms_{label}": round(quantile(total_ms, 0.50), 2),
        f"search_p99_ms_{label}": round(quantile(total_ms, 0.99), 2),
    }


def _fill(store: RepoStore, total: int, dimension: int) -> int:
    """Add random unit vectors until the collection holds ``total`` chunks."""
    import numpy as np  # deferred: importing this bench must not load numpy

    missing = total - store.chunks.count()
    rng = np.random.default_rng(0)
    batch = 5000
    for start in range(0, max(missing, 0), batch):
        size = min(batch, missing - start)
        vectors = rng.standard_normal((size, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.chunks.add(
            ids=[f"fill-{start + i}" for i in range(size)],
            embeddings=vectors,
            documents=["synthetic filler"] * size,
            metadatas=[{"path": "synthetic", "start_line": 0, "end_line": 0}] * size,
        )
    return max(missing, 0)


def format_report(result: dict[str, Any]) -> str:
    """The result as a Markdown table (rows for the filled collection when it ran)."""
    n = result["functions"]
    rows = [
        ("corpus", result["corpus"]),
        ("embedding model", result["embedding_model"]),
        ("files / chunks", f"{result['files']} / {result['chunks']}"),
        ("index (cold, embedded Chroma)",
         f"{result['index_s']} s: {result['files_per_s']} files/s, "
         f"{result['chunks_per_s']} chunks/s"),
        ("re-index, unchanged", f"{result['reindex_unchanged_s']} s, "
         f"{result['reindex_embedded']} embedded"),
    ]
    if result.get("tuning"):
        tuning = result["tuning"]
        rows.append(("tuning (stdlib outside the corpus)",
                     f"{tuning['pairs']} pairs, {tuning['steps']} steps, {tuning['seconds']} s"
                     + (" (reused)" if "reused" in tuning else "")))
    for label in ("repo", "filled"):
        if f"chunks_{label}" not in result:
            continue
        size = result[f"chunks_{label}"]
        rows += [
            (f"vector query p50 / p99 at {size} chunks",
             f"{result[f'query_p50_ms_{label}']} / {result[f'query_p99_ms_{label}']} ms"),
            (f"hybrid query (vector + re-rank) p50 / p99 at {size} chunks",
             f"{result[f'hybrid_p50_ms_{label}']} / {result[f'hybrid_p99_ms_{label}']} ms"),
            (f"embed + hybrid query p50 / p99 at {size} chunks",
             f"{result[f'search_p50_ms_{label}']} / {result[f'search_p99_ms_{label}']} ms"),
        ]
    for label, what in (("repo", f"{n} docstring → function"),
                        ("unsampled", f"{result.get('functions_unsampled')} functions outside "
                                      "the sample"),
                        ("filled", f"{n} docstring → function at {result.get('fill_chunks')} "
                                   "chunks")):
        if f"mrr_{label}" not in result:
            continue
        rows += [
            (f"recall@5 / MRR, {what}, vector only",
             f"{result[f'recall_at_5_vector_{label}']} / {result[f'mrr_vector_{label}']}"),
            (f"recall@5 / MRR, {what}, hybrid",
             f"{result[f'recall_at_5_{label}']} / {result[f'mrr_{label}']}"),
        ]
    return "\n".join(["| measure | value |", "| --- | --- |"]
                     + [f"| {name} | {value} |" for name, value in rows])
