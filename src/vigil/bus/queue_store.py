"""On SQLite the ingest queue lives in a database file of its own, ``$VIGIL_HOME/queue.db``.

Why. SQLite admits one writer per *file*. With ``event_queue`` in the service database every
ingest publish waited (on the write gate, :mod:`vigil.bus.queue_gate`) for the detection
child's transaction — detections, alerts, incidents, outbox, ledger rows and the consumer
offset — which held the file 55–60 % of each batch: the serving process sat blocked half the
time. In a file of its own the queue has its own writers (ingest publishes, the purge) and its
own gate; the detection child only *reads* ``queue.db`` (a WAL reader takes no lock) and writes
the service database under the main gate, which ingest never takes.

Own engine, not ``ATTACH``. Each process opens ``queue.db`` with an engine of its own (WAL,
``synchronous=NORMAL``, busy timeout: :func:`vigil.store.engine.create_engine_for`):

* nothing needs one transaction across both files. The consumer reads its offset from the
  service database and the records after it from ``queue.db``; the results and the new offset
  commit together in the service database. The records are immutable once committed and are
  only deleted behind every consumer's committed offset, so reading them outside that
  transaction cannot miss or repeat anything;
* a transaction over attached WAL databases is atomic per file only (SQLite documents this), so
  ``ATTACH`` would suggest a guarantee it does not give;
* ``ATTACH`` would put ``queue.db`` on every pooled connection of the service database (the
  API's too) and make a broken queue file break every request, not just ingest and readiness;
* separate engines keep the two pools, pragmas and failure modes apart and make the hot paths
  (publish, read) exactly the code PostgreSQL runs on its one database.

Exactly-once effect is unchanged: the offset lives in the service database and moves in the
transaction of the results, so a crash anywhere replays exactly the uncommitted part.

Schema versioning: ``PRAGMA user_version`` of ``queue.db``, with :data:`SCHEMA_STEPS` (the DDL of
each version written out, so a later model change cannot alter what step 1 created), applied at
open under the queue gate in one ``BEGIN IMMEDIATE`` transaction. Not an Alembic branch: the
service database's history is one line (:func:`vigil.store.migrate.head_revision` refuses two
heads, and ``vigil db upgrade`` only knows the service database URL), the file is created by
the service itself at start, not by an operator, and one table needs no autogenerate. A
``queue.db`` newer than the code is refused (one-line error) rather than guessed at.

``seq`` must stay above every committed offset, or a consumer would skip records. At every open
``queue.db``'s ``seq`` counter (``sqlite_sequence``) is therefore raised to at least the service
database's high-water mark: its own ``event_queue`` counter and the largest committed consumer
offset (a gap in ``seq`` is harmless). That covers a new ``queue.db`` (first start, or the file
deleted by hand) and one restored from a backup older than ``vigil.db``'s.

Upgrades: an installation from before the split has its pending records in the service
database's ``event_queue``. At open (every start, in every process; a no-op once done) they are
copied into ``queue.db`` with their ``seq``, ``event_id`` and times, oldest first, and then deleted
from the service database, under both gates. Copying ignores rows already there, so a crash
between the copy and the delete only repeats the copy. The table stays in the service database
(empty on SQLite): PostgreSQL still keeps its queue there, and an older release started again
finds its table.

A ``queue.db`` replaced or deleted under a running server would leave the pooled connections
writing into the unlinked file; :meth:`QueueFile.check` (an ``os.stat``, microseconds) makes
publish, read and the stats behind ``/health/ready`` fail instead (503).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from vigil.bus.queue_gate import WriteGate
from vigil.errors import ConfigurationError, UnavailableError
from vigil.store.engine import create_engine_for, session_factory

if TYPE_CHECKING:
    from vigil.bus.queue import SqlEventQueue
    from vigil.config import Settings

log = logging.getLogger("vigil.queue")

QUEUE_FILE = "queue.db"
#: Records copied per transaction when moving a pre-split backlog into ``queue.db``.
ADOPT_CHUNK = 5_000

_V1 = (
    "CREATE TABLE event_queue ("
    " seq INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,"
    " tenant_id VARCHAR(36) NOT NULL,"
    " event_id VARCHAR(128),"
    " accepted_at DATETIME NOT NULL,"
    " payload BLOB NOT NULL,"
    " CONSTRAINT uq_event_queue_tenant_id UNIQUE (tenant_id, event_id))",
    "CREATE INDEX ix_event_queue_accepted_at ON event_queue (accepted_at)",
)
#: ``user_version`` N+1 is reached by running ``SCHEMA_STEPS[N]``.
SCHEMA_STEPS: tuple[tuple[str, ...], ...] = (_V1,)
SCHEMA_VERSION = len(SCHEMA_STEPS)


def queue_file_path(home: Path) -> Path:
    return home / QUEUE_FILE


def _sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite URL (None: not SQLite, or an in-memory/URI database)."""
    url = make_url(database_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


@dataclass(frozen=True, slots=True)
class QueueFile:
    """``queue.db``: its path and the identity of the file the engine opened."""

    path: Path
    identity: tuple[int, int]

    def check(self) -> None:
        """Raise :class:`UnavailableError` unless ``path`` is still the file that was opened."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise UnavailableError(f"queue database {self.path}: {exc.strerror}") from exc
        if (st.st_dev, st.st_ino) != self.identity:
            raise UnavailableError(f"queue database {self.path} was replaced; restart vigil")


def _high_water(main: sqlite3.Connection) -> int:
    """The largest ``seq`` the service database ever handed out or a consumer committed."""
    marks = [0]
    for sql in (
        "SELECT seq FROM sqlite_sequence WHERE name = 'event_queue'",
        "SELECT max(position) FROM consumer_offsets",
    ):
        try:
            row = main.execute(sql).fetchone()
        except sqlite3.OperationalError:  # no such table (a database not migrated yet)
            continue
        if row and row[0] is not None:
            marks.append(int(row[0]))
    return max(marks)


def _raise_sequence(queue: sqlite3.Connection, floor: int) -> None:
    """Make the next ``seq`` larger than ``floor``: at creation, and at every open because a
    ``queue.db`` restored from a backup older than ``vigil.db``'s would otherwise hand out
    numbers the restored offsets already passed."""
    row = queue.execute("SELECT seq FROM sqlite_sequence WHERE name = 'event_queue'").fetchone()
    if row is None:
        queue.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('event_queue', ?)", (floor,))
    elif int(row[0]) < floor:
        queue.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'event_queue'", (floor,))


def migrate_queue_schema(queue: sqlite3.Connection, main: sqlite3.Connection) -> int:
    """Bring ``queue`` (autocommit connection, caller holds the queue gate) to
    :data:`SCHEMA_VERSION` and its ``seq`` counter above ``main``'s high-water mark; return the
    version found."""
    queue.execute("BEGIN IMMEDIATE")
    try:
        (found,) = queue.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            raise ConfigurationError(
                f"queue database schema version {found} is newer than this release knows "
                f"({SCHEMA_VERSION}); upgrade vigil"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in SCHEMA_STEPS[version]:
                queue.execute(statement)
        _raise_sequence(queue, _high_water(main))
        queue.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        queue.execute("COMMIT")
    except BaseException:
        queue.execute("ROLLBACK")
        raise
    return int(found)


def adopt_legacy_rows(queue: sqlite3.Connection, main: sqlite3.Connection) -> int:
    """Move the records still in the service database's ``event_queue`` into ``queue.db``
    (both autocommit connections; the caller holds both gates). Returns how many moved."""
    try:
        (top,) = main.execute("SELECT max(seq) FROM event_queue").fetchone()
    except sqlite3.OperationalError:  # the service database has no queue table
        return 0
    if top is None:
        return 0
    moved, after = 0, 0
    while True:
        rows = main.execute(
            "SELECT seq, tenant_id, event_id, accepted_at, payload FROM event_queue "
            "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (after, top, ADOPT_CHUNK),
        ).fetchall()
        if not rows:
            break
        queue.execute("BEGIN IMMEDIATE")
        try:
            queue.executemany(
                "INSERT OR IGNORE INTO event_queue (seq, tenant_id, event_id, accepted_at, payload)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            queue.execute("COMMIT")
        except BaseException:
            queue.execute("ROLLBACK")
            raise
        moved += len(rows)
        after = rows[-1][0]
    # Only after every copy committed: a crash before this line repeats the (ignored) copy.
    main.execute("DELETE FROM event_queue WHERE seq <= ?", (top,))
    log.info("queue records moved into queue.db", extra={"moved": moved, "last_seq": top})
    return moved


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def prepare_queue_file(
    path: Path, main_path: Path, *, queue_gate: WriteGate, main_gate: WriteGate
) -> QueueFile:
    """Create or upgrade ``queue.db`` and move a pre-split backlog into it (see the module
    docstring). Gate order, queue then main, is the only order anything takes both in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with queue_gate.hold():
        queue = _connect(path)
        # mode=rw: never create an empty service database here (migrations make it); none
        # yet means no backlog and no offsets to respect
        main_uri = f"{main_path.resolve().as_uri()}?mode=rw" if main_path.exists() else ":memory:"
        main = sqlite3.connect(main_uri, uri=True, timeout=30, isolation_level=None)
        try:
            migrate_queue_schema(queue, main)
            with main_gate.hold():
                adopt_legacy_rows(queue, main)
        finally:
            queue.close()
            main.close()
        st = os.stat(path)
    return QueueFile(path, (st.st_dev, st.st_ino))


#: service database engine → the queue file opened beside it (see :func:`sqlite_changes`)
_QUEUE_FILES: weakref.WeakKeyDictionary[Engine, Path] = weakref.WeakKeyDictionary()


def open_sql_queue(
    settings: Settings, sessions: sessionmaker[Session], engine: Engine
) -> SqlEventQueue:
    """The SQL queue of a process: in ``queue.db`` beside a SQLite service database, in the
    service database itself on PostgreSQL (and for in-memory SQLite)."""
    from vigil.bus.queue import SqlEventQueue
    from vigil.bus.queue_gate import gate_for, main_gate_for

    url = settings.resolved_database_url()
    main_path = _sqlite_file(url)
    if main_path is None:
        return SqlEventQueue(sessions, gate=gate_for(url, settings.home))
    queue_gate, main_gate = gate_for(url, settings.home), main_gate_for(url, settings.home)
    assert isinstance(queue_gate, WriteGate) and isinstance(main_gate, WriteGate)  # SQLite
    path = queue_file_path(settings.home).resolve()  # checked by stat on every publish
    queue_file = prepare_queue_file(path, main_path, queue_gate=queue_gate, main_gate=main_gate)
    queue_engine = create_engine_for(f"sqlite:///{path}")
    _QUEUE_FILES[engine] = path
    return SqlEventQueue(
        sessions,
        gate=queue_gate,
        main_gate=main_gate,
        queue_sessions=session_factory(queue_engine),
        queue_file=queue_file,
    )


class SqliteChanges:
    """Whether any connection committed to a SQLite database since the last look.

    ``PRAGMA data_version`` on a connection of its own changes whenever another connection
    (of any process) commits: a look costs microseconds and reads no table, so a detection
    worker in another process than ingest can look every few milliseconds instead of reading
    the queue once a second.
    """

    def __init__(self, database: str) -> None:
        self._connection = sqlite3.connect(database, check_same_thread=False)
        self._version = self._read()

    def _read(self) -> int:
        (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        return int(version)

    def changed(self) -> bool:
        version = self._read()
        if version == self._version:
            return False
        self._version = version
        return True

    def close(self) -> None:
        self._connection.close()


def sqlite_changes(engine: Engine) -> SqliteChanges | None:
    """A :class:`SqliteChanges` on the database the queue of ``engine``'s service lives in:
    ``queue.db`` when :func:`open_sql_queue` opened one beside ``engine``'s database (publishes
    commit there, not in the service database), else ``engine``'s SQLite file itself."""
    queue_path = _QUEUE_FILES.get(engine)
    if queue_path is not None:
        return SqliteChanges(str(queue_path))
    url = engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    if url.database == ":memory:" or url.database.startswith("file:"):
        return None
    return SqliteChanges(url.database)
