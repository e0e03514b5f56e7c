"""Reading a fixtures document field by field: each reader appends what is wrong to ``errors`` (with the
path of the field) and carries on, so that one FixtureError can list every problem at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def string(obj: dict[str, Any], key: str, where: str, errors: list[str], required: bool = True) -> str | None:
    """``obj[key]`` when it is a non-empty string; None (and a problem, unless optional and absent) else."""
    value = obj.get(key)
    if value is None:
        if required:
            errors.append(f"{where}.{key}: required string is missing")
        return None
    if not isinstance(value, str) or not value:
        errors.append(f"{where}.{key}: must be a non-empty string")
        return None
    return value


def items(doc: dict[str, Any], key: str, errors: list[str], where: str = "") -> Iterator[tuple[str, Any]]:
    """The items of the array ``doc[key]`` (absent: none) with their paths, ``where.key[i]``."""
    path = f"{where}.{key}" if where else key
    values = doc.get(key, [])
    if not isinstance(values, list):
        errors.append(f"{path}: must be an array")
        return
    for i, value in enumerate(values):
        yield f"{path}[{i}]", value


def objects(doc: dict[str, Any], key: str, errors: list[str], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """The objects of the array ``doc[key]`` with their paths; what is not an object is reported and skipped."""
    for path, value in items(doc, key, errors, where):
        if isinstance(value, dict):
            yield path, value
        else:
            errors.append(f"{path}: must be an object")


def parsed(doc: dict[str, Any], key: str, errors: list[str],
           parse: Callable[[dict[str, Any], str, list[str]], T | None]) -> list[T]:
    """``parse(object, path, errors)`` of every object of the array ``doc[key]``, those it could build."""
    return [value for value in (parse(obj, path, errors) for path, obj in objects(doc, key, errors))
            if value is not None]
