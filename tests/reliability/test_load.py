"""Load on loopback, the load generator in its own process (tests/reliability/load.py): the
reading endpoints under many clients, a burst of generating requests against one SmolLM2
(bounded queueing: 429 + Retry-After past `server.max_generating`, every admitted request
answered and in the ledger), and a soak (RSS and open fds at start and end). The long runs are
marked `reliability` (`make reliability`); short versions run in the normal suite."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import LogScan, Service, auth, figure, running

REPO = Path(__file__).resolve().parents[2]


def load(mode: str, service: Service, key: str, *args: str, timeout_s: float) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "tests.reliability.load", mode,
                           "--url", service.url, "--key", key, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def process_figures() -> dict[str, int]:
    """This process's resident memory (KiB) and open file descriptors: the server's, which
    runs here on a uvicorn thread."""
    rss = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return {"rss_kib": rss, "fds": len(os.listdir("/proc/self/fd"))}


@pytest.fixture(scope="module")
def loaded(smol: Any, smol_standin_url: str, valkey_server: Any,
           service_logs: LogScan) -> Iterator[Service]:
    with running(smol, smol_standin_url, valkey_server.url, prefix="rel-load",
                 server={"max_generating": 8}) as service:
        yield service


def reading_paths(service: Service, key: str) -> list[str]:
    task = httpx.post(f"{service.url}/v1/tasks", json={"prompt": "hi", "max_tokens": 2},
                      headers=auth(key), timeout=30).json()["id"]
    return ["/healthz", "/v1/models", "/v1/usage", "/v1/usage/entries?limit=5",
            f"/v1/tasks/{task}", "/metrics"]


def read_load(service: Service, clients: int, seconds: float) -> dict[str, Any]:
    key = service.key("readers")
    paths = [arg for path in reading_paths(service, key) for arg in ("--path", path)]
    figures = load("read", service, key, "--clients", str(clients), "--seconds", str(seconds),
                   *paths, timeout_s=seconds + 120)
    assert figures["transport_errors"] == 0, figures
    assert set(figures["statuses"]) == {"200"}, figures  # no 5xx, no refusals
    figure("reading endpoints", clients=clients, seconds=seconds, **figures)
    return figures


def test_reading_endpoints_under_20_clients_for_5_s(loaded: Service) -> None:
    read_load(loaded, 20, 5)


@pytest.mark.reliability
def test_reading_endpoints_under_100_clients_for_60_s(loaded: Service) -> None:
    read_load(loaded, 100, 60)


def burst(service: Service, requests: int) -> dict[str, Any]:
    key = service.key(f"burst{requests}")
    entries_before = ledger_count(service, key)
    before = process_figures()
    figures = load("burst", service, key, "--requests", str(requests), "--max-tokens", "4",
                   timeout_s=900)
    after = process_figures()
    statuses = {int(k): v for k, v in figures["statuses"].items()}
    assert figures["transport_errors"] == 0, figures
    assert set(statuses) <= {200, 429}, figures
    assert statuses.get(200, 0) >= service.settings.server.max_generating, figures
    assert figures["empty_answers"] == 0
    assert figures["retry_after"] == ({"1": statuses[429]} if statuses.get(429) else {})
    assert service.app.state.admission.held == 0  # every place given back
    # Every admitted request was answered and is in the ledger, once.
    assert ledger_count(service, key) - entries_before == statuses.get(200, 0)
    figure("generating burst", requests=requests,
           max_generating=service.settings.server.max_generating,
           answered=statuses.get(200, 0), refused_429=statuses.get(429, 0),
           lost=requests - sum(statuses.values()), p50_ms=figures["p50_ms"],
           p99_ms=figures["p99_ms"], rss_kib_before=before["rss_kib"],
           rss_kib_after=after["rss_kib"])
    return figures


def ledger_count(service: Service, key: str) -> int:
    usage = httpx.get(f"{service.url}/v1/usage", headers=auth(key), timeout=30).json()
    return int(usage["totals"]["tasks"])


def test_a_burst_of_40_generating_requests_is_bounded(loaded: Service) -> None:
    burst(loaded, 40)


@pytest.mark.reliability
@pytest.mark.timeout(1200)
def test_a_burst_of_200_generating_requests_is_bounded(loaded: Service) -> None:
    burst(loaded, 200)


@pytest.mark.reliability
@pytest.mark.timeout(1200)
def test_a_burst_of_200_queued_for_one_model_is_answered_in_turn(
        smol: Any, smol_standin_url: str, valkey_server: Any, service_logs: LogScan) -> None:
    """``server.max_generating: 200``: the whole burst waits for the one model, none is
    refused, every one is answered; its p99 is the wait of a deep queue."""
    with running(smol, smol_standin_url, valkey_server.url, prefix="rel-deep",
                 server={"max_generating": 200}) as deep:
        figures = burst(deep, 200)
    assert figures["statuses"] == {"200": 200}, figures


@contextmanager
def pytest_keeps_no_log_records() -> Iterator[None]:
    """pytest keeps every log record of a test (for its report), in this process, where the
    server runs: an 8-minute soak's 56,000 access lines grew RSS by 114 MiB that were not the
    server's. Detach those keepers while measuring (the session's log scan stays)."""
    from _pytest.logging import LogCaptureHandler

    root = logging.getLogger()
    keepers = [h for h in root.handlers if isinstance(h, LogCaptureHandler)]
    for handler in keepers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in keepers:
            root.addHandler(handler)


class Sampler(threading.Thread):
    """This process's figures every ``every_s`` seconds while the load runs, so a curve that
    levels off (allocator arenas filling) can be told from one that keeps climbing (a leak)."""

    def __init__(self, every_s: float) -> None:
        super().__init__(daemon=True)
        self.every_s = every_s
        self.samples: list[dict[str, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            self.samples.append(process_figures())


def growth_kib(samples: list[dict[str, int]]) -> int:
    return samples[-1]["rss_kib"] - samples[0]["rss_kib"]


@pytest.mark.reliability
@pytest.mark.timeout(float(os.environ.get("RELIABILITY_SOAK_S", "1800")) + 900)
def test_a_soak_keeps_memory_and_file_descriptors_flat(loaded: Service) -> None:
    """RSS is sampled each minute. Flat means: the second half of the run grows RSS by under
    16 MiB (whatever the first half took while caches and allocator arenas filled), and the
    whole run by under 64 MiB; open fds within 5 of the start."""
    seconds = float(os.environ.get("RELIABILITY_SOAK_S", "1800"))
    key = loaded.key("soak")
    paths = [arg for path in reading_paths(loaded, key) for arg in ("--path", path)]
    load("soak", loaded, key, "--clients", "8", "--seconds", "30", *paths, timeout_s=300)  # warm
    sampler = Sampler(every_s=min(60.0, seconds / 4))
    with pytest_keeps_no_log_records():
        start = process_figures()
        began = time.monotonic()
        sampler.start()
        try:
            figures = load("soak", loaded, key, "--clients", "8", "--seconds", str(seconds),
                           *paths, timeout_s=seconds + 300)
        finally:
            sampler.done.set()
            sampler.join()
        end = process_figures()
    samples = [start, *sampler.samples, end]
    second_half = samples[len(samples) // 2:]
    statuses = {int(k): v for k, v in figures["statuses"].items()}
    figure("soak", seconds=round(time.monotonic() - began), requests=figures["requests"],
           statuses=figures["statuses"], p99_ms=figures["p99_ms"],
           rss_kib_start=start["rss_kib"], rss_kib_end=end["rss_kib"], fds_start=start["fds"],
           fds_end=end["fds"], second_half_growth_kib=growth_kib(second_half),
           rss_mib_samples=[round(s["rss_kib"] / 1024) for s in samples])
    assert figures["transport_errors"] == 0 and set(statuses) <= {200, 429}, figures
    assert end["fds"] - start["fds"] <= 5
    assert growth_kib(second_half) < 16 * 1024, samples  # levelled off
    assert growth_kib(samples) < 64 * 1024, samples  # under 64 MiB over the run
