"""Validate inputs against the schemas and report every problem at once, by path, never by value.

jsonschema's own messages quote the offending value (which could be a secret or customer data), so
each problem is re-phrased from the failing keyword and the *constraint*, never the instance.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from . import quantity
from .errors import Problem
from .schema import TIMESTAMP_FORMAT, is_timestamp, json_schema

__all__ = ["Problem", "batch_problems", "problems", "request_problems", "validator"]


_REQUIRED_NAME = re.compile(r"^'(.*)' is a required property$")
_FORMATS = FormatChecker(formats=())
_FORMATS.checks(TIMESTAMP_FORMAT)(is_timestamp)

_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "an object"}


@cache
def validator(schema_name: str) -> Draft202012Validator:
    """A cached validator for ``schemas/<schema_name>``."""
    return Draft202012Validator(json_schema(schema_name), format_checker=_FORMATS)


def _path(parts: Any) -> str:
    return "/" + "/".join(str(part) for part in parts) if parts else "/"


def _describe(error: SchemaError) -> tuple[str, str]:
    """Return (path, problem) phrased from the constraint only."""
    kind, limit = error.validator, error.validator_value
    path = _path(error.absolute_path)
    if kind == "required":
        # jsonschema reports one error per missing member; its message names the member (not a value).
        named = _REQUIRED_NAME.match(error.message)
        name = named.group(1) if named else "?"
        return _path([*error.absolute_path, name]), "is required"
    if kind == "additionalProperties":
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = set(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed) if isinstance(error.instance, dict) else []
        # Field names are schema vocabulary chosen by the mapping, not values; still cap their length.
        names = ", ".join(name[:64] for name in extra)
        return path, f"unknown member(s) {names}; member names are case-sensitive"
    if kind == "oneOf":
        branches = limit if isinstance(limit, list) else []
        options = [" + ".join(branch.get("required", [])) for branch in branches if isinstance(branch, dict)]
        return path, "needs exactly one of " + ", ".join(options)
    if kind == "type":
        words = limit if isinstance(limit, list) else [limit]
        text = "must be " + " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in words)
        return path, text + _quantity_hint(error.absolute_path)
    if kind == "format" and limit == TIMESTAMP_FORMAT:
        return path, "must be ISO-8601 with an offset or Z, epoch seconds or epoch milliseconds"
    phrases = {
        "minLength": "must have length greater than or equal to {}",
        "maxLength": "must have length less than or equal to {}",
        "pattern": "must match the pattern {}",
        "minimum": "must be greater than or equal to {}",
        "maximum": "must be less than or equal to {}",
        "minItems": "must have at least {} item(s)",
        "maxItems": "must have at most {} items",
        "enum": "must be one of {}",
        "const": "must be {}",
    }
    if kind in phrases:
        return path, phrases[kind].format(limit)
    return path, f"fails the {kind} constraint"


def _quantity_hint(parts: Any) -> str:
    """A pointer to the decimal member when a quantity member got the wrong type."""
    name = str(list(parts)[-1]) if parts else ""
    for members in (quantity.RECORD, quantity.REQUEST, quantity.ALLOCATION):
        if name == members.whole:
            return f"; for fractional usage give {members.decimal} instead, as a string such as \"2.5\""
        if name == members.decimal:
            return " such as \"17.42\" (a JSON number could lose digits; in a mapping use $string(...))"
    return ""


def problems(schema_name: str, instance: Any) -> list[Problem]:
    """Every schema problem of ``instance``, one per path, sorted by path (empty when valid)."""
    by_path: dict[str, set[str]] = {}
    for err in validator(schema_name).iter_errors(instance):
        path, text = _describe(err)
        by_path.setdefault(path, set()).add(text)
    return [Problem(path, "; ".join(sorted(texts))) for path, texts in sorted(by_path.items())]


def batch_problems(body: Any, member: str) -> list[Problem]:
    """Batch-wide rules a schema cannot state: quantities of every record, ProductCode vs LicenseArn."""
    if not isinstance(body, dict):
        return []
    records = body.get(member) or []
    found: list[Problem] = []
    for index, record in enumerate(records):
        found += quantity.problems(record, f"/{member}/{index}", quantity.RECORD)
    with_license = [i for i, r in enumerate(records) if isinstance(r, dict) and r.get("LicenseArn")]
    if body.get("ProductCode") and with_license:
        # AWS bills such records twice (botocore 1.44 model, BatchMeterUsageRequest.ProductCode).
        first = with_license[0]
        found.append(Problem("/ProductCode", f"must be left out when records carry a LicenseArn "
                                             f"(/{member}/{first}/LicenseArn and {len(with_license) - 1} more): "
                                             "AWS bills records sent with both twice"))
    return found


def request_problems(body: Any) -> list[Problem]:
    """Rules a schema cannot state for a MeterUsage request (its quantity members and allocations)."""
    return quantity.problems(body, "", quantity.REQUEST)

