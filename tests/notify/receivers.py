"""Real local receivers for notification tests: an HTTP server on a free loopback port that
records every request and answers from a script (fail N times, then succeed; redirects; ...)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """Answers POSTs with the scripted replies in order, then with ``default``."""

    def __init__(
        self,
        script: Iterable[int | Reply] = (),
        *,
        default: int | Reply = 200,
        port: int = 0,
        gate: threading.Event | None = None,
    ) -> None:
        """``gate``: when given, every answer waits until it is set (a slow receiver)."""
        self.requests: list[Received] = []
        self.gate = gate
        self.arrived = threading.Event()
        self._script: deque[Reply] = deque(self._reply(r) for r in script)
        self.default = self._reply(default)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                reply = receiver._record(
                    Received(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                if receiver.gate is not None:
                    receiver.gate.wait(30)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @staticmethod
    def _reply(r: int | Reply) -> Reply:
        return r if isinstance(r, Reply) else Reply(status=r)

    def _record(self, request: Received) -> Reply:
        with self._lock:
            self.requests.append(request)
            self.arrived.set()
            return self._script.popleft() if self._script else self.default

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
