"""What the detection engine emits: one detection per (rule, event) or per correlation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from functools import lru_cache
from typing import Any

from vigil.events.model import EventRecord

#: Technique (t1059.001), group (g0007) and software (s0002) ids are not tactics.
_ATTACK_ID = re.compile(r"[tgs]\d{4}")


class Level(IntEnum):
    """Sigma rule levels, ordered so that ``--min-level`` can compare them."""

    INFORMATIONAL = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | None) -> Level:
        if not text:
            return cls.INFORMATIONAL
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown level {text!r}; expected one of " + ", ".join(m.name.lower() for m in cls)
            ) from None


# Both are asked for every detection of a scan, with the few values of the rule set: cached.
@lru_cache(maxsize=64)
def _level_rank(level: str | None) -> Level:
    try:
        return Level.parse(level)
    except ValueError:
        return Level.INFORMATIONAL


@lru_cache(maxsize=8192)
def _tactics(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        tag[7:] for tag in tags if tag.startswith("attack.") and not _ATTACK_ID.match(tag[7:])
    )


@dataclass(frozen=True, slots=True)
class EventRef:
    """Where an event that contributed to a detection came from."""

    source_file: str
    record_id: int | None
    timestamp: datetime | None
    rule_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_file": self.source_file,
            "record_id": self.record_id,
            "timestamp": self.timestamp.isoformat() if self.timestamp else None,
            "rule_id": self.rule_id,
        }


@dataclass(slots=True)
class Detection:
    rule_id: str | None
    rule_title: str
    level: str | None
    tags: tuple[str, ...]
    event: EventRecord
    kind: str = "rule"  # "rule" or "correlation"
    #: For correlations: the events that made it, the group and the aggregated value.
    events: list[EventRef] = field(default_factory=list)
    group: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    rule_name: str | None = None

    @property
    def level_rank(self) -> Level:
        return _level_rank(self.level)

    def tactics(self) -> list[str]:
        """ATT&CK tactics named by the tags (``attack.execution`` → ``execution``)."""
        return list(_tactics(tuple(self.tags)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "level": self.level,
            "tags": list(self.tags),
            "kind": self.kind,
            "source_file": self.event.source_file,
            "record_id": self.event.record_id,
            "timestamp": self.event.timestamp.isoformat() if self.event.timestamp else None,
            "event": self.event.fields,
        }
        if self.kind == "correlation":
            out["group"] = self.group
            out["value"] = self.value
            out["events"] = [e.to_dict() for e in self.events]
        return out


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Detections a worker process already encoded: JSON lines, one per detection."""

    lines: bytes
    count: int

    def line_list(self) -> list[bytes]:
        return self.lines.splitlines()
