"""Access-token verification: signature, algorithm allowlist, audience, issuer, type, expiry."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from vigil.errors import AuthenticationError
from vigil.identity.tokens import TokenSigner

SECRET = b"k" * 64
SIGNER = TokenSigner(secret=SECRET, audience="vigil-api", issuer="vigil", ttl_s=900)


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "vigil",
        "aud": "vigil-api",
        "sub": "u1",
        "tid": "t1",
        "sid": "s1",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "jti": "j",
        "typ": "access",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, object], key: bytes = SECRET, typ: str = "at+jwt") -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"typ": typ})


def test_issued_token_verifies_with_all_claims() -> None:
    token = SIGNER.issue(user_id="u1", tenant_id="t1", session_id="s1")
    claims = SIGNER.decode(token)
    assert claims["sub"] == "u1" and claims["tid"] == "t1" and claims["sid"] == "s1"
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"


def _unsigned(claims: dict[str, object]) -> str:
    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims)}."


@pytest.mark.parametrize(
    ("label", "token"),
    [
        ("alg none", _unsigned(_claims())),
        ("wrong key", _sign(_claims(), key=b"x" * 64)),
        ("wrong audience", _sign(_claims(aud="someone-else"))),
        ("wrong issuer", _sign(_claims(iss="evil"))),
        ("expired", _sign(_claims(exp=int(time.time()) - 60))),
        # Far ahead: the parameters are made at collection, maybe long before the test runs.
        ("not yet valid", _sign(_claims(nbf=int(time.time()) + 86400))),
        ("refresh type", _sign(_claims(typ="refresh"))),
        ("plain jwt header", _sign(_claims(), typ="JWT")),
        ("missing sid", _sign(_claims(sid=None))),
        ("missing exp", _sign(_claims(exp=None))),
        ("garbage", "a.b.c"),
        ("tampered payload", "x"),
    ],
)
def test_bad_tokens_are_rejected(label: str, token: str) -> None:
    if label == "tampered payload":
        good = SIGNER.issue(user_id="u1", tenant_id="t1", session_id="s1")
        head, payload, sig = good.split(".")
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        data["tid"] = "another-tenant"
        forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        token = f"{head}.{forged}.{sig}"
    with pytest.raises(AuthenticationError) as err:
        SIGNER.decode(token)
    assert str(err.value) == "invalid or missing credentials"


def test_hs384_signed_with_the_right_key_is_still_refused() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS384", headers={"typ": "at+jwt"})
    with pytest.raises(AuthenticationError):
        SIGNER.decode(token)
