"""API shapes of the rules endpoints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

Level = Literal["informational", "low", "medium", "high", "critical"]
RuleKind = Literal["rule", "correlation"]

#: Longest alert suppression window a tenant may set (30 days).
MAX_SUPPRESSION_S = 30 * 24 * 3600.0


class RuleRead(BaseModel):
    rule_id: str
    kind: RuleKind
    title: str
    level: str | None = Field(description="The level in the rule file.")
    effective_level: str | None = Field(description="The level detections carry for this tenant.")
    enabled: bool
    suppression_window_s: float | None = Field(
        description="This tenant's alert suppression window for the rule (null: the default)."
    )
    tags: list[str]
    path: str
    logsource: dict[str, str]
    status: str | None
    stale: bool = Field(
        description="The rule's file fails to load now; this is the last version that loaded."
    )


class RuleDetail(RuleRead):
    description: str | None
    falsepositives: list[str]
    failures: list[dict[str, Any]] = Field(
        description="Current load failures reported for this rule id."
    )
    updated_at: str | None = None
    updated_by: str | None = None


class RulePage(BaseModel):
    items: list[RuleRead]
    total: int
    limit: int
    offset: int


class RuleUpdate(BaseModel):
    """A tenant's override. Absent fields stay as they are; ``level: null`` returns to the
    rule's own level and ``suppression_window_s: null`` to the default window."""

    # At least one field (an empty change is refused), and ``enabled`` is true or false, never
    # null: the published schema says so.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    enabled: bool | SkipJsonSchema[None] = None
    level: Level | None = None
    suppression_window_s: float | None = Field(default=None, ge=0, le=MAX_SUPPRESSION_S)


class RulesStatus(BaseModel):
    version: int
    loaded: int
    rules: int
    correlations: int
    files: int
    stale: list[str]
    failed: list[dict[str, Any]]
    loaded_at: str
    load_duration_s: float
    last_reload: dict[str, Any] | None
    rule_paths: list[str]
    mapping_paths: list[str]
