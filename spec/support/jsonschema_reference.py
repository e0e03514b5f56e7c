"""jsonschema (draft 2020-12) as the reference for the connector's compiled validators (lib/validation.py).

Tests check outputs against the schemas with the real jsonschema, and compare every answer of the
compiled checks with jsonschema's own failures on the same instances.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from lib.schema import TIMESTAMP_FORMAT, is_timestamp, json_schema
from lib.validation import Failure

_FORMATS = FormatChecker(formats=())
_FORMATS.checks(TIMESTAMP_FORMAT)(is_timestamp)
_REQUIRED_NAME = re.compile(r"^'(.*)' is a required property$")


@cache
def reference_validator(schema_name: str) -> Draft202012Validator:
    """jsonschema's validator for ``schemas/<schema_name>``, with the connector's timestamp format."""
    return Draft202012Validator(json_schema(schema_name), format_checker=_FORMATS)


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
