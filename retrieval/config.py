"""The ``retrieval`` settings section. The router's settings tree composes it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_SECRET_GLOBS = (
    ".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "*.kdbx", "*.gpg", "*.asc", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
    ".netrc", ".npmrc", ".pypirc", ".htpasswd", "credentials.json", "*.tfstate",
)
DEFAULT_SKIP_DIRS = (
    ".git", ".hg", ".svn", "node_modules", "vendor", "third_party", "dist", "build", "target",
    "out", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".idea", ".vscode", ".next", "coverage", "site-packages", ".gradle",
)
DEFAULT_SKIP_GLOBS = (
    "*.min.js", "*.min.css", "*.map", "*.lock", "package-lock.json", "*_pb2.py", "*_pb2_grpc.py",
    "*.pb.go", "*.generated.*", "*.g.dart",
)


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chroma_path: Path | None = Field(
        default=None, description="embedded Chroma directory; null means <data_dir>/chroma"
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server URL (http://host:port); when set, used instead of the path",
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model: all-MiniLM-L6-v2 (bundled) or a local directory",
    )
    embed_batch_size: int = Field(default=64, ge=1, le=4096, description="texts embedded per batch")
    max_file_bytes: int = Field(
        default=1_000_000, ge=1024, le=100_000_000, description="larger files are skipped"
    )
    max_chunk_lines: int = Field(
        default=80, ge=5, le=2000, description="a definition longer than this is split into windows"
    )
    window_lines: int = Field(
        default=40, ge=5, le=2000, description="lines per window for code outside definitions"
    )
    secret_globs: tuple[str, ...] = Field(
        default=DEFAULT_SECRET_GLOBS, description="file names never indexed (secrets)"
    )
    skip_dirs: tuple[str, ...] = Field(
        default=DEFAULT_SKIP_DIRS, description="directory names never descended into"
    )
    skip_globs: tuple[str, ...] = Field(
        default=DEFAULT_SKIP_GLOBS, description="generated or vendored file names skipped"
    )
    lexical_weight: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="share of the BM25 score in the hybrid ranking (0: cosine order only)",
    )
    top_k: int = Field(default=5, ge=1, le=100, description="most snippets put in a prompt")
    snippet_min_score: float = Field(
        default=0.2, ge=-1.0, le=1.0,
        description="cosine below which a hit the task does not name is left out of the prompt",
    )
    snippet_token_budget: int = Field(
        default=1024, ge=0, le=131072, description="most prompt tokens spent on retrieved snippets"
    )

    @field_validator("chroma_path")
    @classmethod
    def _absolute_path(cls, value: Path | None) -> Path | None:
        # Made absolute at load, against the working directory (what the user meant).
        return value.expanduser().absolute() if value is not None else None

    @field_validator("embedding_model")
    @classmethod
    def _absolute_model_dir(cls, value: str) -> str:
        # A directory (anything written as a path) is made absolute at load; a name stays.
        if value.startswith(("/", "./", "../", "~")) or "/" in value:
            return str(Path(value).expanduser().absolute())
        return value

    @field_validator("chroma_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    def resolved_chroma_path(self, data_dir: Path) -> Path:
        """The embedded store's directory."""
        return self.chroma_path if self.chroma_path is not None else Path(data_dir) / "chroma"
