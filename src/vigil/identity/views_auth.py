"""HTTP routes of sessions: login, refresh, logout, the caller's profile, password change, TOTP.

Token responses carry ``Cache-Control: no-store``. Failed logins answer one generic 401
whatever was wrong (unknown tenant, unknown user, wrong password, disabled account), or 429
with ``Retry-After`` while the account or address is backing off.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from vigil.api.deps import current_principal, get_runtime, tenant_db
from vigil.api.problems import problem
from vigil.errors import InvalidInputError, PermissionDeniedError, VigilError
from vigil.identity import mfa, service, sessions
from vigil.identity.authn import fail
from vigil.identity.context import IdentityServices, identity_of
from vigil.identity.credentials import verify_password
from vigil.identity.invalidation import Invalidation
from vigil.identity.models import AuthSession, User
from vigil.identity.principal import Principal
from vigil.identity.schemas import (
    LoginRequest,
    LogoutRequest,
    MeRead,
    PasswordChange,
    RecoveryCodesRead,
    RefreshRequest,
    TokenResponse,
    TotpConfirm,
    TotpDisable,
    TotpEnrolmentRead,
)
from vigil.store.tenancy import system_session

router = APIRouter(prefix="/v1/auth", tags=["auth"])


def signed_in_user(principal: Principal = Depends(current_principal)) -> Principal:
    """Routes for a person's own credentials (password, TOTP): API keys are refused (403)."""
    if principal.kind != "user":
        raise PermissionDeniedError("only a signed-in user can do this (not an API key)")
    return principal


Caller = Annotated[Principal, Depends(current_principal)]
SignedIn = Annotated[Principal, Depends(signed_in_user)]
Db = Annotated[Session, Depends(tenant_db)]


def system_db(request: Request) -> Iterator[Session]:
    """An unscoped session for the routes that find out who the caller is."""
    session = system_session(get_runtime(request).sessions)
    try:
        yield session
    finally:
        session.rollback()
        session.close()


SystemDb = Annotated[Session, Depends(system_db)]


def _services(request: Request) -> IdentityServices:
    return identity_of(get_runtime(request))


def _token_response(pair: sessions.TokenPair, response: Response) -> TokenResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        mfa_pending=pair.mfa_pending,
    )


@router.post(
    "/login",
    summary="Sign in with email and password (+ TOTP or a recovery code when enrolled)",
    response_model=TokenResponse,
)
def login(body: LoginRequest, request: Request, response: Response, db: SystemDb) -> object:
    ids = _services(request)
    ctx = sessions.LoginContext(
        settings=ids.settings,
        signer=ids.signer,
        keys=ids.mfa_keys,
        client_address=request.client.host if request.client else None,
    )
    try:
        pair = sessions.login(
            db,
            tenant_name=body.tenant,
            email=body.email,
            password=body.password,
            totp_code=body.totp,
            recovery_code=body.recovery_code,
            ctx=ctx,
        )
    except sessions.MfaRequiredError:
        return problem(
            status=401,
            title="Second factor required",
            detail="send the current TOTP code as 'totp' (or a recovery code)",
            slug="mfa-required",
            instance=request.url.path,
            headers={"WWW-Authenticate": 'Bearer realm="vigil"', "Cache-Control": "no-store"},
            extra={"mfa_required": True},
        )
    except VigilError:
        db.commit()  # throttle counters and audit entries of the failure
        raise
    db.commit()
    return _token_response(pair, response)


@router.post(
    "/refresh",
    summary="Trade a refresh token for a new pair (single use; reuse revokes the session)",
    response_model=TokenResponse,
)
def refresh(body: RefreshRequest, request: Request, response: Response, db: SystemDb) -> object:
    ids = _services(request)
    outcome = sessions.refresh(db, token=body.refresh_token, signer=ids.signer)
    db.commit()
    if outcome.pair is None:
        if outcome.revoked_session:
            ids.invalidate(Invalidation(session_ids=(outcome.revoked_session,)))
        raise fail("refresh_reused")
    return _token_response(outcome.pair, response)


