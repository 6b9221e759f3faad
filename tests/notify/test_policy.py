"""Pure policies: routing matrix, backoff with full jitter, circuit breaker, network guard."""

from __future__ import annotations

import random
import socket
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.events.envelope import SecurityEvent, Severity, vigil_event
from vigil.notify.channels.netguard import AddressPolicy, BlockedDestinationError
from vigil.notify.channels.registry import literal_refusal
from vigil.notify.circuit import Circuit, CircuitPolicy, RetryPolicy
from vigil.notify.models import CircuitState, DeliveryKind
from vigil.notify.routing import RouteRule, event_tags, select_targets

SEVERITIES = list(Severity)


def _event(
    severity: Severity = Severity.HIGH,
    event_type: str = "threat_detected",
    tags: list[str] | None = None,
    **details: object,
) -> SecurityEvent:
    d: dict[str, object] = {"title": "t", **details}
    if tags is not None:
        d["tags"] = tags
    return vigil_event(tenant_id="t1", event_type=event_type, severity=severity, details=d)


def _ids(event, rules, usable=("a", "b", "c", "d")) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        t.channel_id for t in select_targets(event, rules, usable_channels=dict.fromkeys(usable))
    ]


# --- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize("minimum", SEVERITIES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_min_severity_matrix(minimum: Severity, severity: Severity) -> None:
    rule = RouteRule(id="r", channel_ids=("c",), min_severity=minimum)
    targets = select_targets(_event(severity), [rule], usable_channels={"c": "webhook"})
    assert bool(targets) == (severity.rank >= minimum.rank)


@pytest.mark.parametrize(
    ("rule_tags", "event_tag_list", "matches"),
    [
        (set(), None, True),
        (set(), ["x"], True),
        ({"attack.t1003"}, ["attack.t1003"], True),
        ({"attack.t1003"}, ["ATTACK.T1003 "], True),
        ({"attack.t1003", "attack.t1059"}, ["attack.t1059", "other"], True),
        ({"attack.t1003"}, ["attack.t1059"], False),
        ({"attack.t1003"}, None, False),
        ({"attack.t1003"}, [], False),
    ],
)
def test_tags_any_of_matrix(
    rule_tags: set[str], event_tag_list: list[str] | None, matches: bool
) -> None:
    rule = RouteRule(id="r", channel_ids=("c",), tags=frozenset(rule_tags))
    event = _event(tags=event_tag_list)
    assert bool(select_targets(event, [rule], usable_channels={"c": 1})) == matches


def test_non_string_tags_are_ignored() -> None:
    event = _event(tags=["a", 3, None, {"x": 1}, "  "])  # type: ignore[list-item]
    assert event_tags(event) == frozenset({"a"})
    not_a_list = vigil_event(
        tenant_id="t1", event_type="x", severity=Severity.LOW, details={"tags": "a,b"}
    )
    assert event_tags(not_a_list) == frozenset()


@pytest.mark.parametrize(
    ("types", "event_type", "matches"),
    [
        (set(), "alert_updated", True),
        ({"threat_detected"}, "threat_detected", True),
        ({"threat_detected", "incident_opened"}, "incident_opened", True),
        ({"threat_detected"}, "alert_updated", False),
    ],
)
def test_event_type_matrix(types: set[str], event_type: str, matches: bool) -> None:
    rule = RouteRule(id="r", channel_ids=("c",), event_types=frozenset(types))
    assert (
        bool(select_targets(_event(event_type=event_type), [rule], usable_channels={"c": 1}))
        == matches
    )


def test_all_conditions_must_hold() -> None:
    rule = RouteRule(
        id="r",
        channel_ids=("c",),
        min_severity=Severity.HIGH,
        tags=frozenset({"attack.t1003"}),
        event_types=frozenset({"threat_detected"}),
    )
    usable = {"c": 1}
    assert select_targets(
        _event(Severity.CRITICAL, tags=["attack.t1003"]), [rule], usable_channels=usable
    )
    assert not select_targets(
        _event(Severity.MEDIUM, tags=["attack.t1003"]), [rule], usable_channels=usable
    )
    assert not select_targets(_event(Severity.HIGH, tags=["x"]), [rule], usable_channels=usable)
    assert not select_targets(
        _event(Severity.HIGH, "alert_updated", tags=["attack.t1003"]),
        [rule],
        usable_channels=usable,
    )


def test_union_once_per_channel_and_unusable_channels_skipped() -> None:
    rules = [
        RouteRule(id="r1", channel_ids=("a", "b")),
        RouteRule(id="r2", channel_ids=("b", "c", "gone")),
        RouteRule(id="r3", channel_ids=("d",), min_severity=Severity.CRITICAL),
    ]
    targets = select_targets(
        _event(Severity.HIGH), rules, usable_channels={"a": 1, "b": 1, "c": 1, "d": 1}
    )
    assert [t.channel_id for t in targets] == ["a", "b", "c"]
    assert {t.channel_id: t.route_ids for t in targets}["b"] == ("r1", "r2")
    assert all(t.kind is DeliveryKind.ROUTE for t in targets)


