"""HTTP routes of the audit ledger (/v1/audit): checkpoints, entries, proofs.

Entries are tenant-scoped (a tenant's auditors and admins see their own tenant's entries and
proofs for them); checkpoints and consistency proofs cover the whole log and reveal only sizes
and hashes, so any holder of ``audit:read`` may fetch them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from vigil.api.deps import get_runtime, require, tenant_db
from vigil.errors import NotFoundError
from vigil.identity.principal import Permission, Principal
from vigil.ledger import service
from vigil.ledger.keys import parse_configured_key
from vigil.ledger.schemas import (
    AuditEntryPage,
    AuditEntryRead,
    CheckpointRead,
    ConsistencyProofRead,
    InclusionProofRead,
    SigningKeyRead,
)

router = APIRouter(prefix="/v1/audit", tags=["audit"])

ReadAudit = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]
Db = Annotated[Session, Depends(tenant_db)]
#: Sequence numbers and tree sizes are 64-bit in storage: a larger one is invalid input, not a
#: database error.
BIGINT_MAX = 2**63 - 1
Seq = Annotated[int, Path(ge=0, le=BIGINT_MAX)]


class EntryWithProof(BaseModel):
    entry: AuditEntryRead
    proof: InclusionProofRead
    checkpoint: CheckpointRead | None


def _tenant_entry(session: Session, principal: Principal, seq: int) -> AuditEntryRead:
    entry = service.get_entry(session, seq=seq)
    if entry.tenant != principal.tenant_id:
        raise NotFoundError(f"audit entry {seq}: not found")
    return entry


@router.get("/checkpoint", summary="The latest signed checkpoint (or the one at a size)")
def get_checkpoint(
    _p: ReadAudit, session: Db, size: Annotated[int | None, Query(ge=0, le=BIGINT_MAX)] = None
) -> CheckpointRead:
    return service.get_checkpoint(session, size=size)


@router.post("/checkpoint", summary="Sign a checkpoint now (no-op when the log did not grow)")
def sign_checkpoint(
    request: Request,
    _p: Annotated[Principal, Depends(require(Permission.TENANT_MANAGE))],
    session: Db,
) -> CheckpointRead:
    settings = get_runtime(request).settings
    key = parse_configured_key(settings.audit_signing_key) if settings.audit_signing_key else None
    checkpoint = service.sign_checkpoint(session, home=settings.home, signing_key=key)
    session.commit()
    return checkpoint


@router.get("/keys", summary="Public keys that signed the log's checkpoints")
def list_keys(_p: ReadAudit, session: Db) -> list[SigningKeyRead]:
    return service.list_keys(session)


@router.get("/entries", summary="The caller's tenant's entries, in sequence order")
def list_entries(
    principal: ReadAudit,
    session: Db,
    actor: str | None = None,
    action: str | None = None,
    after_seq: Annotated[int | None, Query(ge=-1, le=BIGINT_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEntryPage:
    return service.list_entries(
        session,
        tenant=principal.tenant_id,
        actor=actor,
        action=action,
        after_seq=after_seq,
        limit=limit,
    )


@router.get("/entries/{seq}", summary="One entry")
def get_entry(principal: ReadAudit, session: Db, seq: Seq) -> AuditEntryRead:
    return _tenant_entry(session, principal, seq)


@router.get(
    "/entries/{seq}/proof",
    summary="Inclusion proof of an entry against a tree size (default: latest checkpoint)",
)
def inclusion_proof(
    principal: ReadAudit,
    session: Db,
    seq: Seq,
    tree_size: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> EntryWithProof:
    entry = _tenant_entry(session, principal, seq)
    proof = service.inclusion_proof(session, seq=seq, tree_size=tree_size)
    try:
        checkpoint: CheckpointRead | None = service.get_checkpoint(session, size=proof.tree_size)
    except NotFoundError:
        checkpoint = None
    return EntryWithProof(entry=entry, proof=proof, checkpoint=checkpoint)


@router.get("/consistency", summary="Consistency proof between two tree sizes")
def consistency_proof(
    _p: ReadAudit,
    session: Db,
    old_size: Annotated[int, Query(ge=0, le=BIGINT_MAX)],
    new_size: Annotated[int | None, Query(ge=0, le=BIGINT_MAX)] = None,
) -> ConsistencyProofRead:
    return service.consistency_proof(session, old_size=old_size, new_size=new_size)
