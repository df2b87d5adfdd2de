"""The ``policies`` settings section: one default policy and per-team partial overrides.

A team's effective policy is the default with that team's keys laid over it
(:meth:`PoliciesConfig.for_team`). Overrides are checked when the section is built, so a bad
one stops start-up with a :class:`~policies.errors.PolicyError` naming
``policies.teams.<team>.<key>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from policies.errors import PolicyError

TaskType = Literal[
    "complete", "generate", "test", "document", "review", "edit", "refactor", "debug"
]
Route = Literal["local", "cloud"]


class PolicyConfig(BaseModel):
    """One team's effective routing policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence_threshold: float = Field(
        0.55, ge=0, le=1, description="local answers scoring below this escalate to the cloud"
    )
    early_abort_floor: float = Field(
        0.15, ge=0, le=1,
        description="sliding-window confidence below this aborts the local generation",
    )
    early_abort_window: int = Field(
        16, ge=2, le=256, description="tokens in the early-abort sliding window"
    )
    early_abort_min_tokens: int = Field(
        24, ge=0, le=100_000, description="tokens generated before early abort may fire"
    )
    context_margin_tokens: int = Field(
        128, ge=0, le=1_000_000, description="tokens kept free in the local context window"
    )
    agent_answer_tokens: int = Field(
        4096, ge=64, le=131_072, description="an agent's max_tokens is a ceiling (Claude Code "
        "asks for up to 64,000): its turn fits the local window when the prompt and this many "
        "answer tokens do; the local answer stops where the window ends (a cut answer "
        "escalates)")
    max_local_files: int = Field(
        1, ge=0, le=10_000, description="tasks touching more files than this go to the cloud"
    )
    task_type_routes: dict[TaskType, Route] = Field(
        default_factory=dict, description="task types pinned to a route, e.g. refactor: cloud"
    )
    model_routes: dict[str, Literal["auto", "local", "cloud"]] = Field(
        default_factory=dict, description="model names (globs) the team's clients send, each "
        "auto, local or cloud, looked up before models.aliases: e.g. {'claude-haiku-*': local} "
        "keeps Claude Code's small, fast model (titles, summaries, command checks) local")
    local_only: bool = Field(False, description="privacy: this team never reaches the cloud")
    local_only_repos: list[str] = Field(
        default_factory=list, description="repositories whose tasks never reach the cloud"
    )
    local_only_paths: list[str] = Field(
        default_factory=list,
        description="path globs (secrets/**, *.pem) whose tasks never reach the cloud",
    )
    allow_forced_routes: bool = Field(
        True, description="whether requests may force a route with `route: local|cloud`"
    )
    shadow_route: Route | None = Field(
        None, description="shadow mode: serve this route, record what auto would have done"
    )
    redact_secrets: bool = Field(True, description="redact secrets before any cloud call")
    execution_checks: bool = Field(
        True, description="run the task's own examples against the local answer in a sandbox"
    )
    budget_usd: float | None = Field(
        None, ge=0, description="the team's cloud budget per budget_period, all its keys "
        "together (a key may carry a budget of its own too); null: none")
    budget_period: Literal["day", "month"] = Field("month", description="the period of budget_usd")
    over_budget: Literal["local", "refuse"] = Field(
        "local", description="a cloud-bound task over its key's budget: keep the local answer "
        "(route reason `budget`) when there is one, or refuse with 429")
    cloud_unavailable: Literal["local", "refuse"] = Field(
        "local", description="a cloud-bound task whose cloud does not answer (down, erroring, "
        "timing out): keep the local answer (route reason `cloud_unavailable`) when there is "
        "one, or fail with the cloud's error")
    local_unavailable: Literal["cloud", "refuse"] = Field(
        "cloud", description="a task whose local tier does not answer (llama-server gone, "
        "erroring): send it to the cloud (route reason `local_unavailable`) where privacy and "
        "the request allow, or fail at once with 503 `local_unavailable`")
    execution_timeout_s: float = Field(
        5.0, gt=0, le=60, description="wall-clock limit of one sandboxed check run"
    )
    repair_rounds: int = Field(
        2, ge=0, le=5,
        description="times the local model may fix an answer that fails the task's examples, "
        "does not parse, raises or breaks the client's edit format (shown the failure) before "
        "the task escalates; 0: never",
    )

    local_edit_prompt: Literal["router", "client"] = Field(
        "router", description="where the client asks for an edit format the router knows "
        "(Aider's whole files): `router` gives the local model the router's own short prompt "
        "for that format (the format's rules, the file it may write and its content) and the "
        "cloud the client's messages; `client`: the client's messages to both")

    judge_model: str | None = Field(
        None, min_length=1, max_length=4096,
        description="the learned judge: `builtin` (fitted on HumanEval, shipped) or the path "
        "of a model file from `smallcode calibrate --fit`; null: the fixed mix of the logprob "
        "confidence and the checks, against confidence_threshold")
    judge_threshold: float | None = Field(
        None, ge=0, le=1, description="the learned judge escalates answers whose probability "
        "of being right is below this; null: the threshold in its model file")
    sample_k: int = Field(
        1, ge=1, le=8, description="sampling agreement: where no example can run, compare k "
        "local answers (the greedy one and k-1 samples) by what they do on probe inputs; no "
        "majority escalates; 1: off")
    sample_temperature: float = Field(
        0.7, gt=0, le=2, description="the temperature of sampling agreement's extra answers")

    @model_validator(mode="after")
    def _model_routes_allowed(self) -> PolicyConfig:
        pinned = [name for name, route in self.model_routes.items() if route != "auto"]
        if pinned and not self.allow_forced_routes:
            raise ValueError(f"model_routes: {pinned[0]!r} names a tier, but "
                             "allow_forced_routes is false: route it auto, or allow forced "
                             "routes")
        return self

    @field_validator("judge_model")
    @classmethod
    def _absolute_judge_file(cls, value: str | None) -> str | None:
        # A model file's path is made absolute at load, against the working directory.
        if value is None or value == "builtin":
            return value
        return str(Path(value).expanduser().absolute())


