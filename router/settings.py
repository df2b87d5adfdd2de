"""The one settings tree.

Sources, lowest to highest priority: defaults here < ``config.yaml`` (or the file named by
``SMALLCODE_CONFIG``) < environment variables ``SMALLCODE_<SECTION>__<KEY>``. Secrets come
only from the environment: a config file that holds one is refused. A bad value stops start-up
with :class:`ConfigError`, whose message names the key and the allowed values.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from agents.config import CloudConfig, LocalConfig, StandinConfig
from agents.model_store import default_cache_dir
from policies.config import PoliciesConfig
from retrieval.config import RetrievalConfig
from router.checks.config import ChecksConfig
from router.graph.judge_model import JudgeModelError
from router.graph.judge_model import load as load_judge_model
from router.service.config import CompletionsSettings
from router.store.config import AuthSettings, RedisSettings, TaskSettings, UsageSettings

DEFAULT_CONFIG = Path("config.yaml")
SECRET_KEYS = {("cloud", "api_key")}
TOP_LEVEL_SECRETS = {"admin_key"}


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def absolute(path: Path) -> Path:
    """A configured path made absolute once, at load, against the working directory: children
    (Valkey changes into its ``--dir`` before it opens its log) and later ``chdir`` calls then
    see the directory the user meant."""
    return path.expanduser().absolute()


AbsolutePath = Annotated[Path, AfterValidator(absolute)]


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field("127.0.0.1", description="address the HTTP API binds to")
    port: int = Field(8000, ge=1, le=65535, description="port of the HTTP API")
    max_body_bytes: int = Field(
        1_000_000, ge=1024, le=100_000_000, description="largest request body accepted"
    )
    max_generating: int = Field(
        64, ge=1, le=10_000, description="generating requests one API process holds at once "
        "(running or waiting for a model); past it: 429 with Retry-After")
    shutdown_grace_s: float = Field(
        30.0, ge=0, le=3600, description="on SIGTERM or Ctrl-C, how long requests in flight "
        "may run on before they are stopped (each is recorded either way); a second Ctrl-C "
        "stops at once")


Route = Literal["auto", "local", "cloud"]


class ModelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    cache_dir: AbsolutePath = Field(default_factory=default_cache_dir, validate_default=True,
                                    description="assembled GGUF files")
    aliases: dict[str, Route] = Field(
        default_factory=lambda: dict[str, Route](
            {"claude-*": "auto", "gpt-*": "auto", "codex-*": "auto"}),
        description="model names clients send (globs: claude-*), each served as auto, local "
        "or cloud; the names auto, local and cloud always are")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SMALLCODE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: AbsolutePath = Field(Path("data"), validate_default=True,
                                   description="where the service keeps its data (relative: to "
                                   "the working directory)")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    server: ServerSettings = Field(default_factory=ServerSettings)
    models: ModelsSettings = Field(default_factory=ModelsSettings)
    local: LocalConfig = Field(default_factory=LocalConfig)
    cloud: CloudConfig = Field(default_factory=CloudConfig)
    standin: StandinConfig = Field(default_factory=StandinConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    completions: CompletionsSettings = Field(default_factory=CompletionsSettings)
    usage: UsageSettings = Field(default_factory=UsageSettings)
    admin_key: SecretStr | None = Field(
        None, description="the admin key (manages keys, sees every team): only from the "
        "environment, SMALLCODE_ADMIN_KEY")

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> Settings:
        if not self.auth.enabled and not is_loopback(self.server.host):
            raise ValueError(f"auth.enabled: false is allowed only when server.host is a loopback "
                             f"address (127.0.0.1, ::1, localhost), not {self.server.host!r}: "
                             "create keys with `smallcode keys create` instead")
        if self.admin_key is not None and len(self.admin_key.get_secret_value()) < 16:
            raise ValueError("SMALLCODE_ADMIN_KEY is too short: use at least 16 random "
                             "characters (e.g. `openssl rand -hex 24`)")
        return self

    @model_validator(mode="after")
    def _judge_models_load(self) -> Settings:
        for team, rules in [("default", self.policies.default),
                            *((t, self.policies.for_team(t)) for t in self.policies.teams)]:
            if rules.judge_model is not None:
                key = "policies.default" if team == "default" else f"policies.teams.{team}"
                try:
                    load_judge_model(rules.judge_model)
                except JudgeModelError as exc:
                    raise ValueError(f"{key}.judge_model: {exc}") from None
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFreeYaml(settings_cls))


class _SecretFreeYaml(YamlConfigSettingsSource):
    """The YAML file source, refusing secrets (they belong in the environment)."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for section, key in SECRET_KEYS:
            if isinstance(data.get(section), dict) and key in data[section]:
                raise ConfigError(
                    f"{section}.{key} must not be in a config file: set the environment "
                    f"variable SMALLCODE_{section.upper()}__{key.upper()} instead"
                )
        for key in TOP_LEVEL_SECRETS & set(data):
            raise ConfigError(f"{key} must not be in a config file: set the environment "
                              f"variable SMALLCODE_{key.upper()} instead")
        return data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load the settings tree, or raise ConfigError naming the bad key."""
    explicit = config_file or os.environ.get("SMALLCODE_CONFIG")
    path = Path(explicit) if explicit else DEFAULT_CONFIG
    if explicit and not path.is_file():
        raise ConfigError(f"config file {path} does not exist (SMALLCODE_CONFIG)")

    class _FromFile(Settings):
        model_config = SettingsConfigDict(yaml_file=path if path.is_file() else None)

    try:
        return _FromFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe(exc, Settings)) from None


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line per bad key: the dotted key, what is wrong, and what is allowed."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc) or "(settings)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling against config.yaml)"
        allowed = _allowed(model, loc)
        lines.append(f"config {key}: {message}" + (f" (allowed: {allowed})" if allowed else ""))
    return "; ".join(lines)


def _allowed(model: type[BaseModel], loc: list[str]) -> str:
    field = None
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return ""
        field = fields[part]
        current = field.annotation
    if field is None:
        return ""
    if get_origin(field.annotation) is Literal:
        return ", ".join(repr(v) for v in get_args(field.annotation))
    low = high = None
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            low = f">= {meta.ge}"
        elif isinstance(meta, annotated_types.Gt):
            low = f"> {meta.gt}"
        elif isinstance(meta, annotated_types.Le):
            high = f"<= {meta.le}"
        elif isinstance(meta, annotated_types.Lt):
            high = f"< {meta.lt}"
    return " and ".join(x for x in (low, high) if x)
