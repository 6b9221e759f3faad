"""Sigma correlation rules (specification v2.1.0) evaluated over a stream of rule matches.

Build with :func:`compile_correlations` from resolved pySigma correlation rules (or load YAML
with :func:`load_collection`, which also accepts range conditions), then feed matches to a
:class:`CorrelationEngine`. Semantics are documented in :mod:`vigil.detect.correlate.engine`.
"""

from vigil.detect.correlate.compiler import (
    RANGE_CONDITION_ATTRIBUTE,
    CompiledCorrelation,
    Condition,
    CorrelationKind,
    Op,
    compile_correlations,
    definition_key,
    load_collection,
    referenced_base_rules,
    rule_keys,
    rule_ref_of,
    suppressed_base_rules,
    suppressed_correlation_refs,
)
from vigil.detect.correlate.engine import (
    DEFAULT_ALLOWED_LATENESS,
    DEFAULT_MAX_EVENTS_PER_GROUP,
    DEFAULT_MAX_GROUPS_PER_RULE,
    DEFAULT_MAX_HIT_EVENTS,
    CorrelationEngine,
    EngineStats,
)
from vigil.detect.correlate.errors import CorrelationError
from vigil.detect.correlate.model import (
    Contribution,
    CorrelationHit,
    CorrelationRuleInfo,
    RuleRef,
)

__all__ = [
    "DEFAULT_ALLOWED_LATENESS",
    "DEFAULT_MAX_EVENTS_PER_GROUP",
    "DEFAULT_MAX_GROUPS_PER_RULE",
    "DEFAULT_MAX_HIT_EVENTS",
    "RANGE_CONDITION_ATTRIBUTE",
    "CompiledCorrelation",
    "Condition",
    "Contribution",
    "CorrelationEngine",
    "CorrelationError",
    "CorrelationHit",
    "CorrelationKind",
    "CorrelationRuleInfo",
    "EngineStats",
    "Op",
    "RuleRef",
    "compile_correlations",
    "definition_key",
    "load_collection",
    "referenced_base_rules",
    "rule_keys",
    "rule_ref_of",
    "suppressed_base_rules",
    "suppressed_correlation_refs",
]
