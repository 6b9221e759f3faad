"""Who or what a detection is about (its entity), the alert fingerprint, and bounded context.

Entity of a **rule** detection: the host and the user named by the matching event, each taken
from the first of these fields that holds a usable value (fields are looked up by their flat
name, then as a dotted path into nested objects):

* host: ``Computer``, ``ComputerName``, ``Hostname``, ``HostName``, ``hostname``,
  ``host.name``, ``host.hostname``, ``DeviceName``, ``dvchost``, ``host``
* user: ``TargetUserName``, ``User``, ``SubjectUserName``, ``user.name``, ``UserName``,
  ``AccountName``, ``username``, ``user``

``TargetUserName`` comes before ``SubjectUserName`` because in the Windows logon and account
events the target is the account acted upon (the one an analyst cares about) while the subject is
often the machine account doing the work. Placeholder values (``-``, empty, ``N/A``, ``NULL``)
count as absent.

Entity of a **correlation** detection: its group-by fields and values (``DetectionRecord.group``);
when a correlation has no group-by, the host/user of its last event as above.

The fingerprint is SHA-256 over tenant, rule id and the entity with values lower-cased (host and
user names are case-insensitive on the systems that produce them), so ``WS01`` and ``ws01`` are
the same entity while the alert keeps the spelling it first saw for display.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from vigil.alerts.models import ENTITY_MAX

HOST_FIELDS: tuple[str, ...] = (
    "Computer",
    "ComputerName",
    "Hostname",
    "HostName",
    "hostname",
    "host.name",
    "host.hostname",
    "DeviceName",
    "dvchost",
    "host",
)
USER_FIELDS: tuple[str, ...] = (
    "TargetUserName",
    "User",
    "SubjectUserName",
    "user.name",
    "UserName",
    "AccountName",
    "username",
    "user",
)
_PLACEHOLDERS = frozenset({"", "-", "n/a", "null", "none", "(null)"})
_VALUE_MAX = 200


def _lookup(fields: Mapping[str, Any], name: str) -> Any:
    if name in fields:
        return fields[name]
    if "." not in name:
        return None
    node: Any = fields
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _usable(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or isinstance(value, dict | bool):
        return None
    text = str(value).strip()
    if text.lower() in _PLACEHOLDERS:
        return None
    return text[:_VALUE_MAX]


def first_value(fields: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = _usable(_lookup(fields, name))
        if value is not None:
            return value
    return None


def extract_entity(
    *, kind: str, event_fields: Mapping[str, Any], group: Mapping[str, Any]
) -> dict[str, str]:
    """The entity as ordered ``{name: value}`` (``host``/``user``, or the group-by fields)."""
    if kind == "correlation" and group:
        out: dict[str, str] = {}
        for key in sorted(group):
            value = _usable(group[key])
            if value is not None:
                out[str(key)[:_VALUE_MAX]] = value
        if out:
            return out
    entity: dict[str, str] = {}
    host = first_value(event_fields, HOST_FIELDS)
    if host is not None:
        entity["host"] = host
    user = first_value(event_fields, USER_FIELDS)
    if user is not None:
        entity["user"] = user
    return entity


def entity_label(entity: Mapping[str, str]) -> str:
    """``host=WS01 user=alice``; empty when there is no entity."""
    return " ".join(f"{k}={v}" for k, v in entity.items())[:ENTITY_MAX]


def fingerprint(*, tenant_id: str, rule_id: str, entity: Mapping[str, str]) -> str:
    canonical = orjson.dumps(
        [tenant_id, rule_id, sorted((k, v.lower()) for k, v in entity.items())]
    )
    return hashlib.sha256(canonical).hexdigest()


def bounded_context(
    fields: Mapping[str, Any], *, max_bytes: int, value_max_chars: int
) -> dict[str, Any]:
    """A JSON-safe copy of ``fields`` at most ``max_bytes`` long when serialised.

    Long strings are cut to ``value_max_chars``; fields are kept in their order until the budget
    is spent, and ``"_truncated"`` names how many were left out.
    """
    if _fits_as_is(fields, max_bytes=max_bytes, value_max_chars=value_max_chars):
        return dict(fields)
    out: dict[str, Any] = {}
    used = 2
    dropped = 0
    for key, value in fields.items():
        item = _json_safe(value, value_max_chars)
        size = len(orjson.dumps({str(key): item})) - 1
        if used + size > max_bytes - 32:
            dropped += 1
            continue
        out[str(key)] = item
        used += size
    if dropped:
        out["_truncated"] = dropped
    return out


_SCALARS = (str, int, float, bool, type(None))
_I64, _U64 = -(2**63), 2**64


def _fits_as_is(fields: Mapping[str, Any], *, max_bytes: int, value_max_chars: int) -> bool:
    """The common event: flat scalar fields, no long string, small enough. The field-by-field
    walk below would keep every field unchanged, so one encoding of the whole decides (the walk
    counts ``len(json) + 1`` bytes for a complete object, against a budget of ``max_bytes - 32``).
    """
    for key, value in fields.items():
        if type(key) is not str or type(value) not in _SCALARS:
            return False
        if type(value) is str and len(value) > value_max_chars:
            return False
    try:
        encoded = orjson.dumps(fields)
    except TypeError:  # an integer beyond 64 bits: the walk turns it into text
        return False
    return len(encoded) + 1 <= max_bytes - 32


def _json_safe(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, int) and not isinstance(value, bool) and not _I64 <= value < _U64:
        return str(value)  # beyond what JSON encoders (orjson) and most readers take
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_json_safe(v, limit) for v in value[:50]]
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, limit) for k, v in list(value.items())[:50]}
    return _json_safe(str(value), limit)
