"""Retrieval: a Chroma index of a team's repositories, searched for local prompts.

Public API (no heavy import happens until a function runs)::

    from retrieval.config import RetrievalConfig
    from retrieval.retriever import Retriever
    from retrieval.search import Hit, References
    from retrieval.api import build, Prompted

    retriever = Retriever(config: RetrievalConfig, data_dir: Path)   # once, at start-up
    retriever.index(path: Path, repo: str, progress=None) -> IndexSummary
    retriever.search(repo: str, query: str, k: int | None = None, *,
                     languages: Sequence[str] | None = None) -> list[Hit]
        # Hit: path, start_line, end_line, symbol, score (cosine, higher is closer), text;
        # ordered by a hybrid re-rank of the 100 nearest by cosine with BM25 on their words;
        # languages: chunks of those languages only (api.task_languages gives a task's)
    retriever.references(repo: str, symbol: str) -> References
        # References: symbol, defined_in: list[str], used_in: list[str] (calls and imports)
    retriever.list_repos() -> list[dict];  retriever.drop(repo: str) -> None
    build(hits, token_budget, count_tokens, *, modules, prompt, task_type=None, files=(),
          k=5, min_score=0.2) -> Prompted
        # Prompted: text (the snippets chosen by value that fit the budget, each as its import
        # line, signature and docstring, wrapped in <repository_context> delimiters marking
        # them as data; "" when none fits), preamble (how to use them), used (the record's list)

Modules: ``walk`` (files to index), ``gitignore``, ``languages`` (grammars), ``chunking``
(tree-sitter chunks, line windows), ``symbols`` (definitions, calls, imports), ``embed``
(sentence-transformers, offline), ``store`` (Chroma, embedded or server), ``index``
(incremental indexing), ``search``, ``lexical`` (tokens and BM25 for the re-rank),
``retriever``, ``api`` (snippets for a prompt), ``bench``; errors in ``errors``.
This package never imports ``router``: it takes its settings section as arguments.
"""
