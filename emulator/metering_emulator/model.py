"""The request and result shapes of the operations (API 2016-01-14, as botocore 1.44.8's
``meteringmarketplace/2016-01-14/service-2.json`` describes them) as data, under the model's shape names
(``catalogue.py`` says which operation uses which), and a validator driven by them.

Wrong JSON types fail deserialization (SerializationException, first one wins); length, range and
pattern constraints are all collected and reported at once in the Coral ValidationException format.
Members marked ``deprecated`` (the whole-number quantities, deprecated since 2026-10-20) are still accepted.
``exclusive`` lists pairs of members that must not both be sent ("You can't specify both Quantity and
QuantityAsDecimal", the model's doc strings); ``spec/emulator/test_model_drift.py`` compares all of it (and
the catalogue's shape names and modeled errors) with the installed botocore model.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

from .errors import AwsError, serialization_error

Shape = dict[str, Any]

_TAG_TEXT = r"^[a-zA-Z0-9+ -=._:\/@]+$"

PRODUCT_CODE: Shape = {"type": "string", "min": 0, "max": 255, "pattern": r"^[-a-zA-Z0-9/=:_.@]*$"}
DIMENSION: Shape = {"type": "string", "min": 1, "max": 255, "pattern": r"[\s\S]+"}
QUANTITY: Shape = {"type": "integer", "min": 0, "max": 2147483647}
DECIMAL_QUANTITY: Shape = {"type": "string", "min": 1, "max": 17, "pattern": r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,6})?$"}
TIMESTAMP: Shape = {"type": "timestamp"}
CUSTOMER_IDENTIFIER: Shape = {"type": "string", "min": 0, "max": 255, "pattern": r"[\s\S]*"}
ACCOUNT_ID: Shape = {"type": "string", "min": 1, "max": 255, "pattern": r"^[0-9]+$"}
LICENSE_ARN: Shape = {
    "type": "string",
    "pattern": r"^arn:aws[a-zA-Z-]*:[A-Za-z0-9][A-Za-z0-9_/.-]{0,62}:[A-Za-z0-9_/.-]{0,63}:"
    r"[A-Za-z0-9_/.-]{0,63}:[A-Za-z0-9][A-Za-z0-9:_/+=,@.-]{0,1023}$",
}
TAG: Shape = {
    "type": "structure",
    "members": {
        "Key": {"type": "string", "min": 1, "max": 100, "pattern": _TAG_TEXT},
        "Value": {"type": "string", "min": 1, "max": 256, "pattern": _TAG_TEXT},
    },
    "required": ["Key", "Value"],
}
TAG_LIST: Shape = {"type": "list", "member": TAG, "min": 1, "max": 5}
ALLOCATION: Shape = {
    "type": "structure",
    "members": {
        "AllocatedUsageQuantity": {**QUANTITY, "deprecated": True},
        "AllocatedUsageQuantityAsDecimal": DECIMAL_QUANTITY,
        "Tags": TAG_LIST,
    },
    "required": [],
    # "Each allocation must specify exactly one of AllocatedUsageQuantity or AllocatedUsageQuantityAsDecimal."
    "exclusive": [("AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal")],
    "one_of": ("AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal"),
}
ALLOCATIONS: Shape = {"type": "list", "member": ALLOCATION, "min": 1, "max": 2500}
USAGE_RECORD: Shape = {
    "type": "structure",
    "members": {
        "Timestamp": TIMESTAMP,
        "CustomerIdentifier": CUSTOMER_IDENTIFIER,
        "Dimension": DIMENSION,
        "Quantity": {**QUANTITY, "deprecated": True},
        "QuantityAsDecimal": DECIMAL_QUANTITY,
        "UsageAllocations": ALLOCATIONS,
        "CustomerAWSAccountId": ACCOUNT_ID,
        "LicenseArn": LICENSE_ARN,
    },
    "required": ["Timestamp", "Dimension"],
    "exclusive": [("Quantity", "QuantityAsDecimal")],
}

_STRING: Shape = {"type": "string"}
SHAPES: dict[str, Shape] = {
    # requests
    "MeterUsageRequest": {
        "type": "structure",
        "members": {
            "ProductCode": PRODUCT_CODE,
            "Timestamp": TIMESTAMP,
            "UsageDimension": DIMENSION,
            "UsageQuantity": {**QUANTITY, "deprecated": True},
            "UsageQuantityAsDecimal": DECIMAL_QUANTITY,
            "DryRun": {"type": "boolean"},
            "UsageAllocations": ALLOCATIONS,
            "ClientToken": {"type": "string", "min": 1, "max": 64, "idempotencyToken": True},
        },
        "required": ["ProductCode", "Timestamp", "UsageDimension"],
        "exclusive": [("UsageQuantity", "UsageQuantityAsDecimal")],
    },
    "BatchMeterUsageRequest": {
        "type": "structure",
        "members": {
            "UsageRecords": {"type": "list", "member": USAGE_RECORD, "min": 0, "max": 25},
            "ProductCode": PRODUCT_CODE,
        },
        "required": ["UsageRecords"],
    },
    "RegisterUsageRequest": {
        "type": "structure",
        "members": {
            "ProductCode": PRODUCT_CODE,
            "PublicKeyVersion": {"type": "integer", "min": 1},
            "Nonce": {"type": "string", "max": 255, "pattern": r"[\s\S]*"},
        },
        "required": ["ProductCode", "PublicKeyVersion"],
    },
    "ResolveCustomerRequest": {
        "type": "structure",
        "members": {"RegistrationToken": {"type": "string", "pattern": r"[\s\S]+"}},
        "required": ["RegistrationToken"],
    },
    # results
    "MeterUsageResult": {"type": "structure", "members": {"MeteringRecordId": _STRING}, "required": []},
    "BatchMeterUsageResult": {
        "type": "structure",
        "members": {
            "Results": {"type": "list", "member": {
                "type": "structure",
                "members": {"UsageRecord": USAGE_RECORD, "MeteringRecordId": _STRING,
                            "Status": {"type": "string",
                                       "enum": ["Success", "CustomerNotSubscribed", "DuplicateRecord"]}},
                "required": []}},
            "UnprocessedRecords": {"type": "list", "member": USAGE_RECORD, "min": 0, "max": 25},
        },
        "required": [],
    },
    "RegisterUsageResult": {"type": "structure", "members": {"PublicKeyRotationTimestamp": TIMESTAMP,
                                                             "Signature": {"type": "string", "pattern": r"[\s\S]+"}},
                            "required": []},
    "ResolveCustomerResult": {
        "type": "structure",
        "members": {
            "CustomerIdentifier": CUSTOMER_IDENTIFIER,
            "ProductCode": PRODUCT_CODE,
            "CustomerAWSAccountId": ACCOUNT_ID,
            "LicenseArn": LICENSE_ARN,
            "Metadata": {"type": "structure", "required": [], "members": {
                "AgreementId": {"type": "string", "min": 1, "max": 64, "pattern": r"[A-Za-z0-9_/-]+"}}},
        },
        "required": [],
    },
}

_JSON_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
                    int: "an integer", float: "a number with a fraction", type(None): "null"}


@functools.cache
def _camel(name: str) -> str:
    """Coral paths use lowerCamel member names (``UsageRecords`` -> ``usageRecords``)."""
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    """A value as it appears in a validation message (long values are cut)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 200 else text[:200] + "..."


