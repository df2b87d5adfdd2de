"""Errors raised by the retrieval package.

    RetrievalError
    ├── BadRepositoryPath   the path to index does not exist or is not a directory
    ├── BadRepoName         a repo name that cannot name a collection (path characters, ...)
    ├── NothingToIndex      a new index would be empty: no indexable file under the path
    ├── UnknownRepo         no index exists for that repo name: run `smallcode index` first
    ├── EmbeddingModelMissing  the embedding model cannot be loaded offline
    ├── EmbeddingModelMismatch the index was built with another embedding model
    ├── StoreUnavailable    the Chroma server did not answer, or the store cannot be opened
    └── TuningError         the embedding model cannot be tuned as asked (too few pairs, ...)

Every message is one line that says what to do.
"""


class RetrievalError(Exception):
    """Base class of every error in ``retrieval``."""


class BadRepositoryPath(RetrievalError):
    pass


class BadRepoName(RetrievalError):
    pass


class NothingToIndex(RetrievalError):
    pass


class UnknownRepo(RetrievalError):
    def __init__(self, repo: str) -> None:
        self.repo = repo
        super().__init__(
            f"no index for repo {repo!r}: run `smallcode index PATH --repo {repo}` "
            "(see `smallcode index --list`)"
        )


class EmbeddingModelMissing(RetrievalError):
    pass


class EmbeddingModelMismatch(RetrievalError):
    pass


class StoreUnavailable(RetrievalError):
    pass


class TuningError(RetrievalError):
    pass
