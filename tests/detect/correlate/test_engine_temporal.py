"""temporal, temporal_ordered, aliases, chaining and generate."""

from __future__ import annotations

from tests.detect.correlate.helpers import at, base_rule, engine_of, ev, ref, run
from vigil.detect.correlate import suppressed_base_rules

RECON = [base_rule("recon_cmd_a"), base_rule("recon_cmd_b"), base_rule("recon_cmd_c")]


def temporal(kind: str, condition: str = "") -> str:
    return f"""
title: Recon
correlation:
    type: {kind}
    rules:
        - recon_cmd_a
        - recon_cmd_b
        - recon_cmd_c
    group-by:
        - ComputerName
        - User
    timespan: 5m
{condition}
"""


def test_temporal_all_rules_in_any_order() -> None:
    engine, rules = engine_of(*RECON, temporal("temporal"))
    a, b, c = (ref(rules, n) for n in ("recon_cmd_a", "recon_cmd_b", "recon_cmd_c"))
    who = {"ComputerName": "PC1", "User": "eve"}
    hits = run(engine, [(c, ev(0, **who)), (a, ev(10, **who)), (b, ev(20, **who))])
    assert len(hits) == 1
    assert hits[0].value == 3
    assert hits[0].group == who
    assert [x.rule for x in hits[0].events] == [c, a, b]


def test_temporal_benign_missing_rule_repeated_rule_or_other_user() -> None:
    engine, rules = engine_of(*RECON, temporal("temporal"))
    a, b, c = (ref(rules, n) for n in ("recon_cmd_a", "recon_cmd_b", "recon_cmd_c"))
    who = {"ComputerName": "PC1", "User": "eve"}
    stream = [(a, ev(0, **who)), (a, ev(1, **who)), (b, ev(2, **who)), (b, ev(3, **who))]
    stream.append((c, ev(4, ComputerName="PC1", User="mallory")))
    assert run(engine, stream) == []


def test_temporal_window_edges() -> None:
    who = {"ComputerName": "PC1", "User": "eve"}
    for last, expected in ((300, 1), (301, 0)):
        engine, rules = engine_of(*RECON, temporal("temporal"))
        a, b, c = (ref(rules, n) for n in ("recon_cmd_a", "recon_cmd_b", "recon_cmd_c"))
        hits = run(engine, [(a, ev(0, **who)), (b, ev(100, **who)), (c, ev(last, **who))])
        assert len(hits) == expected, last


def test_temporal_explicit_condition_two_of_three() -> None:
    engine, rules = engine_of(*RECON, temporal("temporal", "    condition: {gte: 2}"))
    a, b = ref(rules, "recon_cmd_a"), ref(rules, "recon_cmd_b")
    who = {"ComputerName": "PC1", "User": "eve"}
    hits = run(engine, [(a, ev(0, **who)), (b, ev(1, **who))])
    assert [h.value for h in hits] == [2]


def test_temporal_ordered_requires_rule_order() -> None:
    who = {"ComputerName": "PC1", "User": "eve"}
    engine, rules = engine_of(*RECON, temporal("temporal_ordered"))
    a, b, c = (ref(rules, n) for n in ("recon_cmd_a", "recon_cmd_b", "recon_cmd_c"))
    assert run(engine, [(c, ev(0, **who)), (a, ev(10, **who)), (b, ev(20, **who))]) == []

    engine, rules = engine_of(*RECON, temporal("temporal_ordered"))
    hits = run(engine, [(a, ev(0, **who)), (b, ev(10, **who)), (c, ev(20, **who))])
    assert [h.value for h in hits] == [3]

    # Noise in between does not break the order a < b < c.
    engine, rules = engine_of(*RECON, temporal("temporal_ordered"))
    stream = [(b, ev(0, **who)), (a, ev(5, **who)), (c, ev(6, **who)), (b, ev(7, **who))]
    stream.append((c, ev(8, **who)))
    hits = run(engine, stream)
    assert len(hits) == 1 and hits[0].window_end == at(8)


def test_temporal_ordered_uses_event_time_not_arrival_order() -> None:
    who = {"ComputerName": "PC1", "User": "eve"}
    engine, rules = engine_of(*RECON, temporal("temporal_ordered"))
    a, b, c = (ref(rules, n) for n in ("recon_cmd_a", "recon_cmd_b", "recon_cmd_c"))
    # Arrives c, b, a but happened a (t=0), b (t=10), c (t=20).
    hits = run(engine, [(c, ev(20, **who)), (b, ev(10, **who)), (a, ev(0, **who))])
    assert len(hits) == 1
    # Arrives a, b, c but happened c, b, a: not ordered.
    engine, rules = engine_of(*RECON, temporal("temporal_ordered"))
    assert run(engine, [(a, ev(20, **who)), (b, ev(10, **who)), (c, ev(0, **who))]) == []


INTERNAL = """
title: internal error
name: internal_error
logsource: {category: webserver}
detection: {selection: {http.response.status_code: 500}, condition: selection}
"""
CONNECTION = """
title: new connection
name: new_network_connection
logsource: {category: network_connection}
detection: {selection: {event.category: network}, condition: selection}
"""
ALIASED = """
title: Error followed by connection
id: 9c1f0a3e-9d65-4a53-9a55-0c1a7f2f7a10
correlation:
    type: temporal
    rules:
        - internal_error
        - new_network_connection
    group-by:
        - internal_ip
        - remote_ip
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
"""


