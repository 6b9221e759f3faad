"""POST a payload over HTTP and classify the answer (shared by webhook and Slack channels).

* 2xx: delivered.
* 307/308 to the same origin (scheme, host, port): followed, up to ``max_redirects``; any other
  redirect is not followed (the request would be re-sent, with its signature, somewhere else).
* 408, 425, 429 and 5xx, timeouts and connection errors: transient, retried (``Retry-After`` is
  passed on).
* Other 4xx, refused destinations and invalid URLs: permanent, dead-lettered at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from vigil.notify.channels.base import SendResult, clip, failed, rejected
from vigil.notify.channels.netguard import AddressPolicy, BlockedDestinationError
from vigil.notify.models import AttemptOutcome

RETRYABLE_STATUS = frozenset({408, 425, 429})
FOLLOWED_REDIRECTS = frozenset({307, 308})
REPLY_EXCERPT_BYTES = 512


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _excerpt(response: httpx.Response) -> str | None:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= REPLY_EXCERPT_BYTES:
            break
    text = b"".join(chunks)[:REPLY_EXCERPT_BYTES].decode("utf-8", errors="replace")
    return clip(text) or None


def post(
    client: httpx.Client,
    policy: AddressPolicy,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    max_redirects: int,
) -> SendResult:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return rejected(f"invalid URL: {exc}")
    if target.scheme not in ("http", "https") or not target.host:
        return rejected(f"unsupported URL {target.scheme}://{target.host}")
    hops = 0
    while True:
        try:
            # Fail early with a clear reason; the transport checks again at connect time.
            policy.resolve(target.host, target.port or (443 if target.scheme == "https" else 80))
        except BlockedDestinationError as exc:
            return rejected(str(exc))
        except OSError as exc:
            return failed(f"cannot resolve {target.host}: {exc}")
        try:
            with client.stream("POST", target, content=content, headers=dict(headers)) as response:
                status = response.status_code
                reply = _excerpt(response)
                location = response.headers.get("location")
                retry_after = parse_retry_after(response.headers.get("retry-after"))
        except httpx.TimeoutException as exc:
            return failed(f"timeout: {type(exc).__name__}")
        except httpx.TransportError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            return rejected(f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return SendResult(outcome=AttemptOutcome.DELIVERED, status_code=status, reply=reply)
        if status in FOLLOWED_REDIRECTS and location:
            next_url = target.join(location)
            if not _same_origin(target, next_url):
                return rejected(
                    f"HTTP {status}: redirect to another origin ({next_url.scheme}://"
                    f"{next_url.host}) not followed",
                    status_code=status,
                )
            if hops >= max_redirects:
                return rejected(f"HTTP {status}: too many redirects", status_code=status)
            hops += 1
            target = next_url
            continue
        if status in RETRYABLE_STATUS or status >= 500:
            return failed(
                f"HTTP {status}", status_code=status, reply=reply, retry_after_s=retry_after
            )
        return rejected(f"HTTP {status}", status_code=status, reply=reply)
