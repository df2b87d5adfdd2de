"""The embedded Valkey `smallcode serve` starts: found where the user meant, and a start-up
failure says what Valkey itself said."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from router.store.server import EmbeddedRedis, RedisStartError


def test_a_relative_data_directory_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with EmbeddedRedis(Path("data") / "redis") as server:
        with redis.Redis.from_url(server.url) as client:
            assert client.set("k", "v")
        assert (tmp_path / "data" / "redis" / "valkey.log").is_file()
    assert not (tmp_path / "data" / "redis" / "data").exists()  # no directory under its --dir


def test_an_exit_at_start_up_quotes_valkey(tmp_path: Path) -> None:
    (tmp_path / "valkey.log").mkdir()  # a log file Valkey cannot open
    with pytest.raises(RedisStartError) as raised:
        EmbeddedRedis(tmp_path).start()
    message = str(raised.value)
    assert "exited at start-up" in message
    assert "log file" in message.lower()  # Valkey's own words from its stderr
    assert "Traceback" not in message
