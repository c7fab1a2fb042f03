"""The text venues' decimal conversion is exact: checked against `decimal.Decimal`.

`NanosMemo` converts misses in its own fast path and hands every other shape to
`exact_nanos`; both must accept exactly the plain decimals (`-?digits(.1-9 digits)?`,
ASCII) within +-MAX_NANOS and give the value Decimal gives, and reject the rest
(exponents, signs other than one leading "-", too many places, Unicode digits,
underscores, spaces, out of range) with ValueError, non-strings with TypeError.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticker.model.fixed import MAX_NANOS
from ticker.venues.decimals import DecimalCache, NanosMemo, exact_nanos

_PLAIN = re.compile(r"-?[0-9]+(\.[0-9]{1,9})?")


def reference(text: str) -> int | None:
    """Nanos of `text` by Decimal at ample precision, or None if it must be rejected."""
    if not _PLAIN.fullmatch(text):
        return None
    with localcontext(Context(prec=200)):
        value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value()
    nanos = int(value)
    return nanos if -MAX_NANOS <= nanos <= MAX_NANOS else None


digits = st.text(alphabet="0123456789", min_size=0, max_size=22)
decimal_like = st.builds(
    lambda sign, whole, dot, frac, exp: f"{sign}{whole}{dot}{frac}{exp}",
    st.sampled_from(["", "", "", "-", "+", "--", " "]),
    digits,
    st.sampled_from([".", ".", ""]),
    st.text(alphabet="0123456789", max_size=12),
    st.sampled_from(["", "", "", "", "e5", "E-3", "e+0", " ", "_0", "\u0663", "\u00b2", "."]),
)
near_bounds = st.integers(-MAX_NANOS - 10**6, MAX_NANOS + 10**6).map(
    lambda n: f"{'-' if n < 0 else ''}{abs(n) // 10**9}.{abs(n) % 10**9:09d}"
)
texts = decimal_like | near_bounds | st.text(alphabet="0123456789.-+eE_ \u0663", max_size=30)


def converted(convert: object, text: str) -> int | None:
    try:
        return convert(text)  # type: ignore[operator,no-any-return]
    except ValueError:
        return None


@given(st.lists(texts, max_size=40))
def test_memo_and_exact_nanos_agree_with_decimal(batch: list[str]) -> None:
    memo = NanosMemo(8)  # small: misses, hits and clears all happen
    for text in batch + batch:  # the second pass mostly hits
        want = reference(text)
        assert converted(exact_nanos, text) == want, text
        assert converted(memo.__getitem__, text) == want, text
        assert len(memo) <= 8


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("9223372036.854775807", MAX_NANOS),
        ("-9223372036.854775807", -MAX_NANOS),
        ("9223372036.854775808", None),
        ("-9223372036.854775808", None),
        ("9223372037", None),
        ("00000000000000000000009223372036.854775807", MAX_NANOS),
        ("0.000000001", 1),
        ("-0", 0),
        ("0.0000000001", None),
        ("1.", None),
        (".5", None),
        ("1e3", None),
        ("+1", None),
        ("1_000", None),
        ("\u0663", None),
        ("", None),
    ],
)
def test_bounds_and_shapes(text: str, want: int | None) -> None:
    assert reference(text) == want
    assert converted(exact_nanos, text) == want
    assert converted(NanosMemo(4).__getitem__, text) == want
    assert converted(DecimalCache().nanos, text) == want


@pytest.mark.parametrize("value", [5, 1.5, None, b"1.5", ("1",)])
def test_a_non_string_is_a_type_error_and_is_not_cached(value: object) -> None:
    memo = NanosMemo(4)
    with pytest.raises(TypeError):
        memo[value]  # type: ignore[index]
    with pytest.raises(TypeError):
        exact_nanos(value)  # type: ignore[arg-type]
    assert not memo


def test_an_unhashable_value_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        NanosMemo(4)[["1.5"]]  # type: ignore[index]
