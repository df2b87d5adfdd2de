from __future__ import annotations

import pytest

from policies.config import PolicyConfig
from policies.privacy import glob_match, normalise, privacy_rule


def rule(policy: PolicyConfig, *paths: str, team: str | None = "web", repo: str | None = None):
    return privacy_rule(policy, team=team, repo=repo, paths=list(paths))


def test_local_only_team_names_the_team() -> None:
    assert rule(PolicyConfig(local_only=True), team="payments") == "team payments is local-only"


def test_local_only_repo() -> None:
    policy = PolicyConfig(local_only_repos=["vault"])
    assert rule(policy, repo="vault") == "repo vault is local-only"
    assert rule(policy, repo="vaulted") is None


def test_path_glob_reason_names_path_and_glob() -> None:
    policy = PolicyConfig(local_only_paths=["secrets/**"])
    assert rule(policy, "src/app.py", "secrets/db.py") == (
        "path secrets/db.py matches local-only glob secrets/**"
    )


def test_no_rule_no_reason() -> None:
    assert rule(PolicyConfig(local_only_paths=["secrets/**"]), "src/app.py") is None


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("secrets/db.py", "secrets/**", True),
        ("secrets/a/b/c.txt", "secrets/**", True),
        ("secretsX/a.py", "secrets/**", False),
        ("src/secrets.py", "secrets/**", False),
        ("a/b/key.pem", "*.pem", True),
        ("key.pem.txt", "*.pem", False),
        ("key.pem", "**/*.pem", True),
        ("deep/er/key.pem", "**/*.pem", True),
        ("internal/x.py", "internal/*", True),
        ("internal/a/x.py", "internal/*", False),
        ("src/internal/x.py", "internal/*", False),
        ("a/c.py", "a/**/c.py", True),
        ("a/x/y/c.py", "a/**/c.py", True),
        ("svc/secrets/k", "**/secrets/**", True),
        ("config/prod.env", "config/[!d]*.env", True),
        ("config/dev.env", "config/[!d]*.env", False),
    ],
)
def test_glob_semantics(path: str, pattern: str, expected: bool) -> None:
    assert glob_match(path, pattern) is expected


@pytest.mark.parametrize(
    "path", ["./secrets/db.py", "secrets//db.py", "src/../secrets/db.py", "secrets\\db.py",
             "/home/me/repo/secrets/db.py"],
)
def test_path_spellings_cannot_dodge_a_glob(path: str) -> None:
    assert rule(PolicyConfig(local_only_paths=["secrets/**"]), path) is not None


def test_normalise() -> None:
    assert normalise("./a//b/../c.py") == "a/c.py"
    assert normalise("C:\\repo\\x.py") == "C:/repo/x.py"
