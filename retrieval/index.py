"""Index a repository into its Chroma collections, incrementally.

A file whose content hash is unchanged is not read further. A changed file is chunked again;
each chunk's id hashes its path, symbol and text, so only chunks whose text changed are
embedded, moved chunks only get their line numbers updated, and vanished ones are deleted.
A file that disappeared (or is now skipped) loses its chunks; a file that cannot be read keeps
its previous chunks. Embedding happens before any write for a batch of files, so a failure
leaves each file either as it was or fully updated; a failed first run leaves no collection.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval import walk as walking
from retrieval.chunking import Chunk, analyse
from retrieval.config import RetrievalConfig
from retrieval.embed import Embedder
from retrieval.errors import NothingToIndex
from retrieval.names import check_repo_name
from retrieval.store import (
    ChunkRecord,
    FileRecord,
    RepoStore,
    drop_repo,
    symbol_document,
)

Progress = Callable[[int, int], None]  # (files done, chunks found) since the last call
FLUSH_CHUNKS = 256


@dataclass
class IndexSummary:
    repo: str
    root: str
    files: int = 0  # files in the index after this run
    chunks: int = 0  # their chunks
    embedded: int = 0  # chunks embedded this run
    removed: int = 0  # chunks deleted this run (stale or of removed files)
    changed_files: int = 0
    removed_files: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)  # unreadable: kept as before
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Pending:
    path: str
    sha256: str
    chunks: list[tuple[str, Chunk]]
    symbol_doc: str
    old: FileRecord | None


def chunk_id(chunk: Chunk, seen: Counter[str]) -> str:
    digest = hashlib.sha1(
        f"{chunk.path}\0{chunk.symbol or ''}\0{chunk.text}".encode(), usedforsecurity=False
    ).hexdigest()[:24]
    seen[digest] += 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def embedding_text(chunk: Chunk) -> str:
    """What the model sees: location and name, then the code."""
    return f"{chunk.path}\n{chunk.symbol or ''}\n{chunk.text}"


def chunk_metadata(chunk: Chunk, sha256: str) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "path": chunk.path,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "language": chunk.language,
        "file_sha256": sha256,
    }
    if chunk.symbol:
        meta["symbol"] = chunk.symbol
    return meta


def index_repository(
    client: Any,
    root: Path,
    repo: str,
    config: RetrievalConfig,
    embedder: Callable[[], Embedder],
    progress: Progress | None = None,
    on_start: Callable[[int], None] | None = None,
) -> IndexSummary:
    """Index ``root`` as ``repo``. ``embedder`` is called once, only if anything needs it."""
    started = time.perf_counter()
    check_repo_name(repo)
    root = walking.resolve_root(root)
    summary = IndexSummary(repo=repo, root=str(root))
    sources: list[walking.SourceFile] = []
    skipped: list[walking.Skipped] = []
    for entry in walking.walk(root, config):
        if isinstance(entry, walking.SourceFile):
            sources.append(entry)
        else:
            skipped.append(entry)
    existed = RepoStore.exists(client, repo)
    if not existed and not sources:
        raise NothingToIndex(
            f"nothing to index under {root}: no source file found"
            + (f" ({len(skipped)} skipped)" if skipped else "")
        )
    if on_start is not None:
        on_start(len(sources))
    store = RepoStore.create(client, repo, embedding_model=config.embedding_model, root=str(root))
    try:
        _run(store, root, config, sources, skipped, embedder, progress, summary)
    except BaseException:
        if not existed:
            drop_repo(client, repo)
        raise
    summary.skipped = len(skipped)
    summary.skipped_by_reason = dict(Counter(s.reason for s in skipped))
    summary.errors = [
        {"path": s.path, "reason": s.reason, "detail": s.detail}
        for s in skipped
        if s.reason == "unreadable"
    ]
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _run(
    store: RepoStore,
    root: Path,
    config: RetrievalConfig,
    sources: list[walking.SourceFile],
    skipped: list[walking.Skipped],
    embedder_factory: Callable[[], Embedder],
    progress: Progress | None,
    summary: IndexSummary,
) -> None:
    records = store.file_records()
    present: set[str] = set()
    pending: list[_Pending] = []
    loaded: list[Embedder] = []

    def embedder() -> Embedder:
        if not loaded:
            loaded.append(embedder_factory())
        return loaded[0]

    def flush() -> None:
        if pending:
            _write(store, pending, embedder, summary)
            pending.clear()

    for source in sources:
        text = walking.read_text(root, source)
        if isinstance(text, walking.Skipped):
            skipped.append(text)
            if text.reason == "unreadable" and source.path in records:
                present.add(source.path)  # keep its previous chunks
                summary.files += 1
                summary.chunks += len(records[source.path].chunk_ids)
            _tick(progress, 1, 0)
            continue
        present.add(source.path)
        summary.files += 1
        sha = hashlib.sha256(text.encode()).hexdigest()
        old = records.get(source.path)
        if old is not None and old.sha256 == sha:
            summary.chunks += len(old.chunk_ids)
            _tick(progress, 1, len(old.chunk_ids))
            continue
        analysis = analyse(
            source.path, text,
            max_chunk_lines=config.max_chunk_lines, window_lines=config.window_lines,
        )
        seen: Counter[str] = Counter()
        chunks = [(chunk_id(c, seen), c) for c in analysis.chunks]
        pending.append(_Pending(
            source.path, sha, chunks,
            symbol_document(analysis.definitions, analysis.references), old,
        ))
        summary.changed_files += 1
        summary.chunks += len(chunks)
        _tick(progress, 1, len(chunks))
        if sum(len(p.chunks) for p in pending) >= FLUSH_CHUNKS:
            flush()
    flush()
    for path in sorted(records.keys() - present):
        store.delete_file(records[path])
        summary.removed += len(records[path].chunk_ids)
        summary.removed_files += 1


def _write(
    store: RepoStore,
    pending: list[_Pending],
    embedder: Callable[[], Embedder],
    summary: IndexSummary,
) -> None:
    to_embed = [
        (cid, chunk)
        for item in pending
        for cid, chunk in item.chunks
        if item.old is None or cid not in item.old.chunk_ids
    ]
    vectors = embedder().embed([embedding_text(c) for _, c in to_embed]) if to_embed else []
    by_id = {cid: vec for (cid, _), vec in zip(to_embed, vectors, strict=True)}
    for item in pending:
        ids = [cid for cid, _ in item.chunks]
        records = [
            ChunkRecord(cid, chunk.text, chunk_metadata(chunk, item.sha256), by_id.get(cid))
            for cid, chunk in item.chunks
        ]
        stale = set(item.old.chunk_ids) - set(ids) if item.old else set()
        store.write_file(FileRecord(item.path, item.sha256, tuple(ids)), item.symbol_doc,
                         records, stale)
        summary.embedded += sum(1 for r in records if r.embedding is not None)
        summary.removed += len(stale)


def _tick(progress: Progress | None, files: int, chunks: int) -> None:
    if progress is not None:
        progress(files, chunks)
