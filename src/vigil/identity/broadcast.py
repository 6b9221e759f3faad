"""A revocation bus across processes: Redis pub/sub.

Publishing applies the invalidation locally at once and sends it on the channel; a background
thread applies the invalidations other replicas send. A message that is lost (subscriber
reconnecting) is covered by the caches' short TTLs, which bound how stale any replica can be.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from typing import Any

import orjson

from vigil.identity.authn import LocalRevocationBus
from vigil.identity.invalidation import Invalidation

log = logging.getLogger("vigil.identity.broadcast")

CHANNEL = "vigil:identity:invalidations"


class RedisRevocationBus(LocalRevocationBus):
    """Also a :class:`vigil.runtime.BackgroundWorker` (its subscriber thread)."""

    name = "identity-revocations"

    def __init__(self, url: str, *, channel: str = CHANNEL) -> None:
        import redis

        super().__init__()
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._channel = channel
        self._origin = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = 0
        self.last_error: str | None = None

    def publish(self, invalidation: Invalidation) -> None:
        self.deliver(invalidation)
        message = {"origin": self._origin, "invalidation": invalidation.to_json()}
        try:
            self._client.publish(self._channel, orjson.dumps(message))
        except Exception as exc:  # other replicas fall back to their cache TTL
            self.last_error = f"publish: {exc}"
            log.warning("could not broadcast an invalidation: %s", exc)

    def _handle(self, raw: Any) -> None:
        try:
            message = orjson.loads(raw)
            if message.get("origin") == self._origin:
                return
            self.received += 1
            self.deliver(Invalidation.from_json(message.get("invalidation") or {}))
        except Exception:
            log.exception("bad invalidation message")

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self._channel)
                # Anything may have been revoked while we were not listening.
                self.deliver(Invalidation(everything=True))
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._handle(message["data"])
                self.last_error = None
            except Exception as exc:
                self.last_error = f"subscribe: {exc}"
                log.warning("revocation subscriber: %s; reconnecting", exc)
                self._stop.wait(1.0)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vigil-revocations", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.close()

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "received": self.received,
            "last_error": self.last_error,
        }


def publish_once(url: str, invalidation: Invalidation, *, channel: str = CHANNEL) -> bool:
    """Send one invalidation from a process that does not serve (the CLI). False when Redis
    could not be reached: the revocation epoch still reaches every server within a second."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    message = {"origin": f"cli-{uuid.uuid4().hex}", "invalidation": invalidation.to_json()}
    try:
        client.publish(channel, orjson.dumps(message))
        return True
    except Exception as exc:
        log.warning("could not broadcast an invalidation: %s", exc)
        return False
    finally:
        client.close()
