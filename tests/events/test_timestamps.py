"""parse_timestamp(): lenient, always aware UTC, never raises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.events import parse_timestamp

EPOCH_2023 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T10:20:30Z", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T10:20:30.1234567Z", datetime(2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)),
        ("2024-03-01T12:20:30+02:00", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01 10:20:30.589", datetime(2024, 3, 1, 10, 20, 30, 589000, tzinfo=UTC)),
        ("2024-03-01t10:20:30z", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        (" 2024-03-01T10:20:30Z ", datetime(2024, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2024-03-01T10:20:30.601559Z UTC", datetime(2024, 3, 1, 10, 20, 30, 601559, tzinfo=UTC)),
        (1_700_000_000, EPOCH_2023),
        (1_700_000_000.5, EPOCH_2023.replace(microsecond=500000)),
        (1_700_000_000_000, EPOCH_2023),
        (1_700_000_000_000_000, EPOCH_2023),
        (1_700_000_000_000_000_000, EPOCH_2023),
        ("1700000000", EPOCH_2023),
        ("1700000000000", EPOCH_2023),
    ],
)
def test_parses(value: Any, expected: datetime) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None
    assert parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "not a date", "2024-13-45T00:00:00Z", True, float("nan"), 1e300, [], {}],
)
def test_unparseable_is_none(value: Any) -> None:
    assert parse_timestamp(value) is None
