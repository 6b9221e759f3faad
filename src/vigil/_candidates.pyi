from typing import Any

def collect(
    plan: tuple[tuple[Any, ...], ...],
    always: tuple[int, ...] | None,
    lowered: tuple[str | None, ...],
    fields: dict[str, Any],
    ctx: Any,
    /,
) -> set[int]: ...
