"""Compilation of correlation rules: types, conditions, aliases, generate and errors."""

from __future__ import annotations

import pytest
from sigma.collection import SigmaCollection

from tests.detect.correlate.helpers import base_rule, compiled_of, load
from vigil.detect.correlate import (
    CorrelationError,
    CorrelationKind,
    Op,
    RuleRef,
    referenced_base_rules,
    suppressed_base_rules,
)

FAILED_ID = "5638f7c0-ac70-491d-8465-2a65075e0d86"
FAILED = base_rule("failed_login", FAILED_ID, "Failed login")

EVENT_COUNT = f"""
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
level: high
tags: [attack.credential-access, attack.t1110]
correlation:
    type: event_count
    rules:
        - {FAILED_ID}
    group-by:
        - ComputerName
    timespan: 1h
    condition:
        gte: 100
"""


def test_event_count_spec_example() -> None:
    (corr,) = compiled_of(load(FAILED, EVENT_COUNT))
    assert corr.kind is CorrelationKind.EVENT_COUNT
    assert corr.info.id == "0e95725d-7320-415d-80f7-004da920fc11"
    assert corr.info.level == "high"
    assert corr.info.tags == ("attack.credential-access", "attack.t1110")
    assert corr.rules == (RuleRef(FAILED_ID, "failed_login", "Failed login"),)
    assert corr.group_by == ("ComputerName",)
    assert corr.timespan == 3600
    assert corr.condition.terms == ((Op.GTE, 100.0),)
    assert corr.crossing
    assert not corr.generate


@pytest.mark.parametrize(
    ("kind", "condition", "crossing", "percentile"),
    [
        ("value_count", "{field: User, gte: 100}", True, None),
        ("value_sum", "{field: bytes_sent, gt: 1000000}", True, None),
        ("value_avg", "{field: BytesOut, gt: 500}", False, None),
        ("value_percentile", "{field: duration, percentile: 95, gt: 10}", False, 95.0),
        ("value_median", "{field: duration, gt: 10}", False, 50.0),
        ("event_count", "{lt: 5}", False, None),
        ("event_count", "{eq: 5}", False, None),
        ("event_count", "{neq: 5}", False, None),
        ("value_sum", "{field: bytes_sent, lte: 5}", False, None),
    ],
)
def test_types_and_evaluation_mode(
    kind: str, condition: str, crossing: bool, percentile: float | None
) -> None:
    doc = f"""
title: T
correlation: {{type: {kind}, rules: [failed_login], group-by: [User], timespan: 1d,
               condition: {condition}}}
"""
    (corr,) = compiled_of(load(FAILED, doc))
    assert corr.kind.value == kind
    assert corr.crossing is crossing
    assert corr.percentile == percentile
    assert corr.timespan == 86400


def test_temporal_default_condition_is_all_rules() -> None:
    doc = """
title: Recon
correlation:
    type: temporal
    rules: [recon_cmd_a, recon_cmd_b, recon_cmd_c]
    group-by: [ComputerName, User]
    timespan: 5m
"""
    collection = load(
        base_rule("recon_cmd_a"), base_rule("recon_cmd_b"), base_rule("recon_cmd_c"), doc
    )
    (corr,) = compiled_of(collection)
    assert corr.condition.terms == ((Op.GTE, 3.0),)
    assert corr.timespan == 300
    assert [r.name for r in corr.rules] == ["recon_cmd_a", "recon_cmd_b", "recon_cmd_c"]


def test_range_condition_is_kept() -> None:
    doc = """
title: Between 101 and 200
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 1h
    condition:
        gt: 100
        lte: 200
"""
    (corr,) = compiled_of(load(FAILED, doc))
    assert corr.condition.terms == ((Op.GT, 100.0), (Op.LTE, 200.0))
    assert not corr.crossing
    assert corr.condition.test(150) and not corr.condition.test(100)
    assert not corr.condition.test(201) and corr.condition.test(200)


def test_aliases_resolve_per_rule() -> None:
    internal = """
title: internal error
name: internal_error
logsource: {category: webserver}
detection: {selection: {http.response.status_code: 500}, condition: selection}
"""
    conn = """
title: new connection
name: new_network_connection
logsource: {category: network_connection}
detection: {selection: {event.category: network}, condition: selection}
"""
    corr_doc = """
title: alias example
correlation:
    type: temporal
    rules: [internal_error, new_network_connection]
    group-by: [internal_ip, remote_ip]
    timespan: 10s
    aliases:
        internal_ip:
            internal_error: destination.ip
            new_network_connection: source.ip
        remote_ip:
            internal_error: source.ip
            new_network_connection: destination.ip
"""
    (corr,) = compiled_of(load(internal, conn, corr_doc))
    assert corr.group_fields == (
        ("destination.ip", "source.ip"),
        ("source.ip", "destination.ip"),
    )


