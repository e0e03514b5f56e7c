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

from lib.batch import MONTH_END_GRACE, window_bounds
from lib.client import ENDPOINT_PREFIX, SIGNING_NAME, TARGET_PREFIX
from lib.errors import ERROR_TABLE, classify
from lib.operations import OPERATIONS
from lib.options import StepOptions
from lib.schema import TIMESTAMP_FORMAT, json_schema, load_ui_schema, timestamps_to_epoch
from spec.support import model_docs


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
    for name in modeled:
        fault = bool(RAW["shapes"][name].get("fault"))  # not among botocore's Shape.metadata attributes
        assert ERROR_TABLE[name].retryable == (fault or name in documented_retryable), name


def test_given_the_model_documentation_then_every_error_code_it_names_is_classified_as_documented() -> None:
    """Codes the documentation names but the model has no shape for (RegisterUsage's
    CustomerNotSubscribedException) are classified too, not left to "unexpected error"."""
    import re

    named = {code for op in MODEL.operation_names
             for code in re.findall(r"<code>(\w+Exception)</code>", MODEL.operation_model(op).documentation or "")}
    assert "CustomerNotSubscribedException" in named
    assert named <= set(ERROR_TABLE), sorted(named - set(ERROR_TABLE))
    subscribed = ERROR_TABLE["CustomerNotSubscribedException"]
    assert (subscribed.retryable, subscribed.kind) == (False, "permission") and "subscribed" in subscribed.hint


# ---- modeled errors: HTTP status, fault/exception flags, members -----------------------------------------------

# What lib/errors.py and lib/client.py were reviewed against: every modeled error is a client error (HTTP 400, no
# ``fault``) except these. The status matters to the connector where a reply is classified by it: lib/client.py
# takes the status as the code when a reply has no ``__type``, and lib/errors.classify retries an unrecognised
# code at 5xx and 429 (403/404/405: wrong endpoint). A modeled error moving to another status (429 for
# throttling, 409 for a conflict, a 5xx) means reviewing its ERROR_TABLE entry and that fallback, then this table.
REVIEWED_ERROR_STATUS = {"InternalServiceErrorException": 500}
REVIEWED_FAULTS = {"InternalServiceErrorException"}
# The members of an error body lib/client.py reads (MeteringClient._error: ``__type``, then ``message``); a new
# member (say a retry-after hint) is something the connector ignores until someone decides what it means.
REVIEWED_ERROR_MEMBERS = {"message"}
_MODELED_ERRORS = sorted({err.name for op in MODEL.operation_names for err in MODEL.operation_model(op).error_shapes})


@pytest.mark.parametrize("name", _MODELED_ERRORS)
def test_given_a_modeled_error_then_its_status_and_flags_are_those_the_connector_was_reviewed_for(name: str) -> None:
    raw = RAW["shapes"][name]
    status, source = model_docs.error_status(raw)
    reviewed = REVIEWED_ERROR_STATUS.get(name, 400)
    problems: list[str] = []
    if status != reviewed:
        problems.append(
            f"{name}: HTTP status {status} in the model ({source}), the connector was reviewed for {reviewed}: "
            f"lib/errors.classify treats an unknown code at {status} as {classify('', status).kind} "
            f"(retryable={classify('', status).retryable}) and ERROR_TABLE[{name!r}] says {ERROR_TABLE[name].kind} "
            f"(retryable={ERROR_TABLE[name].retryable}); review both, then REVIEWED_ERROR_STATUS")
    if bool(raw.get("fault")) != (name in REVIEWED_FAULTS):
        problems.append(f"{name}: model fault {raw.get('fault')!r}, the connector was reviewed for "
                        f"fault={name in REVIEWED_FAULTS} (a fault is retried: ERROR_TABLE, REVIEWED_FAULTS)")
    if not raw.get("exception"):
        problems.append(f"{name}: the model no longer marks it an exception shape "
                        f"(exception: {raw.get('exception')!r})")
    if raw.get("retryable") and not ERROR_TABLE[name].retryable:
        problems.append(f"{name}: the model marks it retryable ({raw['retryable']!r}); ERROR_TABLE does not retry it")
    # The code of a modeled error wins over the status, whatever the status is.
    assert classify(name, status) is ERROR_TABLE[name]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", _MODELED_ERRORS)
def test_given_a_modeled_error_then_its_members_are_those_the_connector_reads(name: str) -> None:
    members = set(RAW["shapes"][name]["members"])
    assert members == REVIEWED_ERROR_MEMBERS, \
        f"{name}: members {sorted(members)} in the model; lib/client.py (MeteringClient._error) reads only " \
        f"{sorted(REVIEWED_ERROR_MEMBERS)}: new {sorted(members - REVIEWED_ERROR_MEMBERS)}, gone " \
        f"{sorted(REVIEWED_ERROR_MEMBERS - members)}"


# ---- timestamp format ------------------------------------------------------------------------------------------

_WIRE_TIMESTAMP_FORMAT = "unixTimestamp"  # botocore's default for the json protocol: epoch seconds


