"""Tables of the audit ledger.

* ``audit_head``: one row (id 1) holding the tree size and the log's origin. Every append and every
  signing first updates this row, which serialises writers on SQLite and PostgreSQL alike.
* ``audit_entries``: leaf ``seq`` of the tree: the canonical JSON bytes and their leaf hash, plus a
  few copied columns for filtering (the JSON is authoritative).
* ``audit_nodes``: hashes of complete (perfect) subtrees of height >= 1, keyed by ``(level, idx)``;
  level 0 rows appear only for leaves whose entries were archived out of ``audit_entries``.
* ``audit_checkpoints``: every signed checkpoint (C2SP signed note text).
* ``audit_keys``: the public half of every signing key the log has used.
* ``audit_archives``: which entry ranges were archived, and where to.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base

# On SQLite an INTEGER PRIMARY KEY is the rowid: faster and smaller than a separate key.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    origin: Mapped[str | None] = mapped_column(String(255), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    tenant: Mapped[str] = mapped_column(String(255), nullable=False)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(255), nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_audit_entries_tenant_seq", "tenant", "seq"),)


class AuditNode(Base):
    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    key_id: Mapped[str] = mapped_column(String(8), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuditKey(Base):
    __tablename__ = "audit_keys"

    key_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    vkey: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # KeyStatus
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditArchive(Base):
    __tablename__ = "audit_archives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    begin: Mapped[int] = mapped_column(BigInteger, nullable=False)
    end: Mapped[int] = mapped_column(BigInteger, nullable=False)
    location: Mapped[str] = mapped_column(Text, nullable=False)
    checkpoint_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
