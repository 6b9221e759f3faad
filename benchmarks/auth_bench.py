"""Authentication + authorisation overhead per request, and the Redis rate limiter's rate.

Prints figures; records nothing by itself (copy them into docs/performance.md).

    .venv/bin/python benchmarks/auth_bench.py
    .venv/bin/python benchmarks/auth_bench.py --requests 50000 --redis redis://127.0.0.1:6379/0

1. ``auth``: what the API does per request before a view runs, with credentials cached — the
   rate-limit middleware's cached look-up (API key or access token), the sliding-window check
   in memory, and the policy decision (RBAC + ABAC, decision cache) — timed per request,
   p50/p99/max, on a real database with a tenant, a user and a key.
2. ``redis``: the Redis limiter (one Lua script per request) driven by concurrent asyncio
   callers for a few seconds: sustained decisions per second and per-call latency.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(label: str, samples: list[float]) -> None:
    us = [s * 1e6 for s in samples]
    print(
        f"{label:34} n={len(us):6}  p50={_pct(us, 0.50):7.1f} µs  p99={_pct(us, 0.99):7.1f} µs"
        f"  max={max(us):8.1f} µs  mean={statistics.fmean(us):6.1f} µs"
    )


def bench_auth(requests: int) -> None:
    from vigil.api.deps import RequestInfo
    from vigil.config import Settings
    from vigil.identity import apikeys, service, sessions
    from vigil.identity.context import identity_of
    from vigil.identity.middleware import limit_for
    from vigil.identity.principal import Permission
    from vigil.identity.ratelimit import MemoryRateLimiter
    from vigil.store import session_scope
    from vigil.wiring import assemble, prepare_storage

    home = Path(tempfile.mkdtemp(prefix="vigil-auth-bench-"))
    settings = Settings(home=home)
    prepare_storage(settings)
    runtime = assemble(settings, role="api")
    ids = identity_of(runtime)
    with session_scope(runtime.sessions) as s:
        tenant = service.create_tenant(s, name="bench", actor="system:bench")
        user = service.create_user(
            s,
            tenant_id=tenant.id,
            email="analyst@bench.test",
            password="benchmark password",
            roles=["security"],
            granter=None,
            actor="system:bench",
        )
        key = apikeys.create_key(
            s,
            tenant_id=tenant.id,
            name="bench",
            roles=["security"],
            granter=None,
            actor="system:bench",
        )
    with session_scope(runtime.sessions) as s:
        ctx = sessions.LoginContext(
            settings=ids.settings, signer=ids.signer, keys=ids.mfa_keys, client_address="127.0.0.1"
        )
        pair = sessions.login(
            s,
            tenant_name="bench",
            email=user.email,
            password="benchmark password",
            ctx=ctx,
        )
    limiter = MemoryRateLimiter()
    default = ids.default_limit
    big = type(default)(default.name, 10**12, default.window_s)

    for label, token in (("API key", key.secret), ("access token (JWT)", pair.access_token)):
        info = RequestInfo(
            headers={"authorization": f"Bearer {token}"},
            client_host="127.0.0.1",
            method="GET",
            path="/v1/alerts",
        )
        # first request fills the caches (database look-up), as after a restart
        started = time.perf_counter()
        principal = ids.authenticator.authenticate(info)
        cold = time.perf_counter() - started
        ids.pdp.authorize(principal, Permission.ALERTS_READ, request=info)
        samples = []
        refreshes = 0
        gc.collect()
        gc.disable()
        for _ in range(requests):
            t0 = time.perf_counter()
            p = ids.authenticator.cached(info.headers)
            if p is None:  # cache entry aged out: the middleware re-authenticates
                refreshes += 1
                p = ids.authenticator.authenticate(info)
            rl_key, _limit = limit_for(p, info.client_host, big)
            limiter.hit_sync(rl_key, big)
            ids.pdp.authorize(p, Permission.ALERTS_READ, request=info)
            samples.append(time.perf_counter() - t0)
        gc.enable()
        print(
            f"{label}: first (uncached) authentication {cold * 1000:.2f} ms; "
            f"{refreshes} cache refreshes during the run"
        )
        _report(f"  authn+ratelimit+authz, {label}", samples)
    runtime.close()


async def _redis_run(url: str, seconds: float, concurrency: int) -> None:
    from vigil.identity.ratelimit import Limit, RedisRateLimiter

    limiter = RedisRateLimiter(url, prefix=f"vigil:bench:{time.time_ns()}")
    limit = Limit("key", 10**12, 60)
    latencies: list[float] = []
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller(n: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            decision = await limiter.hit(f"key:{n % 8}", limit)
            latencies.append(time.perf_counter() - t0)
            assert decision.allowed
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    await limiter.aclose()
    print(
        f"Redis limiter: {done / elapsed:,.0f} decisions/s sustained over {elapsed:.1f} s "
        f"({concurrency} concurrent callers, one process)"
    )
    _report("  per-call latency", latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--redis-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args()
    bench_auth(args.requests)
    if not args.skip_redis:
        asyncio.run(_redis_run(args.redis, args.redis_seconds, args.concurrency))


if __name__ == "__main__":
    main()
