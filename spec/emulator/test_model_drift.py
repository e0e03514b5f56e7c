"""The emulator's model (``metering_emulator.model``) and operation catalogue (``metering_emulator.catalogue``)
cannot drift from botocore's: every operation, shape name, member, shape kind, constraint, deprecation,
idempotency token, timestamp format and modeled error of the installed botocore ``meteringmarketplace`` model
(1.44.8 or newer) is known to the emulator, and nothing else is. The modeled errors' HTTP statuses, fault
flags and members match the emulator's error replies (``errors.STATUS_BY_TYPE``, ``AwsError.body``); the
protocol constants (signing name, target prefix, JSON version) match; and the timestamp windows and month-end
cut-off the model's doc strings state (read by ``spec/support/model_docs.py``) are the emulator's defaults.

Only the emulator and the model are read here (nothing of the connector's lib/)."""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

import botocore
import botocore.session
import pytest
from botocore.model import ServiceModel
from metering_emulator import catalogue, cli, errors, model, server, sigv4
from metering_emulator.state import Config

from spec.support import model_docs


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
_JSON_TIMESTAMP_FORMAT = "unixTimestamp"  # botocore's default for the json protocol


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
    if kind == "timestamp":
        # The JSON protocol sends epoch seconds unless the shape (or the member) says otherwise; the emulator's
        # validator takes only numbers (model.Validator.walk).
        theirs = shape.serialization.get("timestampFormat") or _JSON_TIMESTAMP_FORMAT
        mine = ours.get("timestampFormat") or _JSON_TIMESTAMP_FORMAT
        if theirs != mine:
            problems.append(f"{path}: timestampFormat {mine!r} (what the emulator parses) != model {theirs!r}")
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
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_the_response_shape_matches_the_model(operation: str) -> None:
    problems: list[str] = []
    shape = model.SHAPES[catalogue.OPERATIONS[operation].output_shape]
    compare(MODEL.operation_model(operation).output_shape, shape, operation, problems)
    assert not problems, "\n".join(problems)


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


# ---- protocol constants ---------------------------------------------------------------------------------------


def test_the_signing_name_target_prefix_and_json_version_are_the_model_s() -> None:
    meta = MODEL.metadata
    assert sigv4.SIGNING_NAME == meta["signingName"], \
        f"model signingName {meta['signingName']!r} != the emulator's sigv4.SIGNING_NAME {sigv4.SIGNING_NAME!r}"
    assert server.TARGET_PREFIX == meta["targetPrefix"] + ".", \
        f"model targetPrefix {meta['targetPrefix']!r} != the emulator's server.TARGET_PREFIX {server.TARGET_PREFIX!r}"
    assert meta["protocol"] == "json", f"model protocol {meta['protocol']!r}: the emulator speaks AWS JSON only"
    assert server.CONTENT_TYPE == f"application/x-amz-json-{meta['jsonVersion']}", \
        f"model jsonVersion {meta['jsonVersion']!r} != the emulator's server.CONTENT_TYPE {server.CONTENT_TYPE!r}"


# ---- modeled errors: status, fault flag, members --------------------------------------------------------------

# Where the emulator's status deliberately differs from what botocore's model implies (its ``error.httpStatusCode``,
# else 500 for a ``fault`` and 400 otherwise), with the reason. An entry the model comes to state itself fails
# (drop it then).
STATUS_NOT_IN_BOTOCORE = {
    # The service's Smithy model (aws-sdk-js-v3 marketplace-metering.json) gives it @httpError(409); botocore's
    # service-2.json carries no error trait for it (errors.py says so too).
    "IdempotencyConflictException": 409,
}


def _modeled_errors() -> dict[str, Any]:
    return {err.name: err for op in MODEL.operation_names for err in MODEL.operation_model(op).error_shapes}


