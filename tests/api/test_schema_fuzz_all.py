"""schemathesis against EVERY operation of the real server's ``/openapi.json``, with valid admin
credentials: no 5xx, every status code declared (no catch-all ``default`` response), every body
matching its documented schema and media type, and schema-valid input accepted
(``positive_data_acceptance``: a 422 to what the schema allows means the server checks more than
its schema says; :data:`ALSO_REFUSED` names the few operations that may, and why).

Bounded for CI: a fixed number of examples per operation (``MAX_EXAMPLES``) in schemathesis'
deterministic mode, one worker. The fuzzer re-uses identifiers it reads from responses, so
a few operations would destroy the fuzzer's own credentials half-way through and leave every
later operation answering 401/403/429 (still "conformant", but no longer tested). Those are
fuzzed too, each in a run of its own after the main one, with a fresh credential:

* ``DELETE /v1/keys/{key_id}``: revokes the fuzzing key once its id is read from ``GET /v1/keys``;
* ``POST /v1/keys/{key_id}/rotate``: with ``grace_s: 0`` ends the fuzzing key at once;
* ``POST /v1/access-rules``: a generated deny rule (``permissions: ["*"]``) shuts the fuzzer out;
* ``PATCH /v1/tenant``: generated quotas and rate limits turn later operations into 429s;
* ``POST /v1/auth/logout`` with a signed-in user: ends the fuzzing session.

The server runs the example rules, and one object of each kind (an alert grouped into an
incident, a channel, a route, an escalation policy, a custom role, an access rule...) exists before
the fuzzing starts, so the fuzzer finds real ids in the list answers and reaches past the 404s.
The main run authenticates with a service API key (no owning user), so disabling, locking or
re-roling users (which the fuzzer does, with real ids) cannot end it. The routes only a signed-in
user may call (password change, MFA enrolment) are fuzzed first with an admin's access token;
login and refresh are left to the main run there, since failed logins lock the account out.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.alerts.server import wait_for
from tests.ingest.conftest import EXAMPLE_RULES
from tests.pipeline.conftest import ENCODED_PS_RULE, MALICIOUS
from tests.support.identity import DEFAULT_PASSWORD, Credentials, bootstrap, create_key
from tests.support.server import VigilServer, run_vigil

ST = str(Path(sys.executable).with_name("st"))
MAX_EXAMPLES = 10
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)
ISOLATED = (
    "DELETE /v1/keys/{key_id}",
    "POST /v1/keys/{key_id}/rotate",
    "POST /v1/access-rules",
    "PATCH /v1/tenant",
)
LOGOUT = "POST /v1/auth/logout"
# What schema-valid input may still get: a credential or object that does not exist (the
# fuzzer makes up ids), a name already taken or a state that forbids the change. Not a 422.
ACCEPTED = ("2xx", "401", "403", "404", "409")
# The operations that may also answer 422 (or 429) to schema-valid input, each for a reason a
# JSON schema cannot state: a rule across fields, a reference to an object that does not exist,
# a server-issued token, the state of the log. Anything else that refuses schema-valid input
# fails the run; the fix is a schema that states the real constraint.
ALSO_REFUSED: dict[str, tuple[tuple[str, ...], str]] = {
    "GET /v1/usage": (("422",), "start before end, at most 400 days apart"),
    "GET /v1/audit/consistency": (("422",), "old_size beyond the log's size"),
    "GET /v1/incidents": (("422",), "a cursor the server did not issue"),
    "GET /v1/notifications/deliveries": (("422",), "a cursor the server did not issue"),
    "GET /v1/notifications/dead-letters": (("422",), "a cursor the server did not issue"),
    "POST /v1/incidents": (("422",), "a severity unless alerts are given; unknown alert ids"),
    "POST /v1/incidents/{incident_id}/alerts": (("422",), "unknown alert ids"),
    "POST /v1/keys": (("422",), "unknown role names"),
    "POST /v1/users": (("422",), "unknown role names"),
    "PATCH /v1/users/{user_id}": (("422",), "unknown role names"),
    "POST /v1/escalation-policies": (("422",), "levels in increasing after_minutes order"),
    "PATCH /v1/escalation-policies/{policy_id}": (("422",), "levels in increasing order"),
    "POST /v1/access-rules": (("422",), "CIDR networks without host bits (format only)"),
    "PATCH /v1/tenant": (("429",), "a generated rate limit applies at once"),
    # schemathesis 4.32 wraps a generated body in a `body` property here (additionalProperties
    # is false in the schema); seen in the positive phase only, not reproduced by hand.
    "PATCH /v1/incidents/{incident_id}": (("422",), "schemathesis adds a `body` property"),
    "POST /v1/notifications/routes": (("422",), "unknown channel ids"),
    "POST /v1/auth/login": (("429",), "failed sign-ins lock the account out for a while"),
    # Schemas outside tests/api's owner (reported): an empty batch or only invalid records; a
    # webhook URL must be http(s), a signing secret printable without surrounding spaces.
    "POST /v1/events": (("422",), "no records, or none valid"),
    "POST /v1/notifications/channels": (("422",), "webhook URL scheme"),
    "POST /v1/notifications/channels/{channel_id}/rotate-secret": (
        ("422",),
        "signing secret characters",
    ),
}


def _acceptance_config() -> str:
    lines = ["[checks.positive_data_acceptance]", f"expected-statuses = {list(ACCEPTED)!r}"]
    for name, (statuses, _why) in ALSO_REFUSED.items():
        expected = [*ACCEPTED, *statuses]
        lines += [
            "",
            "[[operations]]",
            f"include-name = {name!r}",
            f"checks.positive_data_acceptance.expected-statuses = {expected!r}",
        ]
    return "\n".join(lines).replace("'", '"') + "\n"


# Signed-in users only; fuzzed with an access token. Login/refresh stay in the main run.
SESSION_PATHS = r"^/v1/auth/(me|password|mfa/.*)$"
SESSION_USER = "fuzz-session@acme.test"


@dataclass(frozen=True)
class Fuzzing:
    server: VigilServer
    creds: Credentials
    operations: frozenset[str]
    session_token: str
    """An admin's access token for the signed-in-user routes."""
    logout_token: str
    """Another session of the same admin, for logout (signed in before any fuzzed login can
    lock the account or the loopback address out)."""


