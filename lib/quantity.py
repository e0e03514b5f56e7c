"""Usage quantities as exact decimals: reading them, checking allocations, and what goes on the wire.

Since botocore 1.44 (late 2026) every quantity of the Metering API has two members: the whole-number
one (``Quantity``, ``UsageQuantity``, ``AllocatedUsageQuantity``; deprecated since 2026-10-20) and a
decimal string (``QuantityAsDecimal``, ``UsageQuantityAsDecimal``, ``AllocatedUsageQuantityAsDecimal``,
pattern ``^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,6})?$``). AWS compares quantities by value (17, 17.0 and
"17.00" are one quantity, in either member), refuses a record that carries both members, and wants the
allocations of a record in the same kind as the record (see docs/metering-api.md, "Quantities").

What the connector sends: always the decimal member. A whole number given in the deprecated member is
rewritten to the decimal member with the same value (``17`` → ``"17"``), its allocations too, so the
wire never uses a deprecated member and a record keeps one kind throughout. Because AWS deduplicates by
value, a record sent before this change as ``Quantity: 17`` and resent now as ``"17"`` is the same
record. Nothing here ever holds a quantity in a float.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, NamedTuple

from .errors import Problem

DECIMAL_PATTERN = re.compile(r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$")
MAX_DECIMAL_LENGTH = 17


class Members(NamedTuple):
    """The whole-number and the decimal member naming one quantity."""

    whole: str
    decimal: str


RECORD = Members("Quantity", "QuantityAsDecimal")  # a BatchMeterUsage UsageRecord
REQUEST = Members("UsageQuantity", "UsageQuantityAsDecimal")  # a MeterUsage request
ALLOCATION = Members("AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal")
ALLOCATIONS = "UsageAllocations"


def value_of(item: dict[str, Any], members: Members) -> Decimal:
    """The quantity of ``item`` by value; 0 when neither member is present (AWS's default).

    Where an echo carries both (AWS may add ``Quantity: 0`` beside the decimal), the decimal wins.
    """
    decimal = item.get(members.decimal)
    if isinstance(decimal, str):
        return Decimal(decimal)
    whole = item.get(members.whole)
    if isinstance(whole, bool) or whole is None:
        return Decimal(0)
    if isinstance(whole, int):
        return Decimal(whole)
    if isinstance(whole, float) and whole.is_integer():  # JSON 17.0 is a valid "integer"
        return Decimal(int(whole))
    return Decimal(str(whole))


def render(quantity: Decimal) -> str:
    """A decimal string of the API's form for ``quantity`` (no exponent, no trailing zeros)."""
    text = format(quantity, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def canonical(text: str) -> str:
    """``render(Decimal(text))`` for a string of the decimal members' form (:data:`DECIMAL_PATTERN`: no sign,
    no exponent, no leading zeros), without building the Decimal: only trailing fraction zeros go. Any other
    text takes the Decimal way."""
    if DECIMAL_PATTERN.match(text) is None:
        return render(Decimal(text))
    if "." not in text:
        return text
    return text.rstrip("0").rstrip(".")


def fits(quantity: Decimal) -> bool:
    """Whether ``quantity`` can be written in a decimal member (10 whole digits, 6 decimals)."""
    text = render(quantity)
    return len(text) <= MAX_DECIMAL_LENGTH and DECIMAL_PATTERN.match(text) is not None


def _uses(item: Any, members: Members) -> set[str]:
    return {name for name in members if isinstance(item, dict) and name in item}


def problems(item: Any, base: str, members: Members) -> list[Problem]:
    """Rules a schema cannot state, for one record or request (``base`` is its JSON path).

    Not both quantity members; allocations in the record's kind and all of one kind; allocations
    adding up to the quantity exactly (by decimal value); distinct tag sets, at most one untagged.
    """
    if not isinstance(item, dict):
        return []
    if not item.get(ALLOCATIONS) and (members.whole not in item or members.decimal not in item):
        return []  # the usual record: one quantity member, no allocations (nothing below applies)
    found: list[Problem] = []
    used = _uses(item, members)
    if len(used) == 2:
        found.append(Problem(base or "/", f"gives both {base}/{members.whole} and {base}/{members.decimal}; "
                                          f"give only one ({members.decimal} for fractional usage)"))
    allocations = item.get(ALLOCATIONS)
    if not isinstance(allocations, list) or not allocations:
        return found
    kinds = [_uses(a, ALLOCATION) for a in allocations]
    if members.decimal in used:
        wanted: str | None = ALLOCATION.decimal
    elif members.whole in used:
        wanted = ALLOCATION.whole
    else:  # no quantity (0): any kind, but one kind for all allocations
        first = next((next(iter(k)) for k in kinds if len(k) == 1), None)
        wanted = first
    for index, kind in enumerate(kinds):
        if len(kind) == 1 and wanted is not None and kind != {wanted}:
            found.append(Problem(
                f"{base}/{ALLOCATIONS}/{index}",
                f"uses {next(iter(kind))} but must use {wanted}: allocations take the same kind of quantity "
                f"as their record ({members.decimal} with {ALLOCATION.decimal}, "
                f"{members.whole} with {ALLOCATION.whole})"))
    if not found:
        total = sum((value_of(a, ALLOCATION) for a in allocations), Decimal(0))
        quantity = value_of(item, members)
        if total != quantity:
            found.append(Problem(f"{base}/{ALLOCATIONS}",
                                 f"allocated quantities add up to {render(total)}, not to the record's quantity "
                                 f"{render(quantity)}"))
    seen: set[frozenset[tuple[str, str]]] = set()
    for index, allocation in enumerate(allocations):
        key = tag_set(allocation)
        if key in seen:
            what = "only one allocation may have no tags" if not key else "repeats the tag set of an earlier allocation"
            found.append(Problem(f"{base}/{ALLOCATIONS}/{index}", what))
        seen.add(key)
    return found


def tag_set(allocation: Any) -> frozenset[tuple[str, str]]:
    """The tags of one allocation as a set of (key, value) pairs (order does not matter to AWS)."""
    tags = allocation.get("Tags", []) if isinstance(allocation, dict) else []
    return frozenset((t.get("Key", ""), t.get("Value", "")) for t in tags if isinstance(t, dict))


def _as_decimal_member(item: dict[str, Any], members: Members) -> dict[str, Any]:
    out = {key: value for key, value in item.items() if key not in members}
    if members.decimal in item:
        out[members.decimal] = item[members.decimal]
    elif members.whole in item:
        whole = item[members.whole]
        # str(n) is render(Decimal(n)) for a plain int, without the Decimal (every record takes this path)
        out[members.decimal] = str(whole) if type(whole) is int else render(value_of(item, members))
    return out


def to_wire(item: dict[str, Any], members: Members) -> dict[str, Any]:
    """A copy of a valid record/request that uses only decimal members (allocations included)."""
    out = _as_decimal_member(item, members)
    allocations = item.get(ALLOCATIONS)
    if isinstance(allocations, list):
        # Decimal allocations go with a decimal quantity: state the default 0 rather than leave it implied.
        out.setdefault(members.decimal, "0")
        out[ALLOCATIONS] = [_as_decimal_member(a, ALLOCATION) for a in allocations]
    return out
