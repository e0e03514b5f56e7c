"""jsonschema (draft 2020-12) as the reference for the connector's compiled validators (lib/validation.py).

Tests check outputs against the schemas with the real jsonschema, and compare every answer of the
compiled checks with jsonschema's own failures on the same instances.

One keyword is given the spec's meaning where jsonschema departs from it: ``pattern``. JSON Schema patterns are
ECMA-262 regexes, whose ``$`` (no multiline flag) matches only at the very end of the string; jsonschema runs
them through Python's ``re.search``, where ``$`` also matches before a trailing newline (``"17\\n"`` would pass
``^[0-9]+$``, and AWS refuses it). :data:`ReferenceValidator` is Draft 2020-12 with ``pattern`` searching
:func:`lib.validation.ecma_regex`'s translation instead, so on strings ending in a newline the reference states
the ECMA answer; every other keyword is jsonschema's own. The translation itself is checked against stated
ECMA answers in spec/connector/test_validation.py (and plain jsonschema's differing answer there too).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from lib.schema import TIMESTAMP_FORMAT, is_timestamp, json_schema
from lib.validation import Failure, ecma_regex

_FORMATS = FormatChecker(formats=())
_FORMATS.checks(TIMESTAMP_FORMAT)(is_timestamp)
_REQUIRED_NAME = re.compile(r"^'(.*)' is a required property$")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """jsonschema's ``pattern`` keyword (jsonschema/_keywords.py) with the ECMA-262 meaning of ``$``."""
    if validator.is_type(instance, "string") and not re.search(ecma_regex(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


ReferenceValidator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


@cache
def reference_validator(schema_name: str) -> Draft202012Validator:
    """The reference validator for ``schemas/<schema_name>``, with the connector's timestamp format."""
    validator: Draft202012Validator = ReferenceValidator(json_schema(schema_name), format_checker=_FORMATS)
    return validator


def reference_failures(schema_name: str, instance: Any) -> list[Failure]:
    """jsonschema's errors for ``instance`` as :class:`lib.validation.Failure` (same fields, same meaning)."""
    out = []
    for err in reference_validator(schema_name).iter_errors(instance):
        path = tuple(err.absolute_path)
        detail: Any = None
        if err.validator == "required":
            named = _REQUIRED_NAME.match(err.message)
            detail = named.group(1) if named else "?"
            path = (*path, detail)
        elif err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {})) if isinstance(err.schema, dict) else set()
            detail = sorted((k for k in err.instance if k not in allowed), key=str)
        out.append(Failure(path, str(err.validator), err.validator_value, err.schema, detail))
    return out