def test_given_the_model_then_every_timestamp_is_epoch_seconds_on_the_wire_as_the_connector_sends_it() -> None:
    found: list[str] = []
    for name, shape in RAW["shapes"].items():
        if shape["type"] == "timestamp":
            found.append(f"shape {name}: timestampFormat {shape.get('timestampFormat', _WIRE_TIMESTAMP_FORMAT)!r}")
        for member, ref in shape.get("members", {}).items():
            if "timestampFormat" in ref:
                found.append(f"member {name}.{member}: timestampFormat {ref['timestampFormat']!r}")
    drifted = [f for f in found if not f.endswith(repr(_WIRE_TIMESTAMP_FORMAT))]
    assert not drifted, (f"the model's timestamps are no longer epoch seconds: {drifted}; the connector sends epoch "
                         f"seconds (lib/schema.timestamps_to_epoch) and reads replies as numbers (epochs_to_iso)")
    wire = timestamps_to_epoch(json_schema(OPERATIONS["meterUsage"].in_schema), {"Timestamp": "2026-05-01T00:00:00Z"})
    assert wire["Timestamp"] == 1777593600


# ---- timestamp windows and the month-end cut-off stated by the doc strings -------------------------------------


def _boundary_of_window_bounds(hours: int) -> str:
    """Whether lib/batch.window_bounds accepts a record exactly ``hours`` old (mid-month: no cut-off applies)."""
    now = 1778846400  # 2026-05-15T12:00:00Z
    earliest, _ = window_bounds(now, hours)
    return model_docs.INCLUSIVE if earliest <= now - hours * 3600 else model_docs.EXCLUSIVE


def _described(schema: str, *path: str) -> model_docs.TimestampRules:
    """What a connector schema's description of a Timestamp states, parsed as the model's docs are."""
    node: Any = json_schema(schema)
    for key in path:
        node = node[key]
    text = node["description"]
    return model_docs.TimestampRules(f"{schema} {'/'.join(path)}", [(schema, text)],
                                     model_docs.statements(text, schema))


def _batch_problems(rules: model_docs.TimestampRules) -> list[str]:
    default = int(StepOptions.from_cfg({}).window_hours)
    problems = model_docs.disagreements(rules, model_docs.WINDOW, float(default),
                                        "the default of timestampWindowHours (schemas/config.json, lib/options.py)")
    offered = {int(v) for v in load_ui_schema("config.json")["properties"]["timestampWindowHours"]["enum"]}
    problems += [f"BatchMeterUsage: the model's window {s.value:g} h is not among timestampWindowHours' choices "
                 f"{sorted(offered)}" for s in rules.of(model_docs.WINDOW) if s.value not in offered]
    problems += model_docs.disagreements(rules, model_docs.BOUNDARY, _boundary_of_window_bounds(default),
                                         "lib/batch.window_bounds (a record exactly the window's age: "
                                         "exclusive = refused, inclusive = accepted)")
    grace = MONTH_END_GRACE / 3600
    problems += model_docs.disagreements(rules, model_docs.GRACE, grace, "lib/batch.MONTH_END_GRACE")
    problems += model_docs.disagreements(rules, model_docs.CUTOFF, grace,
                                         "lib/batch.MONTH_END_GRACE (the cut-off hour)")
    # What the step's form tells users about the same rules.
    described = _described("batchMeterUsage.in.json", "properties", "UsageRecords", "items", "properties", "Timestamp")
    for what in (model_docs.WINDOW, model_docs.CUTOFF):
        for stated in {s.value for s in rules.of(what)}:
            problems += [f"schemas/batchMeterUsage.in.json: {line}" for line in
                         model_docs.disagreements(described, what, stated, "what the model's docs state",
                                                      source="the description in")]
    return problems


def _meter_usage_problems(rules: model_docs.TimestampRules) -> list[str]:
    # The connector leaves MeterUsage's window to AWS (TimestampOutOfBoundsException, kind input): the only place
    # it states it is the Timestamp description of the step's form.
    described = _described("meterUsage.in.json", "properties", "Timestamp")
    found = described.of(model_docs.WINDOW)
    if not found:
        return [f"schemas/meterUsage.in.json: its Timestamp description states no window ({described.texts[0][1]!r})"]
    problems: list[str] = []
    for ours in {s.value for s in found}:
        problems += model_docs.disagreements(rules, model_docs.WINDOW, ours,
                                             "the window the Timestamp description of "
                                             "schemas/meterUsage.in.json states")
    cut_off = rules.of(model_docs.GRACE) + rules.of(model_docs.CUTOFF)
    problems += [f"MeterUsage: the model's docs now state a month-end cut-off ({s.quote!r}); the connector states "
                 f"none for MeterUsage" for s in cut_off[:1]]
    return problems


_WINDOW_CHECKS = {"BatchMeterUsage": _batch_problems, "MeterUsage": _meter_usage_problems}


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_given_the_model_docs_then_the_timestamp_windows_and_month_end_cut_off_are_the_connector_s(
        operation: str) -> None:
    rules = model_docs.timestamp_rules(MODEL, operation)
    if rules is None:
        assert operation not in _WINDOW_CHECKS, f"{operation}: the model's input no longer has a Timestamp"
        return
    if operation not in _WINDOW_CHECKS:
        pytest.fail(f"{operation}: its input has a Timestamp and its docs state "
                    f"{[(s.what, s.value) for s in rules.statements]}; the connector has no rule for it")
    problems = _WINDOW_CHECKS[operation](rules)
    assert not problems, "\n".join(problems)
