"""The audit ledger over HTTP on the real server: tenant-scoped entries, auditor-only access,
signed checkpoints and proofs that verify offline."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer
from vigil.ledger import merkle
from vigil.ledger.checkpoint import SignedCheckpoint


@pytest.fixture(scope="module")
def ledger_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[VigilServer, Credentials, Credentials]]:
    home = tmp_path_factory.mktemp("ledger-http") / "home"
    acme = bootstrap(home, tenant="acme")
    other = bootstrap(home, tenant="globex")
    server = VigilServer(home=home).start()
    yield server, acme, other
    server.stop()


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def test_entries_are_tenant_scoped_and_proofs_verify(
    ledger_server: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, other = ledger_server
    auditor = create_key(server.home, acme.tenant_name, "auditor")
    with server.client(auditor) as http:
        page = http.get("/v1/audit/entries", params={"limit": 1000})
        assert page.status_code == 200, page.text
        entries = page.json()["items"]
        assert entries, "admin init and key creation must be in the ledger"
        assert {e["tenant"] for e in entries} == {acme.tenant_id}
        seq = entries[-1]["seq"]

    with server.client(acme.admin_key) as admin:
        signed = admin.post("/v1/audit/checkpoint")
        assert signed.status_code == 200, signed.text
        checkpoint = signed.json()

    with server.client(auditor) as http:
        got = http.get(f"/v1/audit/entries/{seq}/proof").json()
        proof = got["proof"]
        assert proof["tree_size"] == checkpoint["size"]
        note = SignedCheckpoint.parse(got["checkpoint"]["note"]).checkpoint
        leaf = merkle.leaf_hash(got["entry"]["canonical"].encode())
        assert base64.b64encode(leaf).decode() == got["entry"]["leaf_hash"]
        assert merkle.verify_inclusion(
            seq, proof["tree_size"], leaf, [_b64(h) for h in proof["hashes"]], note.root
        )
        # A consistency proof from an older size to the checkpoint verifies too.
        cons = http.get(
            "/v1/audit/consistency", params={"old_size": 1, "new_size": note.size}
        ).json()
        assert len(cons["hashes"]) <= note.size.bit_length() + 1

    # The other tenant's entries are not found, not forbidden.
    with server.client(other.admin_key) as http:
        assert http.get(f"/v1/audit/entries/{seq}").status_code == 404
        assert http.get(f"/v1/audit/entries/{seq}/proof").status_code == 404
        theirs = http.get("/v1/audit/entries").json()["items"]
        assert theirs and {e["tenant"] for e in theirs} == {other.tenant_id}


def test_viewers_and_analysts_cannot_read_the_ledger(
    ledger_server: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, _ = ledger_server
    for role in ("viewer", "security"):
        key = create_key(server.home, acme.tenant_name, role)
        with server.client(key) as http:
            r = http.get("/v1/audit/entries")
            assert r.status_code == 403, (role, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    auditor = create_key(server.home, acme.tenant_name, "auditor")
    with server.client(auditor) as http:
        assert http.post("/v1/audit/checkpoint").status_code == 403


def test_bad_proof_requests_are_problems(
    ledger_server: tuple[VigilServer, Credentials, Credentials],
) -> None:
    server, acme, _ = ledger_server
    with server.client(acme.admin_key) as http:
        size = http.post("/v1/audit/checkpoint").json()["size"]
        r = http.get("/v1/audit/consistency", params={"old_size": size + 10})
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert http.get("/v1/audit/entries/999999999").status_code == 404
        assert http.get("/v1/audit/entries", params={"limit": 0}).status_code == 422


def test_scheduled_checkpoints_are_signed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    creds = bootstrap(home)
    server = VigilServer(home=home, env={"VIGIL_AUDIT_CHECKPOINT_INTERVAL_S": "0.2"}).start()
    try:
        with server.client(creds.admin_key) as http:
            for _ in range(100):
                r = http.get("/v1/audit/checkpoint")
                if r.status_code == 200:
                    break
                time.sleep(0.1)
            assert r.status_code == 200, r.text
            assert r.json()["size"] >= 1
    finally:
        server.stop()
