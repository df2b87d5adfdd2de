"""``redis.cluster``: refused where it cannot work, with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_a_cluster_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"redis.*cluster: true needs redis.url"):
        load_settings(write(tmp_path, "redis:\n  cluster: true\n"))


def test_a_cluster_runs_the_queue_and_its_embedded_worker(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "redis:\n  url: redis://127.0.0.1:7000\n"
                                   "  cluster: true\n"))
    assert settings.redis.cluster and settings.tasks.embedded_worker
