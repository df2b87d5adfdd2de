"""The Chroma side: clients in both modes, and one repo's two collections.

Each repo has a chunk collection ``sc-chunks-<repo>`` (one record per chunk, with its
precomputed embedding, text and location) and a file collection ``sc-files-<repo>`` (one
record per file: its content hash, its chunk ids, and its symbol map as a document of
``D name`` / ``R name`` lines, so a symbol's files are found with Chroma's document filter).
Chroma's own embedding function is never used: every call passes ``embedding_function=None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from retrieval.config import RetrievalConfig
from retrieval.errors import (
    EmbeddingModelMismatch,
    StoreUnavailable,
    UnknownRepo,
)
from retrieval.names import check_repo_name

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

CHUNKS_PREFIX = "sc-chunks-"
FILES_PREFIX = "sc-files-"
PAGE = 2000


def open_client(config: RetrievalConfig, data_dir: Path) -> ClientAPI:
    """A Chroma server client when ``chroma_url`` is set, else an embedded persistent one."""
    # deferred: chromadb is heavy; importing this module must not load it
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if config.chroma_url:
        url = urlsplit(config.chroma_url)
        host = url.hostname or "127.0.0.1"
        port = url.port or (443 if url.scheme == "https" else 8000)
        client = None
        try:
            client = chromadb.HttpClient(
                host=host, port=port, ssl=url.scheme == "https", settings=settings
            )
            client.heartbeat()
        except Exception as exc:  # chromadb raises plain ValueError/httpx errors
            if client is not None:
                close_client(client)
            raise StoreUnavailable(
                f"Chroma server at {config.chroma_url} did not answer ({type(exc).__name__}): "
                "start it with `chroma run` or unset retrieval.chroma_url"
            ) from None
        return client
    path = config.resolved_chroma_path(data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except (OSError, ValueError) as exc:
        raise StoreUnavailable(f"cannot open the Chroma store at {path}: {exc}") from None


def close_client(client: ClientAPI) -> None:
    """Close a client, including the HTTP connection pools chromadb 1.5 leaves open (its
    client's and its internal admin client's)."""
    for owner in (client, getattr(client, "_admin_client", None)):
        session = getattr(getattr(owner, "_server", None), "_session", None)
        if session is not None and hasattr(session, "close"):
            session.close()
    close = getattr(client, "close", None)
    if close is not None:
        close()


def list_repos(client: ClientAPI) -> list[dict[str, Any]]:
    rows = []
    for collection in client.list_collections():
        if collection.name.startswith(CHUNKS_PREFIX):
            repo = collection.name[len(CHUNKS_PREFIX) :]
            meta = collection.metadata or {}
            rows.append({
                "repo": repo,
                "chunks": collection.count(),
                "root": meta.get("root"),
                "embedding_model": meta.get("embedding_model"),
            })
    return sorted(rows, key=lambda row: row["repo"])


def drop_repo(client: ClientAPI, repo: str) -> None:
    names = {c.name for c in client.list_collections()}
    if CHUNKS_PREFIX + repo not in names and FILES_PREFIX + repo not in names:
        raise UnknownRepo(repo)
    for name in (CHUNKS_PREFIX + repo, FILES_PREFIX + repo):
        if name in names:
            client.delete_collection(name)


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    chunk_ids: tuple[str, ...]


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    text: str
    metadata: dict[str, Any]
    embedding: Sequence[float] | None  # None: already stored, only its metadata changes


class RepoStore:
    """One repo's collections. ``open`` needs them to exist; ``create`` makes them."""

    def __init__(self, client: ClientAPI, repo: str, chunks: Collection, files: Collection):
        self.client = client
        self.repo = repo
        self.chunks = chunks
        self.files = files
        self._batch = max(1, client.get_max_batch_size())

    @classmethod
    def open(cls, client: ClientAPI, repo: str) -> RepoStore:
        from chromadb.errors import NotFoundError  # deferred: loads chromadb (heavy)

        check_repo_name(repo)
        try:
            chunks = client.get_collection(CHUNKS_PREFIX + repo, embedding_function=None)
            files = client.get_collection(FILES_PREFIX + repo, embedding_function=None)
        except NotFoundError:
            raise UnknownRepo(repo) from None
        return cls(client, repo, chunks, files)

    @classmethod
    def exists(cls, client: ClientAPI, repo: str) -> bool:
        return CHUNKS_PREFIX + repo in {c.name for c in client.list_collections()}

    @classmethod
    def create(cls, client: ClientAPI, repo: str, *, embedding_model: str, root: str) -> RepoStore:
        check_repo_name(repo)
        chunks = client.get_or_create_collection(
            CHUNKS_PREFIX + repo,
            embedding_function=None,
            configuration={"hnsw": {"space": "cosine"}},
            metadata={"embedding_model": embedding_model, "root": root},
        )
        stored_model = (chunks.metadata or {}).get("embedding_model")
        if stored_model != embedding_model:
            raise EmbeddingModelMismatch(
                f"repo {repo!r} was indexed with embedding model {stored_model!r}, not "
                f"{embedding_model!r}: drop it (`smallcode index --drop {repo}`) and index again"
            )
        files = client.get_or_create_collection(FILES_PREFIX + repo, embedding_function=None)
        return cls(client, repo, chunks, files)

    @property
    def embedding_model(self) -> str | None:
        return (self.chunks.metadata or {}).get("embedding_model")

    @property
    def root(self) -> str | None:
        """The directory the repo was indexed from."""
        return (self.chunks.metadata or {}).get("root")

    def symbol_documents(self) -> dict[str, str]:
        """Each indexed file's symbol document (``D name`` / ``R name`` lines)."""
        documents: dict[str, str] = {}
        offset = 0
        while True:
            page = self.files.get(include=["documents", "metadatas"], limit=PAGE, offset=offset)
            for doc, meta in zip(page["documents"] or [], page["metadatas"] or [], strict=True):
                documents[str((meta or {})["path"])] = doc or ""
            if len(page["ids"]) < PAGE:
                return documents
            offset += PAGE

    def file_records(self) -> dict[str, FileRecord]:
        records: dict[str, FileRecord] = {}
        offset = 0
        while True:
            page = self.files.get(include=["metadatas"], limit=PAGE, offset=offset)
            for meta in page["metadatas"] or []:
                path = str(meta["path"])
                ids = str(meta.get("chunk_ids") or "")
                records[path] = FileRecord(path, str(meta["sha256"]), tuple(ids.split()))
            if len(page["ids"]) < PAGE:
                return records
            offset += PAGE

    def write_file(
        self,
        record: FileRecord,
        symbol_doc: str,
        new_chunks: Sequence[ChunkRecord],
        stale_ids: Iterable[str],
    ) -> None:
        """Replace one file's chunks: add new ones, move kept ones, then drop stale ones."""
        embedded = [c for c in new_chunks if c.embedding is not None]
        moved = [c for c in new_chunks if c.embedding is None]
        for batch in _batches(embedded, self._batch):
            self.chunks.upsert(
                ids=[c.id for c in batch],
                embeddings=[_vector(c.embedding or ()) for c in batch],
                documents=[c.text for c in batch],
                metadatas=[c.metadata for c in batch],
            )
        for batch in _batches(moved, self._batch):
            self.chunks.update(ids=[c.id for c in batch], metadatas=[c.metadata for c in batch])
        self.files.upsert(
            ids=[record.path],
            embeddings=[_vector([1.0])],
            documents=[symbol_doc],
            metadatas=[{
                "path": record.path,
                "sha256": record.sha256,
                "chunk_ids": " ".join(record.chunk_ids),
                "chunks": len(record.chunk_ids),
            }],
        )
        self.delete_chunks(stale_ids)

    def delete_chunks(self, ids: Iterable[str]) -> None:
        for batch in _batches(list(ids), self._batch):
            self.chunks.delete(ids=list(batch))

    def delete_file(self, record: FileRecord) -> None:
        self.delete_chunks(record.chunk_ids)
        self.files.delete(ids=[record.path])

    def query(self, embedding: Sequence[float], k: int, *,
              languages: Sequence[str] | None = None) -> list[tuple[str, dict[str, Any], float]]:
        """(text, metadata, cosine distance) of the k nearest chunks; with ``languages``, of
        the chunks in one of those languages only (their ``language`` metadata)."""
        if k <= 0:
            return []
        where: Any = {"language": {"$in": list(languages)}} if languages else None
        result = self.chunks.query(
            query_embeddings=[_vector(embedding)],
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        return [
            (doc or "", dict(meta or {}), float(dist))
            for doc, meta, dist in zip(documents, metadatas, distances, strict=True)
        ]

    def files_mentioning(self, symbol: str) -> list[tuple[str, str]]:
        """(path, symbol document) of the files that define or reference the symbol."""
        where: Any = {"$or": [{"$contains": f"\nD {symbol}\n"}, {"$contains": f"\nR {symbol}\n"}]}
        found = self.files.get(where_document=where, include=["documents", "metadatas"])
        return [
            (str((meta or {})["path"]), doc or "")
            for doc, meta in zip(found["documents"] or [], found["metadatas"] or [], strict=True)
        ]


def symbol_document(definitions: Iterable[str], references: Iterable[str]) -> str:
    lines = [f"D {name}" for name in sorted(set(definitions))]
    lines += [f"R {name}" for name in sorted(set(references))]
    return "\n" + "".join(line + "\n" for line in lines)


def _vector(values: Sequence[float]) -> Any:
    import numpy as np  # deferred: numpy is not loaded by importing retrieval

    return np.asarray(values, dtype=np.float32)


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
