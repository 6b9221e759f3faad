"""schemathesis against the real server's /openapi.json for the identity and usage routes, with
valid credentials: no 5xx, and every response matches the documented schema and media type."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.identity import DEFAULT_PASSWORD, bootstrap
from tests.support.server import VigilServer

ST = str(Path(sys.executable).with_name("st"))
# Routes that would end the fuzzer's own session are left out.
EXCLUDE = r"^/v1/auth/(logout|password)$"
INCLUDE = r"^/v1/(auth|users|roles|keys|tenant|access-rules|usage)"


def test_identity_routes_hold_their_schema(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path)
    server = VigilServer(tmp_path, env={"VIGIL_IDENTITY__RATE_LIMIT_REQUESTS": "1000000"}).start()
    try:
        with server.client() as http:
            login = {
                "tenant": creds.tenant_name,
                "email": creds.admin_email,
                "password": DEFAULT_PASSWORD,
            }
            token = http.post("/v1/auth/login", json=login).json()["access_token"]
        proc = subprocess.run(
            [
                ST,
                "run",
                server.url + "/openapi.json",
                "-H",
                f"Authorization: Bearer {token}",
                "--checks",
                "not_a_server_error,response_schema_conformance,content_type_conformance",
                "--include-path-regex",
                INCLUDE,
                "--exclude-path-regex",
                EXCLUDE,
                "--max-examples",
                "20",
                "--phases",
                "examples,fuzzing",
                "--seed",
                "20261121",
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert proc.returncode == 0, (
            proc.stdout[-6000:] + proc.stderr[-2000:] + server.log()[-3000:]
        )
    finally:
        server.stop()
