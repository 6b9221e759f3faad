"""TOTP second factor (RFC 6238, 30-second steps, 6 digits) and recovery codes.

* The seed is sealed with AES-256-GCM under a key derived (HKDF) from the install secret, so a
  database dump alone does not reveal it.
* A code is accepted for the current step and one step either side (clock drift), and only for a
  step later than the last accepted one: a code cannot be replayed, not even within its step.
* Ten recovery codes are issued at confirmation, stored as HMAC-SHA-256 with the install pepper,
  each usable once.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass

import pyotp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vigil.errors import ConflictError, InvalidInputError, InvalidTransitionError
from vigil.identity.audit import IdentityAction, record
from vigil.identity.credentials import (
    new_recovery_code,
    normalise_recovery_code,
    pepper_hash,
)
from vigil.identity.models import RecoveryCode, TotpEnrolment, User
from vigil.identity.service import new_id, now

STEP_S = 30
RECOVERY_CODES = 10


@dataclass(frozen=True, slots=True)
class MfaKeys:
    seal_key: bytes
    pepper: bytes

    @classmethod
    def from_install_secret(cls, secret: bytes) -> MfaKeys:
        def derive(info: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)

        return cls(seal_key=derive(b"vigil totp seal"), pepper=derive(b"vigil recovery pepper"))

    def seal(self, seed: str, user_id: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.seal_key).encrypt(nonce, seed.encode(), user_id.encode())

    def unseal(self, sealed: bytes, user_id: str) -> str:
        return AESGCM(self.seal_key).decrypt(sealed[:12], sealed[12:], user_id.encode()).decode()


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def enrolment_of(session: Session, *, user: User) -> TotpEnrolment | None:
    return session.execute(
        select(TotpEnrolment).where(TotpEnrolment.user_id == user.id)
    ).scalar_one_or_none()


def has_confirmed_totp(session: Session, *, user: User) -> bool:
    enrolment = enrolment_of(session, user=user)
    return enrolment is not None and enrolment.confirmed_at is not None


def start_enrolment(session: Session, *, user: User, keys: MfaKeys, issuer: str) -> Enrolment:
    """A new (unconfirmed) seed; replaces an unconfirmed one. The seed is returned once."""
    existing = enrolment_of(session, user=user)
    if existing is not None and existing.confirmed_at is not None:
        raise ConflictError("TOTP is already enrolled; disable it first to enrol again")
    seed = pyotp.random_base32()
    if existing is not None:
        session.delete(existing)
        session.flush()
    session.add(
        TotpEnrolment(
            user_id=user.id,
            tenant_id=user.tenant_id,
            secret_sealed=keys.seal(seed, user.id),
            created_at=now(),
            last_step=0,
        )
    )
    record(
        session,
        tenant_id=user.tenant_id,
        actor=f"user:{user.id}",
        action=IdentityAction.MFA_ENROLMENT_STARTED,
        target=f"user:{user.id}",
    )
    uri = pyotp.TOTP(seed).provisioning_uri(name=user.email, issuer_name=issuer)
    return Enrolment(secret=seed, otpauth_uri=uri)


def _match_step(seed: str, code: str, last_step: int, at: float) -> int | None:
    """The step ``code`` belongs to (current ±1), if later than ``last_step``."""
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(seed)
    current = int(at // STEP_S)
    found = None
    for step in (current - 1, current, current + 1):
        expected = totp.at(step * STEP_S)
        # compare every candidate (constant work whichever matches)
        if hmac.compare_digest(expected, code) and step > last_step:
            found = step
    return found


def verify_totp(
    session: Session, *, user: User, keys: MfaKeys, code: str, at: float | None = None
) -> bool:
    """Check a code of a confirmed enrolment and burn its step."""
    enrolment = enrolment_of(session, user=user)
    if enrolment is None or enrolment.confirmed_at is None:
        return False
    seed = keys.unseal(enrolment.secret_sealed, user.id)
    step = _match_step(seed, code.strip(), enrolment.last_step, time.time() if at is None else at)
    if step is None:
        return False
    enrolment.last_step = step
    return True


def confirm_enrolment(
    session: Session, *, user: User, keys: MfaKeys, code: str, at: float | None = None
) -> list[str]:
    """Confirm with a first code; returns the recovery codes (shown once)."""
    enrolment = enrolment_of(session, user=user)
    if enrolment is None:
        raise InvalidTransitionError("start a TOTP enrolment first")
    if enrolment.confirmed_at is not None:
        raise ConflictError("TOTP is already confirmed")
    seed = keys.unseal(enrolment.secret_sealed, user.id)
    step = _match_step(seed, code.strip(), enrolment.last_step, time.time() if at is None else at)
    if step is None:
        raise InvalidInputError("the code is not valid", field="body.code")
    enrolment.last_step = step
    enrolment.confirmed_at = now()
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    for c in codes:
        session.add(
            RecoveryCode(
                id=new_id(),
                tenant_id=user.tenant_id,
                user_id=user.id,
                code_hash=pepper_hash(keys.pepper, normalise_recovery_code(c)),
            )
        )
    record(
        session,
        tenant_id=user.tenant_id,
        actor=f"user:{user.id}",
        action=IdentityAction.MFA_ENROLLED,
        target=f"user:{user.id}",
    )
    return codes


def use_recovery_code(session: Session, *, user: User, keys: MfaKeys, code: str) -> bool:
    wanted = pepper_hash(keys.pepper, normalise_recovery_code(code))
    rows = session.execute(
        select(RecoveryCode).where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    ).scalars()
    match = None
    for row in rows:
        if hmac.compare_digest(row.code_hash, wanted):
            match = row
    if match is None:
        return False
    match.used_at = now()
    record(
        session,
        tenant_id=user.tenant_id,
        actor=f"user:{user.id}",
        action=IdentityAction.RECOVERY_CODE_USED,
        target=f"user:{user.id}",
    )
    return True


def disable(session: Session, *, user: User, actor: str) -> None:
    session.execute(delete(TotpEnrolment).where(TotpEnrolment.user_id == user.id))
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    record(
        session,
        tenant_id=user.tenant_id,
        actor=actor,
        action=IdentityAction.MFA_DISABLED,
        target=f"user:{user.id}",
    )
