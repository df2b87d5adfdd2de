"""The retrieval service object: one Chroma client and one embedding model, made once.

The router creates a ``Retriever`` at start-up (its lifespan) and hands it to the nodes; the
CLI makes one per command. The embedding model is loaded on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval import store as chroma
from retrieval.api import module_paths
from retrieval.config import RetrievalConfig
from retrieval.embed import Embedder, load_embedder
from retrieval.index import IndexSummary, Progress, index_repository
from retrieval.names import check_repo_name
from retrieval.search import Hit, References, references, search

if TYPE_CHECKING:
    from chromadb.api import ClientAPI


class Retriever:
    def __init__(
        self,
        config: RetrievalConfig,
        data_dir: Path,
        *,
        client: ClientAPI | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.data_dir = Path(data_dir)
        self._client = client
        self._embedder = embedder

    def close(self) -> None:
        """Release the Chroma client (its connections or its database files)."""
        client, self._client = self._client, None
        if client is not None:
            chroma.close_client(client)

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> ClientAPI:
        if self._client is None:
            self._client = chroma.open_client(self.config, self.data_dir)
        return self._client

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(
                self.config.embedding_model, self.config.embed_batch_size
            )
        return self._embedder

    def index(
        self,
        path: Path,
        repo: str,
        progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> IndexSummary:
        return index_repository(
            self.client, Path(path), repo, self.config, lambda: self.embedder, progress, on_start
        )

    def search(self, repo: str, query: str, k: int | None = None, *,
               languages: Sequence[str] | None = None) -> list[Hit]:
        """The best chunks for the query; ``languages``: of these languages only."""
        repo_store = chroma.RepoStore.open(self.client, repo)
        return search(
            repo_store, self.embedder, query, k or self.config.top_k,
            self.config.lexical_weight, languages=languages,
        )

    def references(self, repo: str, symbol: str) -> References:
        return references(chroma.RepoStore.open(self.client, repo), symbol)

    def modules(self, repo: str) -> dict[str, str]:
        """Each indexed Python file's dotted module (``retrieval.api.module_paths``)."""
        repo_store = chroma.RepoStore.open(self.client, repo)
        return module_paths(repo_store.file_records(), Path(repo_store.root or repo).name)

    def symbol_table(self, repo: str) -> dict[str, frozenset[str]]:
        """Each indexed module and the names it defines or imports: what
        ``from module import name`` can reach in this repo."""
        repo_store = chroma.RepoStore.open(self.client, repo)
        documents = repo_store.symbol_documents()
        modules = module_paths(documents, Path(repo_store.root or repo).name)
        table: dict[str, set[str]] = {}
        for path, module in modules.items():
            names = {line[2:] for line in documents[path].splitlines() if line[:2] in ("D ", "R ")}
            table.setdefault(module, set()).update(names)
            parts = module.split(".")
            for depth in range(1, len(parts)):  # parents hold their submodules
                table.setdefault(".".join(parts[:depth]), set()).add(parts[depth])
        return {module: frozenset(names) for module, names in table.items()}

    def list_repos(self) -> list[dict[str, Any]]:
        return chroma.list_repos(self.client)

    def drop(self, repo: str) -> None:
        check_repo_name(repo)
        chroma.drop_repo(self.client, repo)
