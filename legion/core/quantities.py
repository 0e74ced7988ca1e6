"""Kubernetes quantities (``500m``, ``0.5``, ``2``, ``256Mi``, ``1G``, ``1e3``): read, compare, turn into the units a
runtime applies, and write back.

The resource schemas (``legion.core.resources``) check every ``cpu``/``memory``/``gpu`` value with ``parse_quantity``;
the local runtime turns limits into bytes and millicores (``to_bytes``, ``to_millicores``) for its cgroups, and
status lines quote them back in the canonical form of ``format_bytes`` / ``format_millicores``. One module, so the
spec's validator and the runtime can never read the same text differently.

Values are ``Decimal`` so that ``0.1`` CPUs is exactly 100m; amounts that a kernel takes as integers are rounded
up, as Kubernetes does (``0.5m`` of CPU is 1m, ``1.5`` bytes are 2).

    >>> parse_quantity("256Mi")
    Decimal('268435456')
    >>> to_millicores("0.25"), format_bytes(to_bytes("1Gi"))
    (250, '1Gi')
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Final

QUANTITY: Final = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<exponent>[+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[mkMGTPE]))?"
)
"""A non-negative quantity: a decimal number with a decimal exponent, a decimal suffix or a binary suffix."""
MAX_DIGITS: Final = 30
"""Longest number and largest exponent accepted: enough for any real amount, and keeps ``Decimal`` from being
asked for 10**999999999."""
SUFFIXES: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}
_BINARY: Final = [(s, int(SUFFIXES[s])) for s in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki")]


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity: ``"500m"`` → 0.5, ``"1Gi"`` → 1073741824, ``"1e3"`` → 1000.

    ``ValueError`` saying why for anything else (a negative number, ``1GB``, a space, an absurd exponent).
    """
    match = QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:80]!r} is not a quantity: write a number with an optional suffix, e.g. 500m, 2, 1.5, 256Mi, 1Gi"
        )
    number, exponent = match["number"], int(match["exponent"] or 0)
    if len(number) > MAX_DIGITS or abs(exponent) > MAX_DIGITS:
        raise ValueError(f"{text[:80]!r} is out of range for a quantity")
    return Decimal(number).scaleb(exponent) * SUFFIXES[match["suffix"] or ""]


def to_bytes(text: str) -> int:
    """A memory quantity in bytes, rounded up: ``"256Mi"`` → 268435456, ``"1G"`` → 1000000000."""
    return int(parse_quantity(text).to_integral_value(ROUND_CEILING))


def to_millicores(text: str) -> int:
    """A CPU quantity in thousandths of a core, rounded up: ``"256m"`` → 256, ``"0.5"`` → 500, ``"2"`` → 2000."""
    return int((parse_quantity(text) * 1000).to_integral_value(ROUND_CEILING))


def format_bytes(size: int) -> str:
    """``size`` bytes as the shortest exact quantity with a binary suffix: 268435456 → ``256Mi``, 1000 → ``1000``."""
    if size < 0:
        raise ValueError(f"{size} is not a size in bytes")
    for suffix, unit in _BINARY:
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def format_millicores(millicores: int) -> str:
    """A CPU amount in millicores as Kubernetes writes it: 2000 → ``2``, 256 → ``256m``."""
    if millicores < 0:
        raise ValueError(f"{millicores} is not an amount of CPU")
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"
