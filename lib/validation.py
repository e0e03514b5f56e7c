"""Validate inputs against the schemas and report every problem at once, by path, never by value.

The schemas in ``schemas/`` stay the single source: each one is compiled, once per process, into a tree
of small check functions for the subset of JSON Schema (draft 2020-12) the schemas use — ``type``,
``properties``, ``required``, ``additionalProperties: false``, ``items``, ``minItems``/``maxItems``,
``minLength``/``maxLength``, ``pattern``, ``minimum``/``maximum``, ``enum``, ``const``, ``format``
(only ``aws-timestamp`` is checked, as before), ``oneOf``, ``allOf``, ``not``, ``if``/``then``/``else`` —
with each keyword's semantics as the JSON Schema 2020-12 validation spec and the jsonschema package
(``jsonschema/_keywords.py``) define them. A keyword outside that subset makes compiling fail, so a schema
cannot silently gain a rule nobody checks; spec/connector/test_validation_reference.py compares every
answer with jsonschema's own on generated instances. (Compiled checks need no jsonschema import — about
50 ms at start — and run about ten times faster per message.)

Problems are phrased from the failing keyword and the *constraint*, never from the instance, which could
be a secret or customer data.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple

from . import quantity
from .errors import Problem
from .schema import TIMESTAMP_FORMAT, is_timestamp, json_schema

__all__ = ["Failure", "Problem", "batch_problems", "compiled", "describe", "failures", "problems",
           "request_problems"]


class Failure(NamedTuple):
    """One failed keyword: where (the instance path), which keyword, its value, and the schema holding it."""

    path: tuple[str | int, ...]
    keyword: str
    limit: Any
    schema: Mapping[str, Any]
    detail: Any = None  # required: the missing member; additionalProperties: the unknown members (sorted)


Path = tuple[str | int, ...]
# A check returns None when the instance passes, else its failures with paths relative to the instance
# (a parent puts its member name or item index in front): a valid instance allocates nothing.
Check = Callable[[Any], list[Failure] | None]

# Keywords that only annotate (the platform's UI reads some of them): no check.
_ANNOTATIONS = frozenset({"title", "description", "default", "deprecated", "examples", "$comment", "$schema",
                          "then", "else"})  # then/else are read by `if`
# Patterns every string matches (the botocore model writes "any string" so): no check needed.
_ANY_STRING = frozenset({"[\\s\\S]*", "^[\\s\\S]*$"})

_TYPE_WORDS = {"integer": "a whole number", "number": "a number", "string": "a string",
               "boolean": "true or false", "array": "a list", "object": "an object"}


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float or (isinstance(value, numbers.Number) and not isinstance(value, bool))


def _is_integer(value: Any) -> bool:  # draft 6 and later: 1.0 is an integer
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": _is_number,
    "integer": _is_integer,
}
_PLAIN_TYPES: dict[str, type] = {"string": str, "object": dict, "array": list, "null": type(None)}


def _equal(one: Any, two: Any) -> bool:
    """JSON equality: true and 1 differ, lists and objects compare member by member (jsonschema._utils.equal)."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return one.keys() == two.keys() and all(_equal(one[key], two[key]) for key in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


def _under(key: str | int, found: list[Failure]) -> list[Failure]:
    return [failure._replace(path=(key, *failure.path)) for failure in found]


# One builder per keyword: (keyword value, the schema holding it) -> a check, or None when it cannot fail.

def _type(value: Any, schema: Mapping[str, Any]) -> Check:
    names = value if isinstance(value, list) else [value]
    if all(name in _PLAIN_TYPES for name in names):
        kinds = tuple(_PLAIN_TYPES[name] for name in names)

        def check_plain(instance: Any) -> list[Failure] | None:
            return None if isinstance(instance, kinds) else [Failure((), "type", value, schema)]
        return check_plain
    tests = [_TYPES[name] for name in names]
    test = tests[0] if len(tests) == 1 else lambda instance: any(test(instance) for test in tests)
    if len(tests) == 2:
        first, second = tests
        test = lambda instance: first(instance) or second(instance)  # noqa: E731

    def check(instance: Any) -> list[Failure] | None:
        return None if test(instance) else [Failure((), "type", value, schema)]
    return check


def _properties(value: Any, schema: Mapping[str, Any]) -> Check:
    members = [(name, _compile(sub)) for name, sub in value.items()]
    members = [(name, sub) for name, sub in members if sub is not _nothing]
    missing = object()

    def check(instance: Any) -> list[Failure] | None:
        if not isinstance(instance, dict):
            return None
        found = None
        for name, sub in members:
            member = instance.get(name, missing)
            if member is not missing:
                failed = sub(member)
                if failed:
                    found = _under(name, failed) + (found or [])
        return found
    return check


def _required(value: Any, schema: Mapping[str, Any]) -> Check | None:
    names = list(value)
    if not names:
        return None

    def check(instance: Any) -> list[Failure] | None:
        if not isinstance(instance, dict):
            return None
        for name in names:
            if name not in instance:
                return [Failure((name,), "required", value, schema, name) for name in names if name not in instance]
        return None
    return check


