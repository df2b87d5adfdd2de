"""Secrets never leave for the cloud, local-only teams never reach it, and no log line holds a
key, a secret or prompt text. Checked where it matters: at a recording proxy in front of the
cloud stand-in (what really left the machine), in what the local model was really sent, and
in every log line the service wrote (the session's scan; this module's lines are also checked
here, so a failure names its test)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import refusing_provider
from tests.reliability.conftest import (
    CANARIES,
    LogScan,
    Service,
    Watched,
    clear_error,
    figure,
    post_chat,
    running,
)

# Planted secrets, one of each kind the issue names (shaped like real ones, none real).
AWS = "AKIAZ7Q3RELIABLE0042"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAreliabilityTESTkeyMATERIALnotREAL0123\n"
       "q9s8d7f6g5h4j3k2l1zXcVbNm0987654321QWERTYuiop\n-----END RSA PRIVATE KEY-----")
ENV_VALUE = "pg-s3cr3t-Reliab1lity-Value"
ENV = f"DATABASE_PASSWORD={ENV_VALUE}"
GITHUB = "ghp_" + "R3l1ab1l1tyT0k3nN0tR3al0123456789ABC"  # 36, as GitHub issues them
SECRETS = {"aws_access_key": AWS, "private_key": PEM.splitlines()[1], "env_assignment": ENV_VALUE,
           "github_token": GITHUB}
CANARIES.update(SECRETS.values())

POLICIES = {"teams": {
    "eager": {"confidence_threshold": 1.0, "repair_rounds": 0},  # every answer escalates
    "vault": {"local_only": True, "confidence_threshold": 1.0, "repair_rounds": 0},
}}


@pytest.fixture(scope="module")
def watched(smol: Any) -> Watched:
    return Watched(smol)


@pytest.fixture(scope="module")
def leaky(watched: Watched, smol_standin_url: str, valkey_server: Any,
          service_logs: LogScan) -> Iterator[Service]:
    with running(watched, smol_standin_url, valkey_server.url, prefix="rel-leaks",
                 policies=POLICIES) as service:
        yield service


def prompt_with_secrets() -> str:
    return (f"Our deploy script exports AWS_ACCESS_KEY_ID={AWS} and pushes with {GITHUB}.\n"
            f"The .env has:\n{ENV}\nand the key is\n{PEM}\nSay in one sentence if that is safe.")


def test_planted_secrets_never_reach_the_cloud_but_the_local_tier_sees_them(
        leaky: Service, watched: Watched) -> None:
    key = leaky.key("eager")
    text = prompt_with_secrets()
    CANARIES.add(text.splitlines()[0])
    bodies = [
        {"model": "auto", "messages": [{"role": "user", "content": text}], "max_tokens": 8},
        {"model": "auto", "messages": [{"role": "user", "content": "Is config.py safe to publish?"}],
         "files": [{"path": "config.py", "content": text}], "max_tokens": 8},
        {"model": "auto", "route": "cloud", "max_tokens": 8,
         "messages": [{"role": "user", "content": text}]},
    ]
    sent_before, seen_before = leaky.recorder.count, len(watched.seen)
    for body in bodies:
        reply = post_chat(leaky, body, key)
        assert reply.status_code == 200, reply.text
        route = reply.json()["smallcode"]["route"]
        assert route["final"] == "cloud", route["reason"]
        assert route["redactions"]["count"] >= len(SECRETS)
        assert set(route["redactions"]["kinds"]) >= set(SECRETS)
        assert not any(secret in json.dumps(route) for secret in SECRETS.values())
    outgoing = [b.decode() for b in leaky.recorder.bodies[sent_before:]]
    assert len(outgoing) == len(bodies)
    leaked = [(kind, i) for i, sent in enumerate(outgoing) for kind, secret in SECRETS.items()
              if secret in sent]
    assert not leaked
    assert all("[REDACTED:" in sent for sent in outgoing)
    local = watched.seen[seen_before:]
    assert len(local) == 2  # the two auto tasks ran locally first; the forced one did not
    assert all(all(secret in seen for secret in SECRETS.values()) for seen in local)
    figure("planted secrets", requests=len(bodies), secrets_per_request=len(SECRETS),
           reached_cloud=len(leaked), seen_by_local=sum(
               secret in seen for seen in local for secret in SECRETS.values()))


def test_a_local_only_team_never_reaches_the_cloud(leaky: Service) -> None:
    """Every way a task could go to the cloud: weak answers, many files, a forced route, the
    cloud model by name, a stream; none leaves the machine."""
    key = leaky.key("vault")
    ask = [{"role": "user", "content": "Explain these modules in one line."}]
    files = [{"path": f"m{i}.py", "content": f"x{i} = {i}\n"} for i in range(3)]
    before = leaky.recorder.count
    served = refused = 0
    for body in ({"model": "auto", "messages": ask, "max_tokens": 6},
                 {"model": "auto", "messages": ask, "files": files, "max_tokens": 6}):
        reply = post_chat(leaky, body, key)
        assert reply.status_code == 200, reply.text
        assert reply.json()["smallcode"]["route"]["final"] == "local"
        served += 1
    for body in ({"model": "auto", "route": "cloud", "messages": ask, "max_tokens": 6},
                 {"model": "cloud", "messages": ask, "max_tokens": 6},
                 {"model": "cloud", "messages": ask, "max_tokens": 6, "stream": True}):
        assert clear_error(post_chat(leaky, body, key), 403)["type"] == "permission_error"
        refused += 1
    assert leaky.recorder.count == before
    figure("local-only team", served_local=served, refused_403=refused,
           reached_cloud=leaky.recorder.count - before)


def test_a_local_only_team_stays_local_when_the_cloud_fails(watched: Watched,
                                                            valkey_server: Any,
                                                            service_logs: LogScan) -> None:
    with refusing_provider(500, "server_error") as erroring, \
            running(watched, erroring, valkey_server.url, prefix="rel-leaks-down",
                    policies=POLICIES) as down:
        key = down.key("vault")
        files = [{"path": f"m{i}.py", "content": f"x{i} = {i}\n"} for i in range(3)]
        reply = post_chat(down, {"model": "auto", "messages": [
            {"role": "user", "content": "Explain these."}], "files": files, "max_tokens": 6}, key)
        assert reply.status_code == 200, reply.text
        assert reply.json()["smallcode"]["route"]["final"] == "local"
        assert down.recorder.count == 0


def test_no_log_line_holds_a_key_a_secret_or_prompt_text(leaky: Service,
                                                         service_logs: LogScan) -> None:
    """This module's requests, plus failing ones whose errors get logged."""
    key = leaky.key("eager")
    bad = post_chat(leaky, {"model": "nope", "messages": [
        {"role": "user", "content": prompt_with_secrets()}]}, key)
    clear_error(bad, 404)
    clear_error(post_chat(leaky, {"model": "local", "messages": []}, key), 400)
    found = service_logs.all_leaks()
    assert service_logs.count, "the scan saw no log line at all: it is not watching"
    assert any("/v1/chat/completions" in line for line in service_logs.recent)
    assert not found, found[:3]
    figure("log scan (leaks module)", lines=service_logs.count, canaries=len(CANARIES),
           leaked=len(found))


def test_the_log_scan_flags_a_line_with_a_key_it_was_never_told() -> None:
    """The scan keeps no line it has no reason to, so it must catch a key as the key is logged,
    before any test has learnt it."""
    scan = LogScan(keep=2)
    record = logging.LogRecord("router", logging.INFO, __file__, 1, "created %s", (
        "sk-sc-0123456789ab-" + "Q" * 43,), None)
    scan.emit(record)
    for _ in range(3):  # pushed out of the kept lines, still reported
        scan.emit(logging.LogRecord("router", logging.INFO, __file__, 1, "ok", None, None))
    assert scan.count == 4 and len(scan.all_leaks()) == 1
