"""The schemas in schemas/ are the single source of validation, mapping-UI metadata and secret fields.

They are written the way the elastic.io platform reads them: every property carries its own
``"required": true``.  Standard JSON Schema wants a ``required`` array on the parent instead, so
:func:`to_json_schema` derives that view once; nothing in code restates a constraint.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Epoch numbers at or above this are milliseconds (1e11 s would be the year 5138).
_EPOCH_MS_THRESHOLD = 100_000_000_000
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|z|[+-]\d{2}:?\d{2})$"
)
_NUMERIC = re.compile(r"^\d+(\.\d+)?$")
TIMESTAMP_FORMAT = "aws-timestamp"


class TimestampError(ValueError):
    """A value that is not an ISO-8601 instant with offset, epoch seconds or epoch milliseconds."""


def parse_timestamp(value: Any) -> int:
    """Convert an accepted timestamp form to whole epoch seconds (fractions truncated, as botocore)."""
    if isinstance(value, bool):
        raise TimestampError("not a timestamp")
    if isinstance(value, str) and _NUMERIC.match(value.strip()):
        value = float(value.strip())
    if isinstance(value, (int, float)):
        if math.isnan(value) or math.isinf(value) or value < 0:
            raise TimestampError("not a timestamp")
        seconds = value / 1000 if value >= _EPOCH_MS_THRESHOLD else value
        if seconds >= 253402300800:  # year 10000
            raise TimestampError("not a timestamp")
        return int(seconds)
    if isinstance(value, str):
        match = _ISO.match(value.strip())
        if not match:
            raise TimestampError("not a timestamp")
        text = value.strip().replace("z", "Z").replace("t", "T")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        offset = match.group(8)
        if offset not in ("Z", "z") and ":" not in offset:
            text = text[: -len(offset)] + offset[:3] + ":" + offset[3:]
        try:
            parsed = datetime.fromisoformat(text.replace(" ", "T"))
        except ValueError as exc:
            raise TimestampError("not a timestamp") from exc
        return int(parsed.timestamp() // 1)
    raise TimestampError("not a timestamp")


def is_timestamp(value: Any) -> bool:
    """Format checker for ``"format": "aws-timestamp"``."""
    try:
        parse_timestamp(value)
    except TimestampError:
        return False
    return True


@lru_cache(maxsize=4096)  # a batch repeats a few hours many times
def iso_utc(epoch: float) -> str:
    """Render epoch seconds as ISO-8601 UTC with a Z."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def _load_raw(name: str) -> str:
    return (SCHEMA_DIR / name).read_text(encoding="utf-8")


def load_ui_schema(name: str) -> dict[str, Any]:
    """The schema exactly as the platform UI reads it (a fresh copy)."""
    data: dict[str, Any] = json.loads(_load_raw(name))
    return data


def to_json_schema(ui_schema: Any) -> Any:
    """Derive standard JSON Schema: per-property ``required: true`` becomes the parent's array."""
    if isinstance(ui_schema, list):
        return [to_json_schema(item) for item in ui_schema]
    if not isinstance(ui_schema, dict):
        return ui_schema
    out = {key: to_json_schema(value) for key, value in ui_schema.items() if key not in ("required", "secret")}
    if isinstance(ui_schema.get("required"), list):
        out["required"] = list(ui_schema["required"])
    props = ui_schema.get("properties")
    if isinstance(props, dict):
        marked = [name for name, prop in props.items() if isinstance(prop, dict) and prop.get("required") is True]
        if marked:
            out["required"] = sorted(set(out.get("required", [])) | set(marked), key=list(props).index)
    return out


@cache
def json_schema(name: str) -> dict[str, Any]:
    """The standard JSON Schema view of ``schemas/<name>`` (cached; do not mutate)."""
    derived: dict[str, Any] = to_json_schema(load_ui_schema(name))
    return derived


@cache
def secret_fields(name: str = "config.json") -> frozenset[str]:
    """Names of properties the schema marks ``"secret": true`` (read once per process)."""
    props = load_ui_schema(name).get("properties", {})
    return frozenset(key for key, prop in props.items() if prop.get("secret") is True)


class _Plan(NamedTuple):
    """Where in an instance the values of one format are: the members (and items) to look into.

    ``True`` for a member (or for the items) means the value there has the format itself.
    """

    members: tuple[tuple[str, _Plan | bool], ...]
    items: _Plan | bool | None


def _sub_plan(sub: Any, fmt: str) -> _Plan | bool | None:
    if not isinstance(sub, dict):
        return None
    return True if sub.get("format") == fmt else _plan_of(sub, fmt)


def _plan_of(schema: dict[str, Any], fmt: str) -> _Plan | None:
    """The plan for ``fmt`` below ``schema``; None when no value below it has that format."""
    members = tuple((key, plan) for key, sub in schema.get("properties", {}).items()
                    for plan in [_sub_plan(sub, fmt)] if plan is not None)
    items = _sub_plan(schema.get("items"), fmt)
    return _Plan(members, items) if members or items is not None else None


_PLANS: dict[tuple[int, str], tuple[dict[str, Any], _Plan | None]] = {}


def _plan(schema: dict[str, Any], fmt: str) -> _Plan | None:
    """The plan of ``schema`` (cached per schema object: the schemas of :func:`json_schema` are cached)."""
    entry = _PLANS.get((id(schema), fmt))
    if entry is None or entry[0] is not schema:
        if len(_PLANS) >= 64:
            _PLANS.clear()
        entry = _PLANS[(id(schema), fmt)] = (schema, _plan_of(schema, fmt))
    return entry[1]


def _walk(plan: _Plan, instance: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(instance, dict):
        for key, sub in plan.members:
            if key in instance:
                if sub is True:
                    yield instance, key
                elif isinstance(sub, _Plan):
                    yield from _walk(sub, instance[key])
    elif isinstance(instance, list) and plan.items is not None:
        items = plan.items
        for index, item in enumerate(instance):
            if items is True:
                yield instance, index
            elif isinstance(items, _Plan):
                yield from _walk(items, item)


def walk_format(schema: dict[str, Any], instance: Any, fmt: str) -> Iterator[tuple[Any, Any]]:
    """Yield (container, key) for every value in ``instance`` whose schema has ``format == fmt``."""
    plan = _plan(schema, fmt)
    if plan is not None:
        yield from _walk(plan, instance)


def _copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars); much cheaper than copy.deepcopy."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


def timestamps_to_epoch(schema: dict[str, Any], instance: Any) -> Any:
    """Copy ``instance`` with every aws-timestamp value turned into epoch seconds (the wire form)."""
    result = _copy(instance)
    for container, key in walk_format(schema, result, TIMESTAMP_FORMAT):
        container[key] = parse_timestamp(container[key])
    return result


def epochs_to_iso(schema: dict[str, Any], instance: Any) -> Any:
    """Turn every date-time value of a response (epoch numbers on the wire) into ISO-8601 UTC in place."""
    for container, key in walk_format(schema, instance, "date-time"):
        value = container[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            container[key] = iso_utc(value)
    return instance
