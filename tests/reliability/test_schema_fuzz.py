"""Schemathesis against the real service's /openapi.json: every operation, with a valid key (the
admin key, which may call every route), generated valid and invalid inputs. No answer may be a
server error or break the schema the service publishes (status codes, media types, bodies,
headers). A generated chat request that is valid runs SmolLM2 (local) or the SmolLM2
stand-in (cloud), so generation stays cheap."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.conftest import ADMIN, LogScan, Service, figure, running

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
pytestmark = pytest.mark.reliability
EXAMPLES = 25  # per operation and phase
STATUSES: collections.Counter[int] = collections.Counter()
NO_NEGATIVE: list[str] = []  # operations without parameters or body: no invalid input exists
FAILED: collections.Counter[str] = collections.Counter()  # "METHOD path" -> phases (positive, negative) that failed


@pytest.fixture(scope="module")
def fuzzed(smol: Any, smol_standin_url: str, valkey_server: Any,
           service_logs: LogScan) -> Iterator[Service]:
    with running(smol, smol_standin_url, valkey_server.url, prefix="rel-fuzz",
                 cloud={"timeout_s": 30}, tasks={"embedded_worker": True}) as service:
        yield service
    figure("schemathesis", operations=len(_operations(service)), requests=sum(STATUSES.values()),
           statuses=dict(sorted(STATUSES.items())),
           server_errors=sum(v for k, v in STATUSES.items() if k >= 500),
           failing_examples=sum(FAILED.values()), failing_operations=sorted(FAILED),
           without_invalid_inputs=sorted(NO_NEGATIVE))


def _operations(service: Service) -> list[str]:
    paths = service.app.openapi()["paths"]
    return [f"{m.upper()} {p}" for p, ops in paths.items() for m in ops]


def _failure(exc: BaseException) -> str:
    """One line per failing check (schemathesis groups them in an exception group)."""
    found = getattr(exc, "exceptions", None) or [exc]
    return "; ".join(str(e).strip().splitlines()[0][:160] for e in found)


# The service runs on threads of this process (uvicorn, the embedded worker's arq loop), and
# they touch the global `random` while Hypothesis draws a case: Hypothesis takes that for a
# strategy using `random` (a deprecation warning, an error here). No strategy of ours does.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
def test_every_operation_holds_its_schema_and_never_errors(fuzzed: Service) -> None:
    # Driven per operation with Hypothesis: schemathesis' lazy pytest fixture
    # (``schemathesis.pytest.from_fixture``) reads ``Function._nodeid``, which pytest 9 removed.
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json", timeout=30)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    problems: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            def run(case: Any) -> None:
                response = case.call(base_url=fuzzed.url, headers=headers, timeout=120)
                STATUSES[response.status_code] += 1
                case.validate_response(response, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, name  # no parameters: nothing invalid
                NO_NEGATIVE.append(name)
            except Exception as exc:
                FAILED[name] += 1
                problems[f"{name} ({mode.value})"] = _failure(exc)
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