@router.post(
    "/logout",
    summary="End the caller's session (access and refresh tokens)",
    status_code=204,
    response_class=Response,
)
def logout(body: LogoutRequest, request: Request, principal: Caller, db: Db) -> Response:
    ended: list[str] = []
    sid = principal.attributes.get("session_id")
    if (
        principal.kind == "user"
        and isinstance(sid, str)
        and sessions.revoke_session(db, session_id=sid, reason="logout", actor=principal.actor)
    ):
        ended.append(sid)
    if body.refresh_token and principal.kind == "user":
        other = sessions.session_of_refresh_token(
            db, token=body.refresh_token, user_id=principal.subject_id
        )
        if other and sessions.revoke_session(
            db, session_id=other, reason="logout", actor=principal.actor
        ):
            ended.append(other)
    db.commit()
    if ended:
        _services(request).invalidate(Invalidation(session_ids=tuple(ended)))
    return Response(status_code=204)


@router.get("/me", summary="Who the caller is and what they may do")
def me(principal: Caller) -> MeRead:
    email = principal.attributes.get("email")
    tenant = principal.attributes.get("tenant_name")
    return MeRead(
        tenant_id=principal.tenant_id,
        tenant=str(tenant) if tenant else None,
        kind=principal.kind,
        subject_id=principal.subject_id,
        email=str(email) if email else None,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        mfa_pending=bool(principal.attributes.get("mfa_pending", False)),
    )


def _own_user(principal: Principal, db: Session) -> User:
    return service.get_user(db, user_id=principal.subject_id)


@router.post(
    "/password",
    summary="Change the caller's password (ends their other sessions)",
    status_code=204,
    response_class=Response,
)
def change_password(
    body: PasswordChange, request: Request, principal: SignedIn, db: Db
) -> Response:
    user = _own_user(principal, db)
    if not verify_password(user.password_hash, body.current_password):
        raise InvalidInputError("the current password is wrong", field="body.current_password")
    ids = _services(request)
    service.set_password(
        db,
        user=user,
        password=body.new_password,
        min_length=ids.settings.password_min_length,
        actor=principal.actor,
    )
    keep = principal.attributes.get("session_id")
    ended = sessions.revoke_user_sessions(
        db, user_id=user.id, reason="password_changed", keep=keep if isinstance(keep, str) else None
    )
    db.commit()
    if ended:
        ids.invalidate(Invalidation(session_ids=tuple(ended)))
    return Response(status_code=204)


@router.post(
    "/mfa/totp",
    summary="Start TOTP enrolment: a new seed and otpauth:// URI (confirm with a code)",
    status_code=201,
)
def start_totp(
    request: Request, response: Response, principal: SignedIn, db: Db
) -> TotpEnrolmentRead:
    user = _own_user(principal, db)
    tenant = principal.attributes.get("tenant_name") or "vigil"
    enrolment = mfa.start_enrolment(
        db, user=user, keys=_services(request).mfa_keys, issuer=f"Vigil ({tenant})"
    )
    db.commit()
    response.headers["Cache-Control"] = "no-store"
    return TotpEnrolmentRead(secret=enrolment.secret, otpauth_uri=enrolment.otpauth_uri)


@router.post(
    "/mfa/totp/confirm",
    summary="Confirm TOTP enrolment with a current code; returns recovery codes once",
)
def confirm_totp(
    body: TotpConfirm, request: Request, response: Response, principal: SignedIn, db: Db
) -> RecoveryCodesRead:
    user = _own_user(principal, db)
    codes = mfa.confirm_enrolment(db, user=user, keys=_services(request).mfa_keys, code=body.code)
    sid = principal.attributes.get("session_id")
    current = db.get(AuthSession, sid) if isinstance(sid, str) else None
    if current is not None and current.mfa_pending:
        current.mfa_pending = False  # possession of the factor is now proven
    db.commit()
    if isinstance(sid, str):
        _services(request).invalidate(Invalidation(session_ids=(sid,)))
    response.headers["Cache-Control"] = "no-store"
    return RecoveryCodesRead(recovery_codes=codes)


@router.post(
    "/mfa/totp/disable",
    summary="Remove the caller's TOTP (needs the password)",
    status_code=204,
    response_class=Response,
)
def disable_totp(body: TotpDisable, principal: SignedIn, db: Db) -> Response:
    user = _own_user(principal, db)
    if not verify_password(user.password_hash, body.password):
        raise InvalidInputError("the password is wrong", field="body.password")
    mfa.disable(db, user=user, actor=principal.actor)
    db.commit()
    return Response(status_code=204)
