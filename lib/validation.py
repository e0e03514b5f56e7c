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

from .errors import Problem
from .schema import TIMESTAMP_FORMAT, is_timestamp, json_schema

__all__ = ["Problem", "allocation_problems", "problems", "validator"]


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
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed) if isinstance(error.instance, dict) else []
        # Field names are schema vocabulary chosen by the mapping, not values; still cap their length.
        names = ", ".join(name[:64] for name in extra)
        return path, f"unknown member(s) {names}; member names are case-sensitive"
    if kind == "oneOf":
        options = [" + ".join(branch.get("required", [])) for branch in limit]
        return path, "needs exactly one of " + ", ".join(options)
    if kind == "type":
        words = limit if isinstance(limit, list) else [limit]
        return path, "must be " + " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in words)
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


def problems(schema_name: str, instance: Any) -> list[Problem]:
    """Every schema problem of ``instance``, one per path, sorted by path (empty when valid)."""
    by_path: dict[str, set[str]] = {}
    for err in validator(schema_name).iter_errors(instance):
        path, text = _describe(err)
        by_path.setdefault(path, set()).add(text)
    return [Problem(path, "; ".join(sorted(texts))) for path, texts in sorted(by_path.items())]


def allocation_problems(instance: Any, base: str, quantity_key: str) -> list[Problem]:
    """Rules a schema cannot state: allocations sum to the quantity, tag sets distinct, ≤1 untagged."""
    allocations = instance.get("UsageAllocations") if isinstance(instance, dict) else None
    if not isinstance(allocations, list) or not allocations:
        return []
    found: list[Problem] = []
    quantity = instance.get(quantity_key, 0)
    total = sum(a.get("AllocatedUsageQuantity", 0) for a in allocations if isinstance(a, dict))
    if isinstance(quantity, int) and total != quantity:
        found.append(Problem(f"{base}/UsageAllocations",
                             f"AllocatedUsageQuantity values must add up to {quantity_key}"))
    seen: set[frozenset[tuple[str, str]]] = set()
    for index, allocation in enumerate(allocations):
        tags = allocation.get("Tags", []) if isinstance(allocation, dict) else []
        key = frozenset((t.get("Key", ""), t.get("Value", "")) for t in tags if isinstance(t, dict))
        if key in seen:
            what = "only one allocation may have no tags" if not key else "repeats the tag set of an earlier allocation"
            found.append(Problem(f"{base}/UsageAllocations/{index}", what))
        seen.add(key)
    return found