_ADDITIVE = ("local_only_repos", "local_only_paths")


class PoliciesConfig(BaseModel):
    """The default policy and per-team overrides (each a partial :class:`PolicyConfig`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: PolicyConfig = Field(
        default_factory=lambda: PolicyConfig.model_validate({}), description="every team's base"
    )
    teams: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-team partial overrides of the default policy"
    )

    @model_validator(mode="after")
    def _check_overrides(self) -> PoliciesConfig:
        for team in self.teams:
            self.for_team(team)
        return self

    def for_team(self, team: str | None) -> PolicyConfig:
        """The effective policy of ``team``.

        ``None`` or a team without an override gets the default policy unchanged: teams are
        not registered anywhere, so an unknown team is an ordinary team with no override.

        Each key of the override replaces the default's value, except that privacy lists
        (``local_only_repos``, ``local_only_paths``) are added to the default's (a team can
        tighten the organisation's privacy rules, not loosen them) and ``task_type_routes``
        is merged key by key (the team's pin wins).
        Raises :class:`PolicyError` naming ``policies.teams.<team>.<key>`` on a bad override.
        """
        if team is None or team not in self.teams:
            return self.default
        override = self.teams[team]
        if not isinstance(override, dict):
            raise PolicyError(
                f"policies.teams.{team}: expected a mapping of policy keys to values, "
                f"got {type(override).__name__}"
            )
        base = self.default.model_dump()
        merged = {**base, **override}
        for key in _ADDITIVE:
            extra = override.get(key)
            if isinstance(extra, list):
                merged[key] = list(dict.fromkeys([*base[key], *extra]))
        routes = override.get("task_type_routes")
        if isinstance(routes, dict):
            merged["task_type_routes"] = {**base["task_type_routes"], **routes}
        models = override.get("model_routes")
        if isinstance(models, dict):  # globs match in order: the team's come first
            merged["model_routes"] = {**models, **{
                name: route for name, route in base["model_routes"].items()
                if name not in models}}
        try:
            return PolicyConfig.model_validate(merged)
        except ValidationError as exc:
            raise PolicyError(_describe(exc, f"policies.teams.{team}")) from None


def _describe(exc: ValidationError, prefix: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join([prefix, *(str(part) for part in error["loc"])])
        if error["type"] == "extra_forbidden":
            known = ", ".join(PolicyConfig.model_fields)
            lines.append(f"{key}: unknown policy key (known keys: {known})")
        else:
            lines.append(f"{key}: {error['msg']}")
    return "; ".join(lines)