@pytest.mark.parametrize("name", sorted(_modeled_errors()))
def test_the_error_status_and_fault_flag_match_the_model(name: str) -> None:
    shape = _modeled_errors()[name]
    raw = shape._shape_model
    ours = errors.AwsError(name, "drift check").status
    problems: list[str] = []
    if not raw.get("exception"):
        problems.append(f"{name}: the model no longer marks it an exception shape "
                        f"(exception: {raw.get('exception')!r})")
    status, source = model_docs.error_status(raw)
    if name in STATUS_NOT_IN_BOTOCORE:
        if source == "error.httpStatusCode":
            problems.append(f"{name}: the model now states HTTP status {status} itself: drop it from "
                            f"STATUS_NOT_IN_BOTOCORE (emulator: {ours})")
        status, source = STATUS_NOT_IN_BOTOCORE[name], "STATUS_NOT_IN_BOTOCORE (the Smithy model)"
    if ours != status:
        problems.append(f"{name}: HTTP status {status} in the model ({source}) != the emulator's {ours} "
                        f"(errors.STATUS_BY_TYPE, default 400)")
    fault = bool(raw.get("fault"))
    if fault != (ours >= 500):
        problems.append(f"{name}: model fault {raw.get('fault')!r} but the emulator answers {ours} "
                        f"(a fault is a 5xx server error, anything else a 4xx client error)")
    sender = (raw.get("error") or {}).get("senderFault")
    if sender is not None and bool(sender) == fault:
        problems.append(f"{name}: model error.senderFault {sender!r} contradicts fault {raw.get('fault')!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", sorted(_modeled_errors()))
def test_the_error_members_are_those_of_the_emulator_s_error_body(name: str) -> None:
    shape = _modeled_errors()[name]
    ours = set(errors.AwsError(name, "drift check").body()) - {"__type"}
    assert set(shape.members) == ours, \
        f"{name}: members {sorted(shape.members)} in the model != {sorted(ours)} in the emulator's error body " \
        f"(errors.AwsError.body)"
    for member in shape.members.values():
        assert member.type_name == "string", f"{name}.{member.name}: type {member.type_name} (the emulator sends text)"


# ---- timestamp windows and the month-end cut-off stated by the doc strings -------------------------------------

_CLI_DEFAULTS = cli.build_parser().parse_args([])


def _emulator_hours(field: str) -> tuple[float, str]:
    """The emulator's default of a Config field, checked to be the CLI's default too."""
    default = float(getattr(Config(), field))
    cli_default = getattr(_CLI_DEFAULTS, field, default)
    assert cli_default == default, f"Config().{field} {default} != the CLI's default {cli_default}"
    return default, f"the emulator's default Config().{field}"


@pytest.mark.parametrize("operation", sorted(MODEL.operation_names))
def test_the_timestamp_window_and_month_end_cut_off_are_those_the_model_docs_state(operation: str) -> None:
    rules = model_docs.timestamp_rules(MODEL, operation)
    op = catalogue.OPERATIONS[operation]
    if rules is None:
        assert op.window is None and not op.month_end_cutoff, \
            f"{operation}: the model's input has no Timestamp, but the catalogue gives it a window ({op.window})"
        return
    if op.window is None:
        pytest.fail(f"{operation}: the model's input has a Timestamp member but the catalogue gives {operation} no "
                    f"timestamp window; the docs state: {[(s.what, s.value) for s in rules.statements]}")
    hours, ours = _emulator_hours(op.window)
    problems = model_docs.disagreements(rules, model_docs.WINDOW, hours, ours)
    bound = model_docs.INCLUSIVE if op.window_inclusive else model_docs.EXCLUSIVE
    problems += model_docs.disagreements(rules, model_docs.BOUNDARY, bound,
                                         f"the catalogue's window_inclusive={op.window_inclusive}: the "
                                         f"emulator's boundary")
    cut_off = rules.of(model_docs.GRACE) + rules.of(model_docs.CUTOFF)
    if op.month_end_cutoff:
        grace, ours = _emulator_hours("month_end_grace_hours")
        problems += model_docs.disagreements(rules, model_docs.GRACE, grace, ours)
        problems += model_docs.disagreements(rules, model_docs.CUTOFF, grace, ours)
    elif cut_off:
        problems.append(f"{operation}: the model's docs now state a month-end cut-off ({cut_off[0].quote!r}) but the "
                        f"catalogue has month_end_cutoff=False")
    assert not problems, "\n".join(problems)


def test_the_doc_parser_reads_the_wordings_of_the_model() -> None:
    text = ("Usage records aren't accepted 24 hours or more after an event. At the end of each billing cycle, a "
            "6-hour grace period applies. We accept records until 06:00 UTC on the first day. On April 1 at 05:00 "
            "UTC you can still submit. If you submit records more than six hours after events occur, they won't "
            "be accepted. Up to 6 hours in the past.")
    found = [(s.what, s.value) for s in model_docs.statements(text, "here")]
    assert sorted(found, key=str) == sorted([
        ("window", 24.0), ("grace period", 6.0), ("cut-off hour", 6.0), ("window", 6.0), ("window", 6.0),
        ("boundary", "exclusive"), ("boundary", "inclusive")], key=str)
    assert model_docs.plain("<p>a&amp;b <code>c</code></p>") == "a&b c"
