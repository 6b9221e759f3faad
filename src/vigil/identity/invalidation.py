"""What a revocation or change invalidates in the credential and decision caches (its own module
so the audit trail can note revocations without importing the authenticator)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What changed: cached credentials matching any of these are dropped."""

    key_ids: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()
    tenant_ids: tuple[str, ...] = ()
    session_ids: tuple[str, ...] = ()
    everything: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "key_ids": list(self.key_ids),
            "user_ids": list(self.user_ids),
            "tenant_ids": list(self.tenant_ids),
            "session_ids": list(self.session_ids),
            "everything": self.everything,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Invalidation:
        def strings(name: str) -> tuple[str, ...]:
            value = data.get(name) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return cls(
            key_ids=strings("key_ids"),
            user_ids=strings("user_ids"),
            tenant_ids=strings("tenant_ids"),
            session_ids=strings("session_ids"),
            everything=bool(data.get("everything", False)),
        )