def test_escalation_names_channels_and_ignores_rules() -> None:
    rules = [RouteRule(id="r", channel_ids=("a",))]
    event = _event(event_type="escalation", channels=["b", "b", "x", 7])
    targets = select_targets(event, rules, usable_channels={"a": 1, "b": 1})
    assert [(t.channel_id, t.kind) for t in targets] == [("b", DeliveryKind.ESCALATION)]
    empty = _event(event_type="escalation", channels=[])
    assert select_targets(empty, rules, usable_channels={"a": 1}) == []
    # Only escalation events are targeted this way.
    other = _event(event_type="threat_detected", channels=["b"])
    assert [
        t.channel_id for t in select_targets(other, rules, usable_channels={"a": 1, "b": 1})
    ] == ["a"]


# --- backoff --------------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=2, cap_s=60, max_attempts=10)
    assert [policy.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000) == 60


@given(attempt=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_full_jitter_stays_within_zero_and_the_ceiling(attempt: int, seed: int) -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=300, max_attempts=10)
    delay = policy.delay(attempt, random.Random(seed))
    assert 0 <= delay <= policy.ceiling(attempt)


def test_jitter_spreads_delays() -> None:
    policy = RetryPolicy(base_s=1, cap_s=1000, max_attempts=10)
    rng = random.Random(1)
    delays = [policy.delay(6, rng) for _ in range(200)]
    assert min(delays) < 8 and max(delays) > 24  # spread over [0, 32]


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    policy = RetryPolicy(base_s=1, cap_s=10, max_attempts=5, retry_after_max_s=600)
    rng = random.Random(3)
    assert policy.delay(1, rng, retry_after_s=120) == 120
    assert policy.delay(1, rng, retry_after_s=10_000) == 600
    assert policy.delay(1, rng, retry_after_s=0) <= 1


def test_exhausted_after_max_attempts() -> None:
    policy = RetryPolicy(base_s=1, cap_s=10, max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


# --- circuit --------------------------------------------------------------------------------------

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_circuit_opens_after_threshold_and_probes_after_cooldown() -> None:
    policy = CircuitPolicy(threshold=3, cooldown_s=60)
    c = Circuit(CircuitState.CLOSED)
    c = c.failed(T0, policy).failed(T0, policy)
    assert c.state is CircuitState.CLOSED and c.failures == 2 and c.allows_send(T0)
    c = c.failed(T0, policy)
    assert c.state is CircuitState.OPEN and c.opened_at == T0
    assert c.retry_at == T0 + timedelta(seconds=60)
    assert not c.allows_send(T0 + timedelta(seconds=59))
    assert c.allows_send(T0 + timedelta(seconds=60))
    probe = c.probing(T0 + timedelta(seconds=60), probe_lease_s=30)
    assert probe.state is CircuitState.HALF_OPEN
    assert not probe.allows_send(T0 + timedelta(seconds=61))  # one probe at a time
    assert probe.allows_send(T0 + timedelta(seconds=90))  # a dead probe is retried
    reopened = probe.failed(T0 + timedelta(seconds=61), policy)
    assert reopened.state is CircuitState.OPEN and reopened.opened_at == T0
    assert reopened.retry_at == T0 + timedelta(seconds=121)
    assert probe.succeeded() == Circuit(CircuitState.CLOSED)


def test_success_resets_the_failure_count() -> None:
    policy = CircuitPolicy(threshold=3, cooldown_s=60)
    c = Circuit(CircuitState.CLOSED).failed(T0, policy).failed(T0, policy).succeeded()
    assert c.failed(T0, policy).state is CircuitState.CLOSED


# --- network guard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "169.254.170.2",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
@pytest.mark.parametrize("allow_private", [True, False])
def test_metadata_and_non_unicast_addresses_are_always_refused(
    address: str, allow_private: bool
) -> None:
    policy = AddressPolicy(allow_private=allow_private)
    assert policy.refusal(address) is not None
    with pytest.raises(BlockedDestinationError):
        policy.resolve(address, 80)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.5", "::1", "100.64.0.1"])
def test_private_addresses_follow_the_setting(address: str) -> None:
    assert AddressPolicy(allow_private=True).refusal(address) is None
    assert "not a public address" in (AddressPolicy(allow_private=False).refusal(address) or "")


def test_public_addresses_are_allowed_unless_blocked() -> None:
    assert AddressPolicy(allow_private=False).refusal("93.184.216.34") is None
    blocked = AddressPolicy(blocked=["93.184.216.0/24", "2001:db8::/32"])
    assert "blocked network" in (blocked.refusal("93.184.216.34") or "")
    assert "blocked network" in (blocked.refusal("2001:db8::1") or "")


def test_names_are_checked_on_what_they_resolve_to() -> None:
    assert AddressPolicy(allow_private=True).resolve("localhost", 80)
    with pytest.raises(BlockedDestinationError):
        AddressPolicy(allow_private=False).resolve("localhost", 80)
    with pytest.raises(OSError):
        AddressPolicy().resolve("no-such-host.invalid", 80)


def test_literal_metadata_urls_are_refused_when_saved() -> None:
    assert literal_refusal("http://169.254.169.254/latest/meta-data/")
    assert literal_refusal("http://[fd00:ec2::254]/")
    assert literal_refusal("https://hooks.example.com/x") is None
    assert literal_refusal("http://10.0.0.5:8080/hook") is None
    assert literal_refusal("169.254.169.254")


def test_getaddrinfo_is_available() -> None:
    # The guard relies on the system resolver; loopback must resolve in CI too.
    assert socket.getaddrinfo("localhost", 80)
