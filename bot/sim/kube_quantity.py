"""Resource quantities (`500m`, `1Gi`, `0.5`) parsed and printed the way the API server does.

The server stores a quantity in its canonical form (k8s.io/apimachinery resource.Quantity):
`0.5` comes back as `500m`, `1024Mi` as `1Gi`, `1000` as `1k`, `1.5e3` as `1500`. Two pod
templates that differ only in how a quantity is written are therefore the same template.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["QUANTITY_PATTERN", "canonical_quantity"]

QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(
    r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|"
    r"(n|u|m|k|M|G|T|P|E)|[eE]([+-]?[0-9]+))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exponent: suffix for suffix, exponent in _DECIMAL.items()}


def canonical_quantity(value: object) -> str | None:
    """The canonical text of a quantity (a string or a JSON number), None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = value if isinstance(value, str) else repr(value)
    match = _QUANTITY.match(text.strip())
    if match is None:
        return None
    sign, digits, binary, decimal, exponent = match.groups()
    amount = Fraction(digits) * (-1 if sign == "-" else 1)
    if binary:
        return _binary(amount * 1024 ** _BINARY[binary])
    if exponent is not None:
        return _exponent(amount * Fraction(10) ** int(exponent))
    return _decimal(amount * Fraction(10) ** _DECIMAL[decimal or ""])


def _nano_rounded(amount: Fraction) -> Fraction:
    """Quantities keep at most nano precision; the server rounds up (away from zero)."""
    scaled = amount * 10**9
    if scaled.denominator == 1:
        return amount
    whole = -((-abs(scaled)) // 1)
    return Fraction(int(whole) * (1 if amount > 0 else -1), 10**9)


def _mantissa(amount: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with exponent a multiple of 3, as large as keeps it exact."""
    amount = _nano_rounded(amount)
    if amount == 0:
        return 0, 0
    exponent = -9
    while exponent < 18:
        scaled = amount / Fraction(10) ** (exponent + 3)
        if scaled.denominator != 1:
            break
        exponent += 3
    return int(amount / Fraction(10) ** exponent), exponent


def _decimal(amount: Fraction) -> str:
    mantissa, exponent = _mantissa(amount)
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def _exponent(amount: Fraction) -> str:
    mantissa, exponent = _mantissa(amount)
    if exponent < 0:
        return _decimal(amount)
    return f"{mantissa}e{exponent}" if exponent else str(mantissa)


def _binary(amount: Fraction) -> str:
    # Below 1024 or fractional, a binary quantity prints in decimal form (Ki would lose it).
    if abs(amount) < 1024 or amount.denominator != 1:
        return _decimal(amount)
    value, power = int(amount), 0
    while power < 6 and value % 1024 == 0:
        value //= 1024
        power += 1
    suffix = {_BINARY[s]: s for s in _BINARY}.get(power, "")
    return f"{value}{suffix}"