def test_aliases_join_different_fields() -> None:
    engine, rules = engine_of(INTERNAL, CONNECTION, ALIASED)
    err, conn = ref(rules, "internal_error"), ref(rules, "new_network_connection")
    stream = [
        (err, ev(0, **{"destination.ip": "10.0.0.5", "source.ip": "203.0.113.9"})),
        (conn, ev(4, **{"source.ip": "10.0.0.5", "destination.ip": "203.0.113.9"})),
    ]
    hits = run(engine, stream)
    assert len(hits) == 1
    assert hits[0].group == {"internal_ip": "10.0.0.5", "remote_ip": "203.0.113.9"}


def test_aliases_benign_same_field_names_do_not_join() -> None:
    engine, rules = engine_of(INTERNAL, CONNECTION, ALIASED)
    err, conn = ref(rules, "internal_error"), ref(rules, "new_network_connection")
    # The connection goes the other way round: source/destination do not line up.
    stream = [
        (err, ev(0, **{"destination.ip": "10.0.0.5", "source.ip": "203.0.113.9"})),
        (conn, ev(4, **{"destination.ip": "10.0.0.5", "source.ip": "203.0.113.9"})),
    ]
    assert run(engine, stream) == []


BRUTE_FORCE = """
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
falsepositives:
    - Unlikely
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 10
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 529
            - 4625
    condition: selection
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID:
            - 528
            - 4624
    condition: selection
"""


def test_chained_spec_example_fires_outer_only() -> None:
    engine, rules = engine_of(BRUTE_FORCE)
    failed, success = ref(rules, "failed_login"), ref(rules, "successful_login")
    stream = [(failed, ev(i * 10, i, User="bob", EventID=4625)) for i in range(10)]
    stream.append((success, ev(200, 99, User="bob", EventID=4624)))
    hits = run(engine, stream)
    assert [h.rule.title for h in hits] == [
        "Correlation - Multiple Failed Logins Followed by Successful Login"
    ]
    hit = hits[0]
    assert hit.group == {"User": "bob"} and hit.rule.level == "high"
    # Contributions: the ten failed logins (flattened from the inner hit) and the success.
    assert [c.event.record_id for c in hit.events] == [*range(10), 99]
    assert hit.event_count == 11
    assert {c.rule for c in hit.events} == {failed, success}
    assert hit.window_start == at(90) and hit.window_end == at(200)
    # generate is not set: both base rules (and the inner correlation) are suppressed.
    assert suppressed_base_rules(engine.compiled) == {
        "53ba33fd-3a50-4468-a5ef-c583635cfa92",
        "failed_login",
        "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8",
        "successful_login",
    }


def test_chained_spec_example_benign() -> None:
    # Success before the 10th failure, 9 failures only, or a success of another user.
    engine, rules = engine_of(BRUTE_FORCE)
    failed, success = ref(rules, "failed_login"), ref(rules, "successful_login")
    stream = [(success, ev(0, User="bob"))]
    stream += [(failed, ev(1 + i, User="bob")) for i in range(10)]
    stream += [(failed, ev(i, User="amy")) for i in range(9)] + [(success, ev(20, User="amy"))]
    stream += [(success, ev(30, User="carl"))]
    assert run(engine, stream) == []


def test_chained_success_too_late() -> None:
    engine, rules = engine_of(BRUTE_FORCE)
    failed, success = ref(rules, "failed_login"), ref(rules, "successful_login")
    stream = [(failed, ev(i, User="bob")) for i in range(10)]  # inner fires at t=9
    stream.append((success, ev(9 + 601, User="bob")))
    assert run(engine, stream) == []


def test_generate_true_outputs_inner_correlation_hits() -> None:
    doc = BRUTE_FORCE.replace(
        "    timespan: 10m\nfalsepositives", "    timespan: 10m\n    generate: true\nfalsepositives"
    )
    assert "generate: true" in doc
    engine, rules = engine_of(doc)
    failed, success = ref(rules, "failed_login"), ref(rules, "successful_login")
    stream = [(failed, ev(i, User="bob")) for i in range(10)] + [(success, ev(30, User="bob"))]
    hits = run(engine, stream)
    assert [h.rule.title for h in hits] == [
        "Multiple failed logons",
        "Correlation - Multiple Failed Logins Followed by Successful Login",
    ]
    # The outer's generate makes its direct references (inner correlation, successful_login)
    # stand-alone; failed_login is only referenced by the inner (generate false).
    assert suppressed_base_rules(engine.compiled) == {
        "53ba33fd-3a50-4468-a5ef-c583635cfa92",
        "failed_login",
    }


def test_rule_referenced_by_id_matched_by_name_only_ref() -> None:
    from vigil.detect.correlate import RuleRef

    engine, _ = engine_of(BRUTE_FORCE)
    by_name = RuleRef(None, "failed_login", "Single failed login")
    by_id = RuleRef("53BA33FD-3A50-4468-A5EF-C583635CFA92", None, "Single failed login")
    unrelated = RuleRef("00000000-0000-4000-8000-000000000000", "other", "Other")
    assert engine.wants(by_name) and engine.wants(by_id) and not engine.wants(unrelated)
    assert engine.observe(unrelated, ev(0, User="bob")) == []
    assert "failed_login" in engine.referenced_rule_keys()
