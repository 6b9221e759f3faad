"""A scale-out deployment on loopback for tests: API replicas (`vigil serve --role api`) and
worker processes (`vigil worker`) on one PostgreSQL schema and one Redis stream.

All processes share one VIGIL_HOME (as replicas share one configuration and secret mount);
each writes its own log file in it.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tests.support.server import VIGIL, VigilServer, free_port, vigil_env

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Replica(VigilServer):
    """A VigilServer with a log file of its own in the shared home."""

    name: str = "api"

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"


@dataclass
class WorkerProcess:
    """`vigil worker` with its health listener on a free loopback port."""

    home: Path
    env: Mapping[str, str]
    name: str = "worker"
    args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        self.port = self.port or free_port()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*VIGIL, "worker", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=vigil_env(self.home, self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"vigil worker exited early:\n{self.log()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health/live", timeout=1).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"vigil worker not up after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class StreamNames:
    """A stream and dead-letter stream of this test's own, removed afterwards."""

    prefix: str = field(default_factory=lambda: f"vigil-test:{uuid.uuid4().hex[:10]}")

    @property
    def stream(self) -> str:
        return f"{self.prefix}:events"

    def env(self) -> dict[str, str]:
        return {
            "VIGIL_QUEUE_URL": REDIS_URL,
            "VIGIL_REDIS_QUEUE__STREAM": self.stream,
            "VIGIL_REDIS_QUEUE__DEAD_LETTER_STREAM": f"{self.prefix}:events:dead",
        }

    def cleanup(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
