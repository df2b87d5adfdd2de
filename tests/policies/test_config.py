from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies.config import PoliciesConfig, PolicyConfig
from policies.errors import PolicyError


def test_team_override_lays_over_the_default() -> None:
    config = PoliciesConfig(
        default=PolicyConfig(confidence_threshold=0.6, max_local_files=2),
        teams={"payments": {"local_only": True, "confidence_threshold": 0.8}},
    )
    policy = config.for_team("payments")
    assert policy.local_only is True
    assert policy.confidence_threshold == 0.8
    assert policy.max_local_files == 2  # from the default


def test_unknown_team_and_no_team_get_the_default() -> None:
    config = PoliciesConfig(teams={"payments": {"local_only": True}})
    assert config.for_team("someone-else") == config.default
    assert config.for_team(None).local_only is False


def test_privacy_lists_add_to_the_default_and_routes_merge() -> None:
    config = PoliciesConfig(
        default=PolicyConfig(
            local_only_paths=["secrets/**"], task_type_routes={"refactor": "cloud"}
        ),
        teams={"infra": {"local_only_paths": ["*.pem"], "task_type_routes": {"debug": "local"}}},
    )
    policy = config.for_team("infra")
    assert policy.local_only_paths == ["secrets/**", "*.pem"]
    assert policy.task_type_routes == {"refactor": "cloud", "debug": "local"}


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"confidence_threshold": 1.5}, "policies.teams.payments.confidence_threshold"),
        ({"confidenc_threshold": 0.5}, "policies.teams.payments.confidenc_threshold"),
        ({"task_type_routes": {"refactor": "moon"}}, "policies.teams.payments.task_type_routes"),
        ({"shadow_route": "sideways"}, "policies.teams.payments.shadow_route"),
        ({"execution_timeout_s": 0}, "policies.teams.payments.execution_timeout_s"),
    ],
)
def test_a_bad_override_fails_at_construction_naming_the_key(
    override: dict[str, object], key: str
) -> None:
    with pytest.raises(ValidationError) as info:
        PoliciesConfig(teams={"payments": override})
    assert key in str(info.value)


def test_for_team_raises_policy_error_naming_the_key() -> None:
    # model_construct skips validation, as a config assembled by hand could
    config = PoliciesConfig.model_construct(
        default=PolicyConfig(), teams={"payments": {"early_abort_window": 1}}
    )
    with pytest.raises(PolicyError, match=r"policies\.teams\.payments\.early_abort_window"):
        config.for_team("payments")


def test_unknown_key_error_lists_the_known_keys() -> None:
    with pytest.raises(ValidationError, match="known keys: confidence_threshold"):
        PoliciesConfig(teams={"t": {"bogus": 1}})


def test_policy_defaults_and_bounds() -> None:
    policy = PolicyConfig()
    assert (policy.confidence_threshold, policy.early_abort_floor) == (0.55, 0.15)
    assert policy.shadow_route is None and policy.redact_secrets and policy.allow_forced_routes
    with pytest.raises(ValidationError, match="early_abort_window"):
        PolicyConfig(early_abort_window=512)
    with pytest.raises(ValidationError):
        PolicyConfig(task_type_routes={"poetry": "cloud"})  # type: ignore[dict-item]