def _type_error(path: str, expected: str, value: Any) -> AwsError:
    got = _JSON_TYPE_NAMES.get(type(value), "a value of another type")
    where = f" at '{path}'" if path else ""
    return serialization_error(f"Expected {expected}{where}, got {got}.")


class _Walker:
    """Walks one request against its shape, collecting (path, constraint) violations."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []

    def fail(self, path: str, value: Any, constraint: str) -> None:
        shown = "null" if value is None else f"'{_render(value)}'"
        self.violations.append((path, f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"))

    def walk(self, shape: Shape, value: Any, path: str) -> None:
        kind = shape["type"]
        if kind == "structure":
            self._structure(shape, value, path)
        elif kind == "list":
            if not isinstance(value, list):
                raise _type_error(path, "an array", value)
            self._length(shape, value, path)
            for i, item in enumerate(value, start=1):
                self.walk(shape["member"], item, f"{path}.{i}.member")
        elif kind == "string":
            self._string(shape, value, path)
        elif kind == "integer":
            self._integer(shape, value, path)
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise _type_error(path, "a boolean", value)
        elif kind == "timestamp":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _type_error(path, "an epoch-seconds number", value)
            if isinstance(value, float) and not math.isfinite(value):
                raise serialization_error(f"Timestamp at '{path}' is not a finite number.")

    def _string(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        self._length(shape, value, path)
        if "pattern" in shape and re.fullmatch(shape["pattern"], value) is None:
            self.fail(path, value, f"Member must satisfy regular expression pattern: {shape['pattern']}")

    def _integer(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(path, "an integer", value)
        if "min" in shape and value < shape["min"]:
            self.fail(path, value, f"Member must have value greater than or equal to {shape['min']}")
        if "max" in shape and value > shape["max"]:
            self.fail(path, value, f"Member must have value less than or equal to {shape['max']}")

    def _structure(self, shape: Shape, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        members: dict[str, Shape] = shape["members"]
        for name in shape.get("required", []):
            if value.get(name) is None:
                self.fail(self._join(path, name), None, "Member must not be null")
        for name, member in members.items():
            if name in value and value[name] is not None:
                self.walk(member, value[name], self._join(path, name))
        for a, b in shape.get("exclusive", []):
            if value.get(a) is not None and value.get(b) is not None:
                pa, pb = self._join(path, a), self._join(path, b)
                self.violations.append((pa, (f"Members '{pa}' and '{pb}' failed to satisfy constraint: "
                                            f"You can't specify both {a} and {b}")))
        one_of = shape.get("one_of")
        if one_of is not None and all(value.get(n) is None for n in one_of):
            pa, pb = self._join(path, one_of[0]), self._join(path, one_of[1])
            self.violations.append((pa, (f"Value null at '{pa}' and '{pb}' failed to satisfy constraint: "
                                        f"Exactly one of {one_of[0]} or {one_of[1]} must be specified")))

    def _length(self, shape: Shape, value: Any, path: str) -> None:
        if "min" in shape and len(value) < shape["min"]:
            self.fail(path, value, f"Member must have length greater than or equal to {shape['min']}")
        if "max" in shape and len(value) > shape["max"]:
            self.fail(path, value, f"Member must have length less than or equal to {shape['max']}")

    @staticmethod
    def _join(path: str, name: str) -> str:
        return f"{path}.{_camel(name)}" if path else _camel(name)


def validation_message(violations: list[tuple[str, str]]) -> str:
    """The Coral summary line: ``N validation error(s) detected: a; b``."""
    n = len(violations)
    noun = "error" if n == 1 else "errors"
    return f"{n} validation {noun} detected: " + "; ".join(text for _, text in violations)


def broken_rule(shape: Shape, value: str) -> str | None:
    """The first constraint of a string ``shape`` that ``value`` breaks, in the model's words, or None (for
    fixture values the emulator answers with: a reply must satisfy the model as a request must)."""
    walker = _Walker()
    walker._string(shape, value, "value")
    return walker.violations[0][1].split("failed to satisfy constraint: ", 1)[1] if walker.violations else None


def parsed(shape: Shape, value: Any) -> Any:
    """``value`` as AWS's JSON protocol parses it against ``shape``, for a reply that echoes a request: members
    the shape does not declare, and members sent as null, are not part of it (a validated value only)."""
    if shape["type"] == "structure" and isinstance(value, dict):
        members: dict[str, Shape] = shape["members"]
        return {k: parsed(members[k], v) for k, v in value.items() if k in members and v is not None}
    if shape["type"] == "list" and isinstance(value, list):
        return [parsed(shape["member"], item) for item in value]
    return value


def check_request(shape: str, body: Any, modeled_errors: bool = False) -> None:
    """Raise the AwsError a malformed request of the input shape named ``shape`` gets; return when it is
    well-formed.

    With ``modeled_errors`` a violation under a tag list is answered with InvalidTagException and one on
    an allocation list's length with InvalidUsageAllocationsException instead of ValidationException.
    """
    walker = _Walker()
    walker.walk(SHAPES[shape], body, "")
    if not walker.violations:
        return
    if modeled_errors:
        tags = [v for v in walker.violations if ".tags" in v[0]]
        if tags:
            raise AwsError("InvalidTagException", validation_message(tags))
        allocations = [v for v in walker.violations if v[0].endswith("usageAllocations")]
        if allocations:
            raise AwsError("InvalidUsageAllocationsException", validation_message(allocations))
    raise AwsError("ValidationException", validation_message(walker.violations))
