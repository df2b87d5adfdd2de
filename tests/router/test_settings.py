"""The settings tree: file < environment, bad values refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.server.port == 8000
    assert settings.local.model == "qwen2.5-coder-0.5b"
    assert settings.cloud.price_as == "claude-sonnet-4-6"


def test_file_overrides_defaults_and_environment_overrides_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "local:\n  n_threads: 3\n  n_ctx: 1024\nserver:\n  port: 9001\n")
    monkeypatch.setenv("SMALLCODE_CONFIG", str(path))
    settings = load_settings()
    assert (settings.local.n_threads, settings.local.n_ctx, settings.server.port) == (3, 1024, 9001)
    monkeypatch.setenv("SMALLCODE_LOCAL__N_THREADS", "4")
    settings = load_settings()
    assert settings.local.n_threads == 4  # env wins
    assert settings.local.n_ctx == 1024  # the file still applies to the other keys


def test_repo_config_yaml_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    settings = load_settings(repo / "config.yaml")
    assert settings.cloud.api_base == f"http://127.0.0.1:{settings.standin.port}/v1"


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("local:\n  n_threads: 0\n", "local.n_threads", ">= 1 and <= 512"),
        ("server:\n  port: 70000\n", "server.port", ">= 1 and <= 65535"),
        ("local:\n  kv_cache_type: q4\n", "local.kv_cache_type", "'f16', 'q8_0'"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_range(
    tmp_path: Path, text: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert key in str(info.value) and allowed in str(info.value)


def test_bad_environment_value_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMALLCODE_LOCAL__N_CTX", "12")
    with pytest.raises(ConfigError, match=r"local.n_ctx.*>= 256"):
        load_settings()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"local.n_thread: unknown key"):
        load_settings(write(tmp_path, "local:\n  n_thread: 2\n"))


def test_secrets_are_refused_in_files_and_accepted_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="SMALLCODE_CLOUD__API_KEY") as info:
        load_settings(write(tmp_path, "cloud:\n  api_key: sk-live-123456\n"))
    assert "sk-live-123456" not in str(info.value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").unlink()
    monkeypatch.setenv("SMALLCODE_CLOUD__API_KEY", "sk-live-123456")
    settings = load_settings()
    assert settings.cloud.api_key is not None
    assert settings.cloud.api_key.get_secret_value() == "sk-live-123456"
    assert "sk-live-123456" not in repr(settings)


def test_missing_config_file_named_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLCODE_CONFIG", "/nonexistent/smallcode.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_server_mode_without_a_url_is_for_serve_to_start(tmp_path: Path) -> None:
    from agents.errors import BackendMisconfigured
    from router.backends import build_local

    settings = load_settings(write(tmp_path, "local:\n  mode: server\n"))
    with pytest.raises(BackendMisconfigured, match=r"local\.server_url is empty"):
        build_local(settings)


def test_every_path_is_absolute_once_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths in the file and the environment mean the working directory at load;
    a child (Valkey changes into its --dir) or a later chdir must not change what they name."""
    from router.graph.judge_model import builtin_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "j.json").write_bytes(builtin_path().read_bytes())
    write(tmp_path, "data_dir: data\nretrieval:\n  chroma_path: idx/chroma\n"
                    "  embedding_model: data/embedder\n"
                    "policies:\n  teams:\n    t: {judge_model: judges/j.json}\n")
    monkeypatch.setenv("SMALLCODE_MODELS__CACHE_DIR", "models")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.models.cache_dir == tmp_path / "models"
    assert settings.retrieval.chroma_path == tmp_path / "idx" / "chroma"
    assert settings.retrieval.embedding_model == str(tmp_path / "data" / "embedder")
    assert settings.policies.for_team("t").judge_model == str(tmp_path / "judges" / "j.json")
    defaults = load_settings(tmp_path / "config.yaml", data_dir=Path("d"))
    assert defaults.data_dir == tmp_path / "d"


def test_names_stay_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.retrieval.embedding_model == "all-MiniLM-L6-v2"
    assert settings.policies.default.judge_model is None
    assert settings.data_dir == tmp_path / "data"  # the default, made absolute too
