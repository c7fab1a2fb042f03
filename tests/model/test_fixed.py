from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.model.fixed import (
    FixedPointError,
    format_nanos,
    nanos_from_scaled,
    parse_nanos,
    scaled_from_nanos,
)


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_format_then_parse_is_identity(value: int) -> None:
    assert parse_nanos(format_nanos(value)) == value


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("43250.5", 43_250_500_000_000),
        ("12", 12_000_000_000),
        ("-0.001", -1_000_000),
        ("0.000000001", 1),
        ("0", 0),
    ],
)
def test_parse_known_values(text: str, nanos: int) -> None:
    assert parse_nanos(text) == nanos


@pytest.mark.parametrize(
    "text", ["", "1.", ".5", "1e5", "1.0000000001", "abc", "--1", "\u0661\u0662", "1.5x"]
)
def test_parse_refuses_inexact_or_odd_text(text: str) -> None:
    with pytest.raises(FixedPointError):
        parse_nanos(text)


def test_scaled_conversions_are_exact() -> None:
    assert nanos_from_scaled(4325050000000, 8) == 43_250_500_000_000
    assert scaled_from_nanos(43_250_500_000_000, 8) == 4325050000000
    with pytest.raises(FixedPointError):
        scaled_from_nanos(1, 8)
    with pytest.raises(FixedPointError):
        nanos_from_scaled(1, 10)
