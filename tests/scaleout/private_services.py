"""Services a fault test may break without touching the shared ones: a PostgreSQL server of its
own (``initdb`` + ``pg_ctl`` into a temporary directory, on a free port) and a TCP proxy in front
of Redis whose connections can be cut and restored.

PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` system user
(``runuser``), in a directory handed over to it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.server import free_port


def _postgres_bin() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("no PostgreSQL server binaries (initdb, pg_ctl) to run a private server")
    return Path(initdb).parent


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of this test run's own, trust auth on 127.0.0.1:``port``."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vigil-pg-")))
    port: int = field(default_factory=free_port)
    bin: Path = field(default_factory=_postgres_bin)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def _run(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def _check(self, args: Sequence[str]) -> None:
        proc = self._run(args)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}")

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._check(["initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E",
                     "UTF8", "--no-sync"])  # fmt: skip
        return self

    def start(self) -> None:
        # fsync off: a test server, speed over durability; the socket lives in our directory.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._check(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log_path),
                     "-w", "-t", "60", "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``fast`` disconnects every client (what a restart or failover does to them)."""
        self._check(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def running(self) -> bool:
        return self._run(["pg_ctl", "-D", str(self.data), "status"]).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return make_url(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"
        ).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URL."""
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``. :meth:`cut` closes every connection and
    refuses new ones (the network between the service and Redis is gone); :meth:`restore`
    listens again on the same port. :meth:`drop_reply_to` closes a connection instead of
    forwarding the reply to the next request containing a marker: the request was executed,
    the client never hears the answer."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._drop_marker: bytes | None = None
        #: connections (their upstream socket) whose next reply is to be dropped
        self._doomed: set[socket.socket] = set()
        self.dropped_replies = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> TcpProxy:
        self.restore()
        return self

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            _close(listener)
        for s in sockets:
            _close(s)

    def close(self) -> None:
        self.cut()

    def drop_reply_to(self, marker: bytes) -> None:
        """Drop the reply to the next request whose bytes contain ``marker`` (once)."""
        self._drop_marker = marker

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _close(client)
                    _close(server)
                    return
                self._sockets.update((client, server))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if replies and source in self._doomed:
                    self._doomed.discard(source)
                    self.dropped_replies += 1
                    break
                marker = self._drop_marker
                if not replies and marker is not None and marker in data:
                    self._drop_marker = None
                    self._doomed.add(target)
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(source)
                self._sockets.discard(target)
            _close(source)
            _close(target)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()
