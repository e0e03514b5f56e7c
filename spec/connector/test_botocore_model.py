"""The operations table and the schemas cannot drift from botocore's service model.

The model is botocore's installed one (pinned in requirements-dev.txt, at least 1.44.8: the late-2026
API), or the file named by ``METERING_MODEL`` (``scripts/api-drift.sh`` sets it to the newest botocore's
model, to see what the next API change would break).
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import botocore
import botocore.loaders
import pytest
from botocore.model import ServiceModel

from lib.client import ENDPOINT_PREFIX, SIGNING_NAME, TARGET_PREFIX
from lib.errors import ERROR_TABLE
from lib.operations import OPERATIONS
from lib.schema import TIMESTAMP_FORMAT, json_schema


def load_raw_model() -> dict[str, Any]:
    """The raw service-2 document: ``METERING_MODEL`` (.json or .json.gz) or botocore's own."""
    path = os.environ.get("METERING_MODEL")
    if path:
        opener: Any = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            raw: dict[str, Any] = json.load(handle)
            return raw
    loaded: dict[str, Any] = botocore.loaders.Loader().load_service_model("meteringmarketplace", "service-2")
    return loaded


RAW = load_raw_model()
MODEL = ServiceModel(RAW, service_name="meteringmarketplace")
# Deliberate differences, each with its reason.
RELAXED = {
    # The connector splits any number of records into calls of at most 25 (batch_max_items).
    ("BatchMeterUsage", "/UsageRecords", "maxItems"),
}


REVIEWED_SHAPES = {
    "AgreementId", "AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimalString", "BatchMeterUsageRequest",
    "BatchMeterUsageResult", "Boolean", "ClientToken", "CustomerAWSAccountId", "CustomerIdentifier",
    "CustomerNotEntitledException", "DisabledApiException", "DuplicateRequestException", "ExpiredTokenException",
    "IdempotencyConflictException", "InternalServiceErrorException", "InvalidCustomerIdentifierException",
    "InvalidEndpointRegionException", "InvalidLicenseException", "InvalidProductCodeException",
    "InvalidPublicKeyVersionException", "InvalidRegionException", "InvalidTagException", "InvalidTokenException",
    "InvalidUsageAllocationsException", "InvalidUsageDimensionException", "LicenseArn", "Metadata",
    "MeterUsageRequest", "MeterUsageResult", "NonEmptyString", "Nonce", "PlatformNotSupportedException",
    "ProductCode", "RegisterUsageRequest", "RegisterUsageResult", "ResolveCustomerRequest", "ResolveCustomerResult",
    "String", "Tag", "TagKey", "TagList", "TagValue", "ThrottlingException", "Timestamp",
    "TimestampOutOfBoundsException", "UsageAllocation", "UsageAllocations", "UsageDimension", "UsageQuantity",
    "UsageQuantityAsDecimalString", "UsageRecord", "UsageRecordList", "UsageRecordResult", "UsageRecordResultList",
    "UsageRecordResultStatus", "VersionInteger", "errorMessage",
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
            deprecated = bool(RAW["shapes"][shape.name]["members"][name].get("deprecated"))
            assert bool(schema["properties"][name].get("deprecated")) == deprecated, f"{path}/{name}: deprecated"
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


def test_given_no_model_override_then_botocore_is_at_least_the_late_2026_api() -> None:
    if os.environ.get("METERING_MODEL"):
        return  # the drift command compares against another model on purpose
    version = tuple(int(part) for part in botocore.__version__.split(".")[:3])
    assert version >= (1, 44, 8), botocore.__version__


def test_given_the_model_then_it_has_no_shape_the_connector_has_not_reviewed() -> None:
    # Every shape of the model, by name: a new one (a new member type, error or operation) fails here
    # until someone has read it and mapped it in schemas/, lib/errors.py or lib/operations.py.
    assert set(RAW["shapes"]) == REVIEWED_SHAPES


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


def offers(shape: Any, schema: dict[str, Any], path: str) -> None:
    """Assert that the output ``schema`` has a property for every member of ``shape``, nested ones too."""
    if shape.type_name == "structure":
        assert set(shape.members) <= set(schema.get("properties", {})), f"{path}: {set(shape.members)}"
        for name, member in shape.members.items():
            offers(member, schema["properties"][name], f"{path}/{name}")
    elif shape.type_name == "list":
        offers(shape.member, schema["items"], f"{path}/*")
    elif shape.type_name == "timestamp":
        assert schema.get("format") == "date-time", path
    elif "enum" in shape.metadata:
        assert set(shape.metadata["enum"]) <= set(schema["enum"]), path


@pytest.mark.parametrize("action", sorted(OPERATIONS))
def test_given_an_operation_then_its_out_schema_offers_every_model_output_member(action: str) -> None:
    op = OPERATIONS[action]
    out = json_schema(op.out_schema)
    shape = MODEL.operation_model(op.name).output_shape
    if op.batch_member:  # per-record results replace Results/UnprocessedRecords
        result = shape.members["Results"].member
        for schema in (out["properties"]["Results"]["items"], json_schema("batchMeterUsage.record.out.json")):
            offers(result, schema, f"{op.name}/Results/*")
            # The echo is the incoming record: the same members as the input record shape.
            assert set(result.members["UsageRecord"].members) == set(schema["properties"]["UsageRecord"]["properties"])
        return
    offers(shape, out, op.name)


def test_given_the_model_then_every_modeled_error_is_classified_and_only_the_model_retryables_retry() -> None:
    modeled = {err.name: err for op in MODEL.operation_names for err in MODEL.operation_model(op).error_shapes}
    assert set(modeled) <= set(ERROR_TABLE)
    # docs/metering-api.md, "Errors": only throttling and the internal (server-fault) error are worth retrying
    documented_retryable = {"ThrottlingException", "InternalServiceErrorException"}
    for name, shape in modeled.items():
        fault = bool(shape.metadata.get("fault"))
        assert ERROR_TABLE[name].retryable == (fault or name in documented_retryable), name
