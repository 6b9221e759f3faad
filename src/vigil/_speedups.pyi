"""Type stub of the C extension; see ``src/vigil/_speedups.c`` and ``vigil.speedups``."""

from typing import Any

def lower_join(fields: dict[str, Any], strings_only: bool, /) -> str | None:
    """The values of ``fields`` lowered (as ``str.lower``) and joined with ``"\\x1f"``.

    ``strings_only``: leave out None and int values (``EventContext.string_text``); otherwise
    None is ``"none"`` and an int its digits (``EventContext.text``). None when a value has any
    other type (the Python code then builds the text).
    """

def lower_fields(
    fields: dict[str, Any], lowered: dict[str, str | None], names: tuple[str, ...], /
) -> tuple[str | None, ...]:
    """For each name: ``lowered[name]`` filled as the generated prelower block does (str lowered,
    None/absent as None, anything else through ``lowered[name]``, which may raise NotFlat)."""

def flatten_windows_event(event: dict[str, Any], /) -> dict[str, Any] | None:
    """``normalise.flatten_windows_event`` for the common shapes; None for any other."""