def _additional_properties(value: Any, schema: Mapping[str, Any]) -> Check:
    if value is not False or "patternProperties" in schema:
        raise ValueError("only additionalProperties: false (without patternProperties) is supported")
    allowed = frozenset(schema.get("properties", {}))

    def check(instance: Any) -> list[Failure] | None:
        if isinstance(instance, dict) and not allowed.issuperset(instance):
            extra = sorted((key for key in instance if key not in allowed), key=str)
            return [Failure((), "additionalProperties", value, schema, extra)]
        return None
    return check


def _items(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if not isinstance(value, dict) or "prefixItems" in schema:
        raise ValueError("only items with one schema (no prefixItems) is supported")
    sub = _compile(value)
    if sub is _nothing:
        return None

    def check(instance: Any) -> list[Failure] | None:
        if not isinstance(instance, list):
            return None
        found = None
        for index, item in enumerate(instance):
            failed = sub(item)
            if failed:
                found = (found or []) + _under(index, failed)
        return found
    return check


def _bound(keyword: str, applies: Callable[[Any], bool], fails: Callable[[Any, Any], bool],
           never: Any = None) -> Callable[[Any, Mapping[str, Any]], Check | None]:
    def build(value: Any, schema: Mapping[str, Any]) -> Check | None:
        if never is not None and value == never:
            return None  # minLength 0, minItems 0

        def check(instance: Any) -> list[Failure] | None:
            if applies(instance) and fails(instance, value):
                return [Failure((), keyword, value, schema)]
            return None
        return check
    return build


def _pattern(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if value in _ANY_STRING:
        return None
    search = re.compile(value).search

    def check(instance: Any) -> list[Failure] | None:
        if isinstance(instance, str) and not search(instance):
            return [Failure((), "pattern", value, schema)]
        return None
    return check


def _enum(value: Any, schema: Mapping[str, Any]) -> Check:
    options = list(value)

    def check(instance: Any) -> list[Failure] | None:
        if not any(_equal(option, instance) for option in options):
            return [Failure((), "enum", value, schema)]
        return None
    return check


def _const(value: Any, schema: Mapping[str, Any]) -> Check:
    def check(instance: Any) -> list[Failure] | None:
        return None if _equal(instance, value) else [Failure((), "const", value, schema)]
    return check


def _format(value: Any, schema: Mapping[str, Any]) -> Check | None:
    if value != TIMESTAMP_FORMAT:
        return None  # other formats (date-time in the output schemas) annotate only

    def check(instance: Any) -> list[Failure] | None:
        return None if is_timestamp(instance) else [Failure((), "format", value, schema)]
    return check


def _one_of(value: Any, schema: Mapping[str, Any]) -> Check:
    branches = [_compile(sub) for sub in value]

    def check(instance: Any) -> list[Failure] | None:
        passed = 0
        for branch in branches:
            if not branch(instance):
                passed += 1
        return None if passed == 1 else [Failure((), "oneOf", value, schema)]
    return check


def _all_of(value: Any, schema: Mapping[str, Any]) -> Check:
    return _together([_compile(sub) for sub in value])


def _not(value: Any, schema: Mapping[str, Any]) -> Check:
    negated = _compile(value)

    def check(instance: Any) -> list[Failure] | None:
        return None if negated(instance) else [Failure((), "not", value, schema)]
    return check


def _if(value: Any, schema: Mapping[str, Any]) -> Check:
    condition = _compile(value)
    then = _compile(schema["then"]) if "then" in schema else _nothing
    otherwise = _compile(schema["else"]) if "else" in schema else _nothing

    def check(instance: Any) -> list[Failure] | None:
        return otherwise(instance) if condition(instance) else then(instance)
    return check


_KEYWORDS: dict[str, Callable[[Any, Mapping[str, Any]], Check | None]] = {
    "type": _type, "properties": _properties, "required": _required,
    "additionalProperties": _additional_properties, "items": _items,
    "minItems": _bound("minItems", lambda v: isinstance(v, list), lambda v, n: len(v) < n, never=0),
    "maxItems": _bound("maxItems", lambda v: isinstance(v, list), lambda v, n: len(v) > n),
    "minLength": _bound("minLength", lambda v: isinstance(v, str), lambda v, n: len(v) < n, never=0),
    "maxLength": _bound("maxLength", lambda v: isinstance(v, str), lambda v, n: len(v) > n),
    "minimum": _bound("minimum", _is_number, lambda v, n: v < n),
    "maximum": _bound("maximum", _is_number, lambda v, n: v > n),
    "pattern": _pattern, "enum": _enum, "const": _const, "format": _format,
    "oneOf": _one_of, "allOf": _all_of, "not": _not, "if": _if,
}


def _nothing(instance: Any) -> list[Failure] | None:
    return None


def _together(checks: list[Check]) -> Check:
    """One check running ``checks`` on the same instance and joining their failures."""
    checks = [check for check in checks if check is not _nothing]
    if not checks:
        return _nothing
    if len(checks) == 1:
        return checks[0]

    def node(instance: Any) -> list[Failure] | None:
        found = None
        for check in checks:
            failed = check(instance)
            if failed:
                found = failed if found is None else found + failed
        return found
    return node


_LEAF = frozenset({"type", "minLength", "maxLength", "pattern", "minimum", "maximum", "format"})


def _leaf(schema: Mapping[str, Any]) -> Check:
    """A scalar's checks fused into one function (the same rules as the keywords' own checks)."""
    kind = _type(schema["type"], schema) if "type" in schema else _nothing
    min_length, max_length = schema.get("minLength", 0), schema.get("maxLength")
    pattern = schema.get("pattern")
    search = re.compile(pattern).search if pattern is not None and pattern not in _ANY_STRING else None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    bounded = minimum is not None or maximum is not None
    timestamp = schema.get("format") == TIMESTAMP_FORMAT

    def check(instance: Any) -> list[Failure] | None:
        found = kind(instance)
        if timestamp and not is_timestamp(instance):
            found = [*(found or []), Failure((), "format", TIMESTAMP_FORMAT, schema)]
        if isinstance(instance, str):
            if len(instance) < min_length:
                found = [*(found or []), Failure((), "minLength", min_length, schema)]
            if max_length is not None and len(instance) > max_length:
                found = [*(found or []), Failure((), "maxLength", max_length, schema)]
            if search is not None and not search(instance):
                found = [*(found or []), Failure((), "pattern", pattern, schema)]
        elif bounded and _is_number(instance):
            if minimum is not None and instance < minimum:
                found = [*(found or []), Failure((), "minimum", minimum, schema)]
            if maximum is not None and instance > maximum:
                found = [*(found or []), Failure((), "maximum", maximum, schema)]
        return found
    return check


def _compile(schema: Any) -> Check:
    """The check of one schema node; raises ValueError on a keyword this module does not implement."""
    if schema is True or schema == {}:
        return _nothing
    if not isinstance(schema, dict):
        raise ValueError(f"unsupported schema {type(schema).__name__}")
    unknown = sorted(set(schema) - set(_KEYWORDS) - _ANNOTATIONS)
    if unknown:
        raise ValueError(f"unsupported JSON Schema keyword(s) {', '.join(unknown)}")
    rules = set(schema) - _ANNOTATIONS
    if rules and rules <= _LEAF:
        return _leaf(schema)
    return _together([check for key, value in schema.items() if key in _KEYWORDS
                      for check in [_KEYWORDS[key](value, schema)] if check is not None])


@cache
def compiled(schema_name: str) -> Check:
    """The compiled check of ``schemas/<schema_name>`` (cached per process)."""
    return _compile(json_schema(schema_name))


def failures(schema_name: str, instance: Any) -> list[Failure]:
    """Every failed keyword of ``instance`` (empty when valid), in no particular order."""
    return compiled(schema_name)(instance) or []


def _path(parts: Sequence[str | int]) -> str:
    return "/" + "/".join(str(part) for part in parts) if parts else "/"


_PHRASES = {
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


def _describe(failure: Failure) -> tuple[str, str]:
    """Return (path, problem) phrased from the constraint only."""
    kind, limit, path = failure.keyword, failure.limit, _path(failure.path)
    if kind == "required":
        return path, "is required"
    if kind == "additionalProperties":
        # Field names are schema vocabulary chosen by the mapping, not values; still cap their length.
        names = ", ".join(str(name)[:64] for name in failure.detail)
        return path, f"unknown member(s) {names}; member names are case-sensitive"
    if kind == "oneOf":
        options = [" + ".join(branch.get("required", [])) for branch in limit if isinstance(branch, dict)]
        return path, "needs exactly one of " + ", ".join(options)
    if kind == "type":
        words = limit if isinstance(limit, list) else [limit]
        text = "must be " + " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in words)
        return path, text + _quantity_hint(failure.path)
    if kind == "format" and limit == TIMESTAMP_FORMAT:
        return path, "must be ISO-8601 with an offset or Z, epoch seconds or epoch milliseconds"
    if kind in _PHRASES:
        return path, _PHRASES[kind].format(limit)
    return path, f"fails the {kind} constraint"


def _quantity_hint(parts: Sequence[str | int]) -> str:
    """A pointer to the decimal member when a quantity member got the wrong type."""
    name = str(parts[-1]) if parts else ""
    for members in (quantity.RECORD, quantity.REQUEST, quantity.ALLOCATION):
        if name == members.whole:
            return f"; for fractional usage give {members.decimal} instead, as a string such as \"2.5\""
        if name == members.decimal:
            return " such as \"17.42\" (a JSON number could lose digits; in a mapping use $string(...))"
    return ""


def problems(schema_name: str, instance: Any) -> list[Problem]:
    """Every schema problem of ``instance``, one per path, sorted by path (empty when valid)."""
    found = failures(schema_name, instance)
    return describe(found) if found else []


def describe(found: Sequence[Failure]) -> list[Problem]:
    """The failures as problems: one per path (its texts joined), sorted by path."""
    by_path: dict[str, set[str]] = {}
    for failure in found:
        path, text = _describe(failure)
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
