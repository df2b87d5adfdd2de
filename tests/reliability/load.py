"""A bounded asyncio load generator on loopback, run as its own process (so the client does not
share the server's interpreter): prints one JSON line of figures.

    python -m tests.reliability.load read  --url U --key K --clients 100 --seconds 60 --path /healthz ...
    python -m tests.reliability.load burst --url U --key K --requests 200 --max-tokens 4
    python -m tests.reliability.load soak  --url U --key K --clients 8 --seconds 1800 --path ...
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from typing import Any

import httpx


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(latencies: list[float], statuses: collections.Counter[int], errors: int,
            elapsed_s: float) -> dict[str, Any]:
    return {"requests": sum(statuses.values()) + errors, "statuses": dict(statuses),
            "transport_errors": errors, "elapsed_s": round(elapsed_s, 1),
            "req_per_s": round(sum(statuses.values()) / max(elapsed_s, 1e-9), 1),
            "p50_ms": round((percentile(latencies, 0.5) or 0) * 1000, 1),
            "p99_ms": round((percentile(latencies, 0.99) or 0) * 1000, 1),
            "max_ms": round(max(latencies, default=0) * 1000, 1)}


async def read(url: str, key: str, clients: int, seconds: float, paths: list[str],
               chat_every: int = 0, pause_s: float = 0.0) -> dict[str, Any]:
    """``clients`` loops, each GETting ``paths`` in turn until ``seconds`` pass; with
    ``chat_every`` n, every n-th request of a loop is a short local chat completion."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    started = time.perf_counter()
    end = started + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=60) as client:
        async def loop(index: int) -> None:
            nonlocal errors
            turn = index
            while time.perf_counter() < end:
                turn += 1
                began = time.perf_counter()
                try:
                    if chat_every and turn % chat_every == 0:
                        response = await client.post("/v1/chat/completions", json={
                            "model": "local", "max_tokens": 2,
                            "messages": [{"role": "user", "content": "Say hi."}]})
                    else:
                        response = await client.get(paths[turn % len(paths)])
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)
                statuses[response.status_code] += 1
                if pause_s:
                    await asyncio.sleep(pause_s)

        await asyncio.gather(*(loop(i) for i in range(clients)))
    return summary(latencies, statuses, errors, time.perf_counter() - started)


async def burst(url: str, key: str, requests: int, max_tokens: int) -> dict[str, Any]:
    """``requests`` generating requests at once; what came back."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    answered: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    retry_after: collections.Counter[str] = collections.Counter()
    empty, errors = 0, 0
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=600) as client:
        async def one(i: int) -> None:
            nonlocal empty, errors
            began = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", json={
                    "model": "local", "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": f"Say hi to number {i}."}]})
            except httpx.HTTPError:
                errors += 1
                return
            statuses[response.status_code] += 1
            if response.status_code == 200:
                answered.append(time.perf_counter() - began)
                if not response.json()["choices"][0]["message"]["content"]:
                    empty += 1
            elif response.status_code == 429:
                retry_after[response.headers.get("retry-after", "missing")] += 1

        await asyncio.gather(*(one(i) for i in range(requests)))
    figures = summary(answered, statuses, errors, time.perf_counter() - started)
    figures.update(retry_after=dict(retry_after), empty_answers=empty)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["read", "burst", "soak"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=4)
    args = parser.parse_args()
    if args.mode == "read":
        result = asyncio.run(read(args.url, args.key, args.clients, args.seconds, args.path))
    elif args.mode == "soak":
        result = asyncio.run(read(args.url, args.key, args.clients, args.seconds, args.path,
                                  chat_every=10, pause_s=0.05))
    else:
        result = asyncio.run(burst(args.url, args.key, args.requests, args.max_tokens))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
