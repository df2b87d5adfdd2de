"""Settings of the Redis store and of authentication (the ``redis`` and ``auth`` sections)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    cluster: bool = Field(
        False, description="redis.url names a node of a Redis / Valkey Cluster: the service "
        "opens a cluster client (keys sharded by team); needs redis.url")
    answered_outage_s: float = Field(
        30.0, ge=0, le=600, description="how long a request whose answer is ready waits out "
        "a store that fails under it (a cluster failing over) to write its ledger entry, "
        "before it fails with 503 (a stream: an error event at its end)")

    @model_validator(mode="after")
    def _cluster_needs_url(self) -> RedisSettings:
        if self.cluster and not self.url:
            raise ValueError("cluster: true needs redis.url (a node of the cluster); the "
                             "embedded Valkey is one server")
        return self


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        True, description="every /v1 route needs `Authorization: Bearer <key>`; false is "
        "allowed only when the server binds to a loopback address")
    key_cache_s: float = Field(
        5.0, ge=0, le=300, description="how long an API process keeps a key it looked up: a "
        "key revoked elsewhere is refused by every process within this; 0 reads Redis on "
        "every request")


class TaskSettings(BaseModel):
    """Async tasks (``POST /v1/tasks``) and the workers that run them (the ``tasks`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep_s: int = Field(7 * 86400, ge=60, le=400 * 86400,
                        description="how long a task's record and its events are kept")
    idempotency_s: int = Field(86400, ge=60, le=30 * 86400,
                               description="how long an Idempotency-Key returns the same task")
    timeout_s: float = Field(900.0, gt=0, le=86400, description="longest run of one task")
    lease_s: float = Field(
        30.0, ge=1, le=3600, description="a worker renews its claim on a running task this "
        "often (÷3); a task whose worker died runs again on another after this long")
    max_tries: int = Field(3, ge=1, le=20, description="runs of one task before it fails "
                           "(a killed worker's run counts)")
    store_outage_s: float = Field(
        120.0, ge=0, le=3600, description="how long a task waits out a store (Redis) that "
        "fails under it, retrying after 1, 2, 4, 8, then every 15 s, before it fails; those "
        "tries are not among max_tries; and how long an API process that starts while its "
        "store fails (a cluster failing over) waits for it before it exits")
    concurrency: int = Field(2, ge=1, le=256, description="tasks one worker runs at once")
    poll_s: float = Field(0.25, gt=0, le=10, description="how often an idle worker polls the queue")
    heartbeat_s: float = Field(5.0, gt=0, le=300, description="how often a worker says it is alive")
    embedded_worker: bool = Field(True, description="`smallcode serve` runs one worker in the "
                                  "API process, sharing its loaded models")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`smallcode worker` serves its /metrics (the tasks "
        "it ran) on this port of server.host; none: no /metrics")


class UsageSettings(BaseModel):
    """How usage is reported (the ``usage`` section): ``/v1/usage`` and the dashboard."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    local_usd_per_hour: float = Field(
        0.0, ge=0, le=10_000, description="what an hour of the local tier's machine costs, "
        "to price the local attempts that were escalated anyway; 0: report their tokens and "
        "time only")
    dashboard_refresh_s: float = Field(
        5.0, ge=1, le=3600, description="how often the dashboard at /dashboard refreshes")
