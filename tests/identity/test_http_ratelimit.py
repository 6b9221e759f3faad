"""Rate limits on the real server: per key, per address, per tenant setting, IETF headers, 429
problem documents; and one limit shared by two server processes through Redis."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx

from tests.support.identity import bootstrap, create_key
from tests.support.server import VigilServer


def _limited_env(requests: int) -> dict[str, str]:
    return {"VIGIL_IDENTITY__RATE_LIMIT_REQUESTS": str(requests)}


def test_in_memory_limits_per_key_and_address(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path)
    other = create_key(tmp_path, creds.tenant_name, "viewer")
    server = VigilServer(tmp_path, env=_limited_env(5)).start()
    try:
        with server.client(creds.admin_key) as http:
            answers = [http.get("/v1/auth/me") for _ in range(6)]
        assert [r.status_code for r in answers] == [200] * 5 + [429]
        first, last = answers[0], answers[-1]
        assert first.headers["ratelimit-policy"] == '"key";q=5;w=60'
        assert first.headers["ratelimit"].startswith('"key";r=4;t=')
        assert last.headers["content-type"].startswith("application/problem+json")
        assert last.json()["type"].endswith("/rate-limited")
        assert 1 <= int(last.headers["retry-after"]) <= 60
        # another key of the same tenant has its own budget
        with server.client(other) as http:
            assert http.get("/v1/auth/me").status_code == 200
        # unauthenticated callers are limited by address
        statuses = [httpx.get(server.url + "/v1/auth/me").status_code for _ in range(6)]
        assert statuses == [401] * 5 + [429]
        # health probes are never limited
        assert all(httpx.get(server.url + "/health/live").status_code == 200 for _ in range(8))
    finally:
        server.stop()


def test_tenant_setting_overrides_the_default(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path)
    server = VigilServer(tmp_path).start()
    try:
        with server.client(creds.admin_key) as http:
            r = http.patch("/v1/tenant", json={"rate_limit_requests": 3, "rate_limit_window_s": 30})
            assert r.status_code == 200, r.text
            statuses = [http.get("/v1/auth/me").status_code for _ in range(4)]
            assert http.get("/v1/auth/me").headers["ratelimit-policy"] == '"key";q=3;w=30'
        # the PATCH itself was counted under the default policy; the new policy applies at once
        assert statuses[-1] == 429
    finally:
        server.stop()


def test_limit_holds_across_two_servers_sharing_redis(tmp_path: Path, redis_url: str) -> None:
    creds = bootstrap(tmp_path)
    env = {**_limited_env(10), "VIGIL_QUEUE_URL": redis_url}
    first = VigilServer(tmp_path, env=env).start()
    second = VigilServer(tmp_path, args=["--role", "api"], env=env)
    try:
        second.start()
        statuses = []
        with first.client(creds.admin_key) as a, second.client(creds.admin_key) as b:
            for i in range(12):
                statuses.append((a if i % 2 == 0 else b).get("/v1/auth/me").status_code)
        assert statuses.count(200) == 10, statuses
        assert statuses[-2:] == [429, 429]
        # a fresh key is not affected by the other key's exhaustion on either server
        key = create_key(tmp_path, creds.tenant_name, "viewer", name=f"k{uuid.uuid4().hex[:6]}")
        with second.client(key) as b:
            assert b.get("/v1/auth/me").status_code == 200
    finally:
        second.stop()
        first.stop()


def test_revocation_reaches_the_other_replica_at_once(tmp_path: Path, redis_url: str) -> None:
    creds = bootstrap(tmp_path)
    env = {"VIGIL_QUEUE_URL": redis_url, "VIGIL_IDENTITY__KEY_CACHE_TTL_S": "3600"}
    first = VigilServer(tmp_path, env=env).start()
    second = VigilServer(tmp_path, args=["--role", "api"], env=env)
    try:
        second.start()
        with first.client(creds.admin_key) as admin:
            made = admin.post("/v1/keys", json={"name": "shared", "roles": ["auditor"]}).json()
        with second.client(made["key"]) as b:
            assert b.get("/v1/audit/entries").status_code == 200  # cached on the second replica
        with first.client(creds.admin_key) as admin:
            assert admin.delete(f"/v1/keys/{made['id']}").status_code == 204
        # the broadcast is asynchronous: allow it a moment (bounded), far below the cache TTL
        deadline = time.monotonic() + 5
        status = 200
        with second.client(made["key"]) as b:
            while status == 200 and time.monotonic() < deadline:
                status = b.get("/v1/audit/entries").status_code
                time.sleep(0.05)
        assert status == 401
    finally:
        second.stop()
        first.stop()
