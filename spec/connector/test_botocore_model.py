"""The operations table and the schemas cannot drift from botocore's service model."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from lib.client import ENDPOINT_PREFIX, SIGNING_NAME, TARGET_PREFIX
from lib.errors import ERROR_TABLE
from lib.operations import OPERATIONS
from lib.schema import TIMESTAMP_FORMAT, json_schema

MODEL = botocore.session.get_session().get_service_model("meteringmarketplace")
# Deliberate differences, each with its reason.
RELAXED = {
    # The connector splits any number of records into calls of at most 25 (batch_max_items).
    ("BatchMeterUsage", "/UsageRecords", "maxItems"),
}


def compare(shape: Any, schema: dict[str, Any], path: str, op: str, seen: list[str]) -> None:
    """Assert that ``schema`` states exactly the constraints of the botocore ``shape``."""
    meta = shape.metadata
    kind = shape.type_name
    seen.append(path)
    if kind == "structure":
        assert schema["type"] == "object", path
        assert set(schema["properties"]) == set(shape.members), path
        assert sorted(schema.get("required", [])) == sorted(shape.required_members), path
        assert schema.get("additionalProperties") is False, path
        for name, member in shape.members.items():
            compare(member, schema["properties"][name], f"{path}/{name}", op, seen)
        return
    expected: dict[str, Any] = {}
    if kind == "string":
        expected = {"type": "string", "minLength": meta.get("min"), "maxLength": meta.get("max"),
                    "pattern": meta.get("pattern"), "enum": meta.get("enum")}
    elif kind == "integer":
        expected = {"type": "integer", "minimum": meta.get("min"), "maximum": meta.get("max")}
    elif kind == "boolean":
        expected = {"type": "boolean"}
    elif kind == "timestamp":
        expected = {"format": TIMESTAMP_FORMAT}
    elif kind == "list":
        expected = {"type": "array", "minItems": meta.get("min"), "maxItems": meta.get("max")}
        compare(shape.member, schema["items"], f"{path}/*", op, seen)
    else:  # pragma: no cover - the model has no other kinds today
        pytest.fail(f"unhandled shape kind {kind} at {path}")
    for keyword, value in expected.items():
        if (op, path, keyword) in RELAXED:
            assert keyword not in schema, f"{path}: {keyword} is relaxed on purpose"
            continue
        assert schema.get(keyword) == value, f"{op} {path}: {keyword} {schema.get(keyword)!r} != model {value!r}"


def test_given_the_model_then_the_table_covers_every_operation_with_its_protocol_constants() -> None:
    assert sorted(op.name for op in OPERATIONS.values()) == sorted(MODEL.operation_names)
    assert MODEL.metadata["signingName"] == SIGNING_NAME
    assert MODEL.metadata["endpointPrefix"] == ENDPOINT_PREFIX
    assert MODEL.metadata["targetPrefix"] == TARGET_PREFIX
    assert MODEL.metadata["protocol"] == "json" and MODEL.metadata["jsonVersion"] == "1.1"
    for op in OPERATIONS.values():
        assert op.iam_action == f"{SIGNING_NAME}:{op.name}"


@pytest.mark.parametrize("action", sorted(OPERATIONS))
def test_given_an_operation_then_its_in_schema_matches_the_model_input_shape(action: str) -> None:
    op = OPERATIONS[action]
    seen: list[str] = []
    compare(MODEL.operation_model(op.name).input_shape, json_schema(op.in_schema), "", op.name, seen)
    assert len(seen) > 1
    model_op = MODEL.operation_model(op.name)
    if op.idempotency_member:
        assert model_op.input_shape.members[op.idempotency_member].metadata.get("idempotencyToken") is True
    if op.batch_member:
        assert model_op.input_shape.members[op.batch_member].metadata["max"] == op.batch_max_items


@pytest.mark.parametrize("action", sorted(OPERATIONS))
def test_given_an_operation_then_its_out_schema_offers_every_model_output_member(action: str) -> None:
    op = OPERATIONS[action]
    out = json_schema(op.out_schema)
    shape = MODEL.operation_model(op.name).output_shape
    if op.batch_member:  # per-record results replace Results/UnprocessedRecords
        result = shape.members["Results"].member
        item = out["properties"]["Results"]["items"]["properties"]
        assert set(result.members) <= set(item)
        assert set(result.members["UsageRecord"].members) == set(item["UsageRecord"]["properties"])
        assert set(result.members["Status"].metadata["enum"]) <= set(item["Status"]["enum"])
        return
    assert set(shape.members) <= set(out["properties"])
    for name, member in shape.members.items():
        if member.type_name == "timestamp":
            assert out["properties"][name]["format"] == "date-time"


def test_given_the_model_then_every_modeled_error_is_classified_and_only_the_model_retryables_retry() -> None:
    modeled = {err.name: err for op in MODEL.operation_names for err in MODEL.operation_model(op).error_shapes}
    assert set(modeled) <= set(ERROR_TABLE)
    # metering-api.md §2.6: only throttling and the internal (server-fault) error are worth retrying
    documented_retryable = {"ThrottlingException", "InternalServiceErrorException"}
    for name, shape in modeled.items():
        fault = bool(shape.metadata.get("fault"))
        assert ERROR_TABLE[name].retryable == (fault or name in documented_retryable), name