def _created(r: httpx.Response) -> None:
    assert r.status_code in (200, 201), r.text


def _seed(server: VigilServer, key: str) -> None:
    """One object of each kind, for the fuzzer to find in the list answers."""
    with server.client(key) as http:
        r = http.post("/v1/events", content=MALICIOUS, headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text
        # A high alert: grouped into an incident at once.
        wait_for(
            lambda: http.get("/v1/alerts", params={"rule_id": ENCODED_PS_RULE}).json()["items"]
        )
        _created(http.post("/v1/incidents", json={"title": "seeded", "severity": "low"}))
        hook = {"type": "webhook", "name": "seeded", "config": {"url": "https://hook.example/x"}}
        r = http.post("/v1/notifications/channels", json=hook)
        _created(r)
        route = {"name": "seeded", "channel_ids": [r.json()["id"]]}
        _created(http.post("/v1/notifications/routes", json=route))
        levels = [{"after_minutes": 600, "channels": [r.json()["id"]]}]
        policy = {"name": "seeded", "severity": "critical", "levels": levels}
        _created(http.post("/v1/escalation-policies", json=policy))
        role = {"name": "seeded", "permissions": ["alerts:read"], "description": "seeded"}
        _created(http.post("/v1/roles", json=role))
        rule = {
            "name": "seeded",
            "effect": "allow",
            "permissions": ["rules:read"],
            "conditions": {"subject": {"roles": ["ingest"]}},
        }
        _created(http.post("/v1/access-rules", json=rule))


def _login(server: VigilServer, creds: Credentials, email: str) -> str:
    login = {"tenant": creds.tenant_name, "email": email, "password": DEFAULT_PASSWORD}
    with server.client() as http:
        r = http.post("/v1/auth/login", json=login)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    home = tmp_path_factory.mktemp("fuzz-all")
    creds = bootstrap(home)
    env = {
        "VIGIL_IDENTITY__RATE_LIMIT_REQUESTS": "1000000",
        # The session tokens are made up front and must outlive every run.
        "VIGIL_IDENTITY__ACCESS_TOKEN_TTL_S": "3600",
    }
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)], env=env).start()
    try:
        _seed(server, creds.admin_key)
        spec = httpx.get(server.url + "/openapi.json", timeout=30).json()
        operations = frozenset(
            f"{method.upper()} {path}"
            for path, item in spec["paths"].items()
            for method in item
            if method in {"get", "post", "put", "patch", "delete"}
        )
        args = ["users", "create", "--tenant", creds.tenant_name, "--email", SESSION_USER]
        run_vigil(
            [*args, "--role", "admin", "--password-stdin"],
            home=home,
            input=DEFAULT_PASSWORD + "\n",
        )
        tokens = [_login(server, creds, SESSION_USER) for _ in range(2)]
        yield Fuzzing(server, creds, operations, *tokens)
    finally:
        server.stop()


