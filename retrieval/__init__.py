"""Retrieval: a Chroma index of a team's repositories, searched for local prompts.

Public API (no heavy import happens until a function runs)::

    from retrieval.config import RetrievalConfig
    from retrieval.retriever import Retriever
    from retrieval.search import Hit, References, snippets_for_prompt

    retriever = Retriever(config: RetrievalConfig, data_dir: Path)   # once, at start-up
    retriever.index(path: Path, repo: str, progress=None) -> IndexSummary
    retriever.search(repo: str, query: str, k: int | None = None) -> list[Hit]
        # Hit: path, start_line, end_line, symbol, score (cosine, higher is closer), text;
        # ordered by a hybrid re-rank of the 100 nearest by cosine with BM25 on their words
    retriever.references(repo: str, symbol: str) -> References
        # References: symbol, defined_in: list[str], used_in: list[str] (calls and imports)
    retriever.list_repos() -> list[dict];  retriever.drop(repo: str) -> None
    snippets_for_prompt(hits: Sequence[Hit], token_budget: int,
                        count_tokens: Callable[[str], int]) -> str
        # ranked, de-duplicated snippets that fit the budget, wrapped in <repository_context>
        # delimiters marking them as data; "" when none fits

Modules: ``walk`` (files to index), ``gitignore``, ``languages`` (grammars), ``chunking``
(tree-sitter chunks, line windows), ``symbols`` (definitions, calls, imports), ``embed``
(sentence-transformers, offline), ``store`` (Chroma, embedded or server), ``index``
(incremental indexing), ``search``, ``lexical`` (tokens and BM25 for the re-rank),
``retriever``, ``bench``; errors in ``errors``.
This package never imports ``router``: it takes its settings section as arguments.
"""
