"""The emulator's model (``metering_emulator.model``) and operation catalogue (``metering_emulator.catalogue``)
cannot drift from botocore's: every operation, shape name, member, shape kind, constraint, deprecation,
idempotency token and modeled error of the installed botocore ``meteringmarketplace`` model (1.44.8 or
newer) is known to the emulator, and nothing else is."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import botocore
import botocore.session
import pytest
from botocore.model import ServiceModel
from metering_emulator import catalogue, model


def _load_model() -> Any:
    """botocore's installed model, or the file ``METERING_MODEL`` names (set by scripts/api-drift.sh)."""
    path = os.environ.get("METERING_MODEL")
    if not path:
        return botocore.session.get_session().get_service_model("meteringmarketplace")
    opener: Any = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return ServiceModel(json.load(handle), service_name="meteringmarketplace")


MODEL = _load_model()
_KINDS = {"structure", "list", "string", "integer", "boolean", "timestamp"}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def _member_traits(structure: Any, name: str) -> dict[str, Any]:
    """A member's own traits (``deprecated`` lives on the member reference, not on its target shape)."""
    return dict(structure._shape_model["members"][name])


def compare(shape: Any, ours: dict[str, Any], path: str, problems: list[str]) -> None:
    """Collect every difference between a botocore shape and the emulator's shape."""
    kind = shape.type_name
    if kind not in _KINDS:  # pragma: no cover - the model has no other kinds today
        problems.append(f"{path}: shape kind {kind} unknown to the emulator")
        return
    if ours.get("type") != kind:
        problems.append(f"{path}: type {ours.get('type')!r} != model {kind!r}")
        return
    meta = shape.metadata
    if kind == "structure":
        if set(ours["members"]) != set(shape.members):
            problems.append(f"{path}: members {sorted(ours['members'])} != model {sorted(shape.members)}")
        if sorted(ours.get("required", [])) != sorted(shape.required_members):
            problems.append(f"{path}: required {ours.get('required')} != model {shape.required_members}")
        for name, member in shape.members.items():
            if name in ours["members"]:
                mine = ours["members"][name]
                compare(member, mine, f"{path}.{name}", problems)
                traits = {**member.metadata, **_member_traits(shape, name)}
                for flag in ("deprecated", "idempotencyToken"):
                    if bool(traits.get(flag)) != bool(mine.get(flag)):
                        problems.append(f"{path}.{name}: {flag} {mine.get(flag)!r} != model {traits.get(flag)!r}")
        return
    for key in ("min", "max", "pattern", "enum"):
        if meta.get(key) != ours.get(key):
            problems.append(f"{path}: {key} {ours.get(key)!r} != model {meta.get(key)!r}")
    if kind == "list":
        compare(shape.member, ours["member"], f"{path}[]", problems)


def test_the_installed_botocore_is_at_least_1_44_8() -> None:
    assert _version(botocore.__version__) >= (1, 44, 8)


def test_the_emulator_knows_every_operation() -> None:
    assert sorted(catalogue.OPERATIONS) == sorted(catalogue.NAMES) == sorted(MODEL.operation_names)


def test_the_catalogue_names_the_model_shapes_and_model_py_holds_only_those() -> None:
    named = {(op.name, op.input_shape, op.output_shape) for op in catalogue.OPERATIONS.values()}
    assert named == {(name, MODEL.operation_model(name).input_shape.name, MODEL.operation_model(name).output_shape.name)
                     for name in MODEL.operation_names}
    assert set(model.SHAPES) == {shape for _, i, o in named for shape in (i, o)}


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_the_request_shape_matches_the_model(operation: str) -> None:
    problems: list[str] = []
    shape = model.SHAPES[catalogue.OPERATIONS[operation].input_shape]
    compare(MODEL.operation_model(operation).input_shape, shape, operation, problems)
    assert problems == []


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_the_response_shape_matches_the_model(operation: str) -> None:
    problems: list[str] = []
    shape = model.SHAPES[catalogue.OPERATIONS[operation].output_shape]
    compare(MODEL.operation_model(operation).output_shape, shape, operation, problems)
    assert problems == []


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_the_modeled_errors_match_the_model(operation: str) -> None:
    ours = catalogue.OPERATIONS[operation].errors
    assert sorted(ours) == sorted(e.name for e in MODEL.operation_model(operation).error_shapes)


def test_the_deprecated_whole_number_members_are_still_known_and_marked() -> None:
    deprecated = {(op, name) for op in MODEL.operation_names for name in
                  MODEL.operation_model(op).input_shape.members
                  if _member_traits(MODEL.operation_model(op).input_shape, name).get("deprecated")}
    assert ("MeterUsage", "UsageQuantity") in deprecated
    for op, name in deprecated:
        assert model.SHAPES[catalogue.OPERATIONS[op].input_shape]["members"][name].get("deprecated") is True


def test_the_compare_function_detects_a_drift() -> None:
    ours = model.SHAPES["MeterUsageRequest"]
    drifted = {**ours, "members": dict(ours["members"])}
    del drifted["members"]["UsageQuantityAsDecimal"]
    drifted["members"]["UsageQuantity"] = {"type": "integer", "min": 0, "max": 2147483647}
    problems: list[str] = []
    compare(MODEL.operation_model("MeterUsage").input_shape, drifted, "MeterUsage", problems)
    assert any("members" in p for p in problems)
    assert any("UsageQuantity: deprecated" in p for p in problems)