def _st(
    server: VigilServer,
    token: str,
    filters: Sequence[str],
    *,
    checks: str = CHECKS,
    options: Sequence[str] = ("--phases", "examples,coverage,fuzzing"),
    config: Path | None = None,
) -> str:
    """Run schemathesis; fail with its report (and the server's log) unless it passed."""
    proc = subprocess.run(
        [
            ST,
            *(["--config-file", str(config)] if config else []),
            "run",
            server.url + "/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            checks,
            *filters,
            "--max-examples",
            str(MAX_EXAMPLES),
            *options,
            "--generation-deterministic",  # implies no example database
            # One worker: hypothesis' lambda introspection is not thread-safe on CPython 3.11.
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    # Every failure, from schemathesis' FAILURES section on (its head is only the progress).
    start = max(proc.stdout.find("= FAILURES ="), 0)
    assert proc.returncode == 0, (
        proc.stdout[start:][:60000] + proc.stderr[-3000:] + server.log()[-3000:]
    )
    return proc.stdout


def _selected(output: str) -> int:
    match = re.search(r"Selected:\s+(\d+)/(\d+)", output)
    assert match, output[-3000:]
    return int(match.group(1))


def test_isolated_operations_exist(fuzzing: Fuzzing) -> None:
    """The exclusions name real operations (a renamed route must not escape the fuzzing)."""
    missing = sorted(set((*ISOLATED, LOGOUT, *ALSO_REFUSED)) - fuzzing.operations)
    assert not missing, f"no such operations in /openapi.json: {missing}"


def test_user_session_routes_hold_their_schema(fuzzing: Fuzzing) -> None:
    output = _st(fuzzing.server, fuzzing.session_token, ["--include-path-regex", SESSION_PATHS])
    assert _selected(output) >= 5


def test_every_other_operation_holds_its_schema(fuzzing: Fuzzing) -> None:
    key = create_key(fuzzing.server.home, fuzzing.creds.tenant_name, "admin", name="fuzzer")
    excluded: list[str] = []
    for name in ISOLATED:
        excluded += ["--exclude-name", name]
    output = _st(fuzzing.server, key, excluded)
    assert _selected(output) == len(fuzzing.operations) - len(ISOLATED)


def test_schema_valid_input_is_accepted(fuzzing: Fuzzing) -> None:
    """Positive data only (what the published schema allows) must not be refused as invalid:
    a 422 here means the server validates more strictly than its schema says."""
    key = create_key(fuzzing.server.home, fuzzing.creds.tenant_name, "admin", name="acceptance")
    config = fuzzing.server.home / "acceptance.toml"
    config.write_text(_acceptance_config())
    excluded: list[str] = []
    for name in ISOLATED:
        excluded += ["--exclude-name", name]
    output = _st(
        fuzzing.server,
        key,
        excluded,
        checks="positive_data_acceptance",
        options=("--phases", "examples,fuzzing", "--mode", "positive"),
        config=config,
    )
    assert _selected(output) == len(fuzzing.operations) - len(ISOLATED)


@pytest.mark.parametrize("operation", ISOLATED)
def test_isolated_operation_holds_its_schema(fuzzing: Fuzzing, operation: str) -> None:
    key = create_key(fuzzing.server.home, fuzzing.creds.tenant_name, "admin", name="fuzzer")
    config = fuzzing.server.home / "acceptance.toml"
    config.write_text(_acceptance_config())
    checks = CHECKS + ",positive_data_acceptance"  # only checks the schema-valid cases
    output = _st(fuzzing.server, key, ["--include-name", operation], checks=checks, config=config)
    assert _selected(output) == 1


def test_logout_holds_its_schema(fuzzing: Fuzzing) -> None:
    """Last: it ends the session it runs with."""
    output = _st(fuzzing.server, fuzzing.logout_token, ["--include-name", LOGOUT])
    assert _selected(output) == 1
