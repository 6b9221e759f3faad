"""Rate limiting: a sliding-window counter per API key, user or (unauthenticated) address.

The sliding window is approximated the usual way (as in Cloudflare's and the ``limits``
library's "moving window counter"): the count of the current fixed window plus the previous
window's count weighted by how much of it still overlaps the sliding window. Memory is two
integers per key, and the estimate never under-counts by more than the previous window's skew.

* :class:`MemoryRateLimiter`: one process (the embedded deployment, tests).
* :class:`RedisRateLimiter`: one Lua script per request (atomic, Redis' own clock), so the limit
  holds across every replica sharing the Redis server. If Redis is unreachable the request is
  let through (and counted in ``vigil_rate_limiter_errors_total``): an outage of the limiter
  must not take the API down.

Responses carry the IETF draft headers (draft-ietf-httpapi-ratelimit-headers):
``RateLimit-Policy: "<name>";q=<requests>;w=<window s>`` and
``RateLimit: "<name>";r=<remaining>;t=<seconds to reset>``; a 429 adds ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("vigil.identity.ratelimit")


@dataclass(frozen=True, slots=True)
class Limit:
    name: str
    """Policy name in the headers: "key", "user" or "address"."""
    requests: int
    window_s: int


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: Limit
    remaining: int
    reset_s: int
    retry_after_s: int = 0

    def headers(self) -> dict[str, str]:
        name = self.limit.name
        out = {
            "RateLimit-Policy": f'"{name}";q={self.limit.requests};w={self.limit.window_s}',
            "RateLimit": f'"{name}";r={max(self.remaining, 0)};t={self.reset_s}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: Limit) -> RateDecision: ...


def _decision(
    *, allowed: bool, limit: Limit, current: int, previous: int, elapsed: float
) -> RateDecision:
    """Remaining, reset and retry-after from the two window counts (``elapsed`` seconds into
    the current window)."""
    window = limit.window_s
    weight = max(0.0, (window - elapsed) / window)
    estimate = previous * weight + current
    remaining = math.floor(limit.requests - estimate)
    reset = max(1, math.ceil(window - elapsed))
    retry = 0
    if not allowed:
        # When does the weighted previous window shrink enough to admit one more request?
        if previous > 0 and current < limit.requests:
            needed = (previous * weight + current + 1 - limit.requests) / previous * window
            retry = max(1, math.ceil(needed))
        else:
            retry = reset
        retry = min(retry, reset + window)
    return RateDecision(allowed, limit, remaining, reset, retry)


class MemoryRateLimiter:
    """In-process sliding-window counters (thread-safe; bounded memory)."""

    def __init__(self, max_keys: int = 200_000, clock: Any = time.time) -> None:
        self._windows: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock

    def hit_sync(self, key: str, limit: Limit) -> RateDecision:
        now = self._clock()
        index = int(now // limit.window_s)
        elapsed = now - index * limit.window_s
        with self._lock:
            window, current, previous = self._windows.get(key, (index, 0, 0))
            if window != index:
                previous = current if window == index - 1 else 0
                current = 0
            estimate = previous * ((limit.window_s - elapsed) / limit.window_s) + current
            allowed = estimate + 1 <= limit.requests
            if allowed:
                current += 1
            if len(self._windows) >= self._max_keys and key not in self._windows:
                self._windows.clear()  # crude but bounded; a flood of addresses resets counts
            self._windows[key] = (index, current, previous)
        return _decision(
            allowed=allowed, limit=limit, current=current, previous=previous, elapsed=elapsed
        )

    async def hit(self, key: str, limit: Limit) -> RateDecision:
        return self.hit_sync(key, limit)


# KEYS[1]: key prefix. ARGV: limit, window seconds.
# Returns {allowed (0/1), current count, previous count, elapsed milliseconds}.
_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2]) * 1000
local index = math.floor(now_ms / window_ms)
local elapsed = now_ms - index * window_ms
local cur_key = KEYS[1] .. ':' .. index
local prev_key = KEYS[1] .. ':' .. (index - 1)
local cur = tonumber(redis.call('GET', cur_key) or '0')
local prev = tonumber(redis.call('GET', prev_key) or '0')
local estimate = prev * ((window_ms - elapsed) / window_ms) + cur
if estimate + 1 > limit then
  return {0, cur, prev, elapsed}
end
cur = redis.call('INCR', cur_key)
if cur == 1 then
  redis.call('PEXPIRE', cur_key, window_ms * 2 + 1000)
end
return {1, cur, prev, elapsed}
"""


class RedisRateLimiter:
    """Sliding-window counters in Redis (``redis.asyncio``), shared by every replica."""

    def __init__(self, url: str, *, prefix: str = "vigil:rl") -> None:
        import redis.asyncio as redis_async

        self._client = redis_async.Redis.from_url(
            url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self._script = self._client.register_script(_LUA)
        self._prefix = prefix

    async def hit(self, key: str, limit: Limit) -> RateDecision:
        from vigil.obs.metrics import RATE_LIMITER_ERRORS

        # The hash tag keeps both windows of a key on one Redis Cluster slot.
        redis_key = f"{self._prefix}:{{{key}}}:{limit.window_s}"
        try:
            allowed, current, previous, elapsed_ms = await self._script(
                keys=[redis_key], args=[limit.requests, limit.window_s]
            )
        except Exception as exc:
            RATE_LIMITER_ERRORS.inc()
            log.warning("rate limiter unavailable; letting the request through: %s", exc)
            return RateDecision(True, limit, limit.requests, limit.window_s)
        return _decision(
            allowed=bool(allowed),
            limit=limit,
            current=int(current),
            previous=int(previous),
            elapsed=int(elapsed_ms) / 1000,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
