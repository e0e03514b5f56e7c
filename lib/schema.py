"""The schemas in schemas/ are the single source of validation, mapping-UI metadata and secret fields.

They are written the way the elastic.io platform reads them: every property carries its own
``"required": true``.  Standard JSON Schema wants a ``required`` array on the parent instead, so
:func:`to_json_schema` derives that view once; nothing in code restates a constraint.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

# Epoch numbers at or above this are milliseconds (1e11 s would be the year 5138).
_EPOCH_MS_THRESHOLD = 100_000_000_000
_MAX_EPOCH = 253_402_300_800  # 10000-01-01T00:00:00Z: later instants are refused
_MAX_EPOCH_MS = _MAX_EPOCH * 1000
# 0001-01-01T00:00:00Z: an ISO text with an offset can name an instant before it ("0001-01-01T00:30:00+01:00"),
# or from 10000 on ("9999-12-31T23:59:59-01:00"), which no output could render back as ISO-8601 UTC
_MIN_TEXT_EPOCH = -62_135_596_800
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|z|[+-]\d{2}(?::?\d{2})?)$"
)
_NUMERIC = re.compile(r"^\d+(\.\d+)?$")
TIMESTAMP_FORMAT = "aws-timestamp"


class TimestampError(ValueError):
    """A value that is not an ISO-8601 instant with offset, epoch seconds or epoch milliseconds."""


def parse_timestamp(value: Any) -> int:
    """Convert an accepted timestamp form to whole epoch seconds (fractions truncated, as botocore)."""
    if type(value) is int and 0 <= value < _EPOCH_MS_THRESHOLD:
        return value  # epoch seconds already (the common case, and what the wire carries)
    if isinstance(value, str):
        return _parse_text(value)
    return _parse_number(value)


def _parse_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TimestampError("not a timestamp")
    if value >= _MAX_EPOCH_MS or value < 0 or math.isnan(value):  # (checked before any float arithmetic: JSON
        raise TimestampError("not a timestamp")                   # integers of any length are ints here)
    seconds = value // 1000 if value >= _EPOCH_MS_THRESHOLD else value  # floor division: exact for an int
    if seconds >= _MAX_EPOCH:
        raise TimestampError("not a timestamp")
    return int(seconds)


def _parse_digits(text: str) -> int:
    """Epoch seconds of a numeric text, its fraction truncated exactly: through a float, "1796695199.9999999"
    (the hour's last second) would round up into the next hour."""
    value = Decimal(text)
    if value >= _MAX_EPOCH_MS:
        raise TimestampError("not a timestamp")
    seconds = int(value // 1000 if value >= _EPOCH_MS_THRESHOLD else value)
    if seconds >= _MAX_EPOCH:
        raise TimestampError("not a timestamp")
    return seconds


@lru_cache(maxsize=4096)  # the texts of a flow repeat (a few hours, many records): each is parsed once
def _parse_text(value: str) -> int:
    """Epoch seconds of a timestamp text (a refused text raises every time: exceptions are not cached)."""
    text = value.strip()
    if _NUMERIC.match(text):
        return _parse_digits(text)
    match = _ISO.match(text)
    if not match:
        raise TimestampError("not a timestamp")
    text = text.replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    offset = match.group(8)
    if offset not in ("Z", "z") and ":" not in offset:  # "+0530" or hours only, "+05" (as PostgreSQL prints)
        text = text[: -len(offset)] + offset[:3] + ":" + (offset[3:] or "00")
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError as exc:
        raise TimestampError("not a timestamp") from exc
    epoch = int(parsed.timestamp() // 1)
    if not _MIN_TEXT_EPOCH <= epoch < _MAX_EPOCH:
        raise TimestampError("not a timestamp")
    return epoch


def is_timestamp(value: Any) -> bool:
    """Format checker for ``"format": "aws-timestamp"``."""
    try:
        parse_timestamp(value)
    except TimestampError:
        return False
    return True


@lru_cache(maxsize=4096)  # a batch repeats a few hours many times
def iso_utc(epoch: float) -> str:
    """Render epoch seconds as ISO-8601 UTC with a Z (four-digit years: strftime's %Y writes the year 1 as "1")."""
    return datetime.fromtimestamp(epoch, tz=UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


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


# Converters: what a format's values become on the way in (aws-timestamp -> epoch seconds) and out
# (date-time epochs -> ISO-8601). Each schema is compiled once into nested functions that visit only the
# members and items whose schema has the format somewhere below it, so a message costs one pass over those
# values and nothing for the rest (this runs on every message: keep it free of generators and deep copies).
Convert = Callable[[Any], Any]


def _converter(schema: Any, fmt: str, fn: Convert, copy: bool) -> Convert | None:
    """The converter of ``schema`` for ``fmt``, or None when no value below it has that format.

    It returns the converted instance. ``copy``: the containers on the way to a converted value are copied
    (everything else is shared with the input); otherwise they are changed in place.
    """
    if not isinstance(schema, dict):
        return None
    if schema.get("format") == fmt:
        return fn
    members = tuple((key, sub) for key, prop in schema.get("properties", {}).items()
                    for sub in [_converter(prop, fmt, fn, copy)] if sub is not None)
    items = _converter(schema.get("items"), fmt, fn, copy)
    if not members and items is None:
        return None

    def convert(instance: Any) -> Any:
        if members and isinstance(instance, dict):
            out = dict(instance) if copy else instance
            for key, sub in members:
                if key in out:
                    out[key] = sub(out[key])
            return out
        if items is not None and isinstance(instance, list):
            if copy:
                return [items(item) for item in instance]
            for index, item in enumerate(instance):
                instance[index] = items(item)
        return instance
    return convert


_CONVERTERS: dict[tuple[int, str, bool], tuple[dict[str, Any], Convert | None]] = {}


def _converter_of(schema: dict[str, Any], fmt: str, fn: Convert, copy: bool) -> Convert | None:
    """The cached converter of ``schema`` (per schema object: the schemas of :func:`json_schema` are cached)."""
    key = (id(schema), fmt, copy)
    entry = _CONVERTERS.get(key)
    if entry is None or entry[0] is not schema:
        if len(_CONVERTERS) >= 64:
            _CONVERTERS.clear()
        entry = _CONVERTERS[key] = (schema, _converter(schema, fmt, fn, copy))
    return entry[1]


def timestamps_to_epoch(schema: dict[str, Any], instance: Any) -> Any:
    """A copy of ``instance`` with every aws-timestamp value turned into epoch seconds (the wire form).

    The top-level object and the containers on the way to a timestamp are copied; other values are shared
    with ``instance``, which is read, never changed (the runner rewrites only what it copied).
    """
    convert = _converter_of(schema, TIMESTAMP_FORMAT, parse_timestamp, True)
    result = convert(instance) if convert is not None else instance
    return dict(result) if result is instance and isinstance(result, dict) else result


def _iso_of_epoch(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return iso_utc(value)
    return value


def epochs_to_iso(schema: dict[str, Any], instance: Any) -> Any:
    """Turn every date-time value of a response (epoch numbers on the wire) into ISO-8601 UTC in place."""
    convert = _converter_of(schema, "date-time", _iso_of_epoch, False)
    return convert(instance) if convert is not None else instance
