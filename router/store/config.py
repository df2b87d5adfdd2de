"""Settings of the Redis store and of authentication (the ``redis`` and ``auth`` sections)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RedisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        None, description="redis:// or rediss:// URL of a Redis or Valkey server; empty: "
        "`smallcode serve` starts an embedded Valkey with its data under <data_dir>/redis")
    prefix: str = Field(
        "smallcode", pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="prefix of every key, so two deployments can share one Redis")
    port: int = Field(0, ge=0, le=65535, description="port of the embedded Valkey; 0 = a free one")
    retention_days: int = Field(
        400, ge=1, le=3650, description="how long ledger entries are kept")


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="every /v1 route needs `Authorization: Bearer <key>`; false is "
        "allowed only when the server binds to a loopback address")
