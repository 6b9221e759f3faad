from typing import Any

def collect(
    plan: tuple[tuple[Any, ...], ...],
    always: tuple[int, ...] | None,
    lowered: tuple[str | None, ...],
    fields: dict[str, Any],
    ctx: Any,
    /,
) -> set[int]: ...

class Automaton:
    """The literals of one index field as a dense DFA over UTF-8 byte classes."""

    def __init__(
        self, words: tuple[str, ...], positions: tuple[tuple[int, ...], ...], /
    ) -> None: ...
    def search(self, text: str, /) -> bool:
        """Does any of the literals occur in ``text``? (stops at the first hit)"""