def test_chain_compiles_inner_first_even_if_not_listed() -> None:
    inner = """
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation: {type: event_count, rules: [failed_login], group-by: [User], timespan: 10m,
              condition: {gte: 10}}
"""
    outer = """
title: Failed then success
correlation: {type: temporal_ordered, rules: [multiple_failed_login, successful_login],
              group-by: [User], timespan: 10m}
"""
    collection = load(FAILED, base_rule("successful_login"), inner, outer)
    from vigil.detect.correlate import compile_correlations

    outer_rule = (
        collection.rules[-1] if collection.rules[-1].title == "Failed then success" else None
    )
    assert outer_rule is not None
    compiled = compile_correlations([outer_rule])  # type: ignore[list-item]
    assert [c.info.title for c in compiled] == ["Multiple failed logons", "Failed then success"]
    assert compiled[1].rule_is_correlation == (True, False)


def test_generate_and_suppression() -> None:
    quiet = """
title: quiet
correlation: {type: event_count, rules: [failed_login], group-by: [User], timespan: 1h,
              condition: {gte: 2}}
"""
    loud = """
title: loud
correlation: {type: event_count, rules: [successful_login], group-by: [User], timespan: 1h,
              generate: true, condition: {gte: 2}}
"""
    compiled = compiled_of(load(FAILED, base_rule("successful_login"), quiet, loud))
    assert suppressed_base_rules(compiled) == {FAILED_ID, "failed_login"}
    refs = referenced_base_rules(compiled)
    assert {ref.name: gen for ref, gen in refs.items()} == {
        "failed_login": False,
        "successful_login": True,
    }


def test_generate_true_on_any_referencing_correlation_wins() -> None:
    a = """
title: a
correlation: {type: event_count, rules: [failed_login], group-by: [User], timespan: 1h,
              condition: {gte: 2}}
"""
    b = """
title: b
correlation: {type: event_count, rules: [failed_login], group-by: [User], timespan: 1h,
              generate: true, condition: {gte: 5}}
"""
    assert suppressed_base_rules(compiled_of(load(FAILED, a, b))) == set()


@pytest.mark.parametrize(
    ("correlation", "message"),
    [
        (
            "{type: value_percentile, rules: [failed_login], group-by: [U], timespan: 1h,"
            " condition: {field: x, lte: 1}}",
            "requires 'percentile'",
        ),
        (
            "{type: event_count, rules: [failed_login], group-by: [U], timespan: 1w,"
            " condition: {gte: 1}}",
            "timespan '1w'",
        ),
        (
            "{type: temporal, rules: [failed_login, other], group-by: [U], timespan: 1h,"
            " condition: {gte: 3}}",
            "exceeds the 2 correlated rules",
        ),
        (
            "{type: temporal, rules: [failed_login, other], group-by: [U], timespan: 1h,"
            " condition: 'failed_login and other'}",
            "extended",
        ),
        (
            "{type: value_sum, rules: [failed_login], group-by: [U], timespan: 1h,"
            " condition: {field: [a, b], gt: 1}}",
            "exactly one numeric field",
        ),
        (
            "{type: event_count, rules: [failed_login], group-by: [U], timespan: 1h,"
            " condition: {field: a, gt: 1}}",
            "does not take a 'field'",
        ),
    ],
)
def test_invalid_rules_name_the_rule(correlation: str, message: str) -> None:
    rule_id = "11111111-2222-4333-8444-555555555555"
    doc = f"title: Broken rule\nid: {rule_id}\ncorrelation: {correlation}\n"
    with pytest.raises(CorrelationError) as raised:
        compiled_of(load(FAILED, base_rule("other"), doc))
    text = str(raised.value)
    assert message in text
    assert "11111111-2222-4333-8444-555555555555" in text and "Broken rule" in text


def test_unresolved_references_are_reported() -> None:
    collection = SigmaCollection.from_yaml(
        "title: lonely\ncorrelation: {type: event_count, rules: [missing], group-by: [U],"
        " timespan: 1h, condition: {gte: 1}}\n",
        resolve_references=False,
    )
    with pytest.raises(CorrelationError, match="not resolved"):
        compiled_of(collection)


def test_reference_cycle_is_rejected() -> None:
    a = """
title: A
name: corr_a
correlation: {type: event_count, rules: [corr_b], group-by: [U], timespan: 1h, condition: {gte: 1}}
"""
    b = """
title: B
name: corr_b
correlation: {type: event_count, rules: [corr_a], group-by: [U], timespan: 1h, condition: {gte: 1}}
"""
    with pytest.raises(CorrelationError, match="cycle"):
        compiled_of(load(a, b))
