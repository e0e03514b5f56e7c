"""component.json and schemas/ serve both the platform UI and jsonschema validation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from lib.operations import OPERATIONS
from lib.schema import json_schema, load_ui_schema, secret_fields
from lib.validation import problems

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = json.loads((ROOT / "component.json").read_text())


def ui_properties(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (path, property schema) of an object schema, nested objects and list items included."""
    found = []
    for name, prop in schema.get("properties", {}).items():
        found.append((f"{path}/{name}", prop))
        found += ui_properties(prop, f"{path}/{name}")
        if isinstance(prop.get("items"), dict):
            found += ui_properties(prop["items"], f"{path}/{name}/*")
    return found


def test_given_component_json_then_it_has_the_platform_top_level_fields() -> None:
    for key in ("title", "description", "docsUrl", "version"):
        assert isinstance(COMPONENT[key], str) and COMPONENT[key]
    assert COMPONENT["buildType"] == "docker"
    assert (ROOT / "Dockerfile").is_file()
    assert set(COMPONENT["actions"]) == {"batchMeterUsage", "meterUsage", "registerUsage", "resolveCustomer"}


@pytest.mark.parametrize("action", sorted(OPERATIONS))
def test_given_an_action_then_main_exposes_process_and_metadata_points_into_schemas(action: str) -> None:
    entry = COMPONENT["actions"][action]
    op = OPERATIONS[action]
    assert entry["title"] == op.title
    assert op.iam_action in entry["description"] and "<" not in entry["description"]
    spec = importlib.util.spec_from_file_location(f"action_{action}", ROOT / entry["main"])
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(module.process) and module.OPERATION is op
    assert entry["metadata"] == {"in": f"./schemas/{op.in_schema}", "out": f"./schemas/{op.out_schema}"}
    for ref in entry["metadata"].values():
        assert (ROOT / ref).is_file()


@pytest.mark.parametrize(("emit_per_record", "out"), [(False, "batchMeterUsage.out.json"),
                                                       (True, "batchMeterUsage.record.out.json")])
def test_given_one_message_per_record_when_the_platform_asks_for_the_metadata_then_out_is_the_record_schema(
        monkeypatch: pytest.MonkeyPatch, emit_per_record: bool, out: str) -> None:
    """component.json declares Batch Meter Usage's metadata dynamic; the sailor's service mode answers the
    platform's getMetaModel with the in schema and the out schema of the messages the step will emit."""
    from elasticio_sailor.service import execute

    assert COMPONENT["actions"]["batchMeterUsage"]["dynamicMetadata"] is True
    monkeypatch.chdir(ROOT.parent)  # the sailor joins ELASTICIO_COMPONENT_PATH onto the working directory
    cfg = {"accessKeyId": "AKIAEXAMPLE000000000", "secretAccessKey": "s" * 40, "emitPerRecord": emit_per_record}
    env = {"ELASTICIO_API_URI": "http://127.0.0.1:9", "ELASTICIO_API_USERNAME": "u", "ELASTICIO_API_KEY": "k",
           "ELASTICIO_COMPONENT_PATH": ROOT.name, "ELASTICIO_ACTION_OR_TRIGGER": "batchMeterUsage"}
    model = execute("getMetaModel", {**env, "ELASTICIO_CFG": json.dumps(cfg)})
    assert model == {"in": load_ui_schema("batchMeterUsage.in.json"), "out": load_ui_schema(out)}


@pytest.mark.parametrize("action", sorted(OPERATIONS))
def test_given_an_in_schema_then_every_property_has_a_title_and_boolean_required_marker(action: str) -> None:
    ui = load_ui_schema(OPERATIONS[action].in_schema)
    props = ui_properties(ui)
    assert props
    for path, prop in props:
        assert isinstance(prop.get("title"), str) and prop["title"], path
        assert prop.get("required", False) in (True, False), path
        assert "description" in prop or path.count("/") > 1, f"top-level {path} needs help text"


@pytest.mark.parametrize("action", sorted(OPERATIONS))
def test_given_per_property_required_markers_then_jsonschema_requires_exactly_those(action: str) -> None:
    op = OPERATIONS[action]
    ui = load_ui_schema(op.in_schema)
    derived = json_schema(op.in_schema)
    marked = [name for name, prop in ui["properties"].items() if prop.get("required") is True]
    assert marked, "every operation has at least one required member"
    assert derived["required"] == marked
    # the validator enforces the UI markers: an empty body reports exactly the marked members
    reported = {p.path for p in problems(op.in_schema, {}) if p.problem == "is required"}
    assert reported == {f"/{name}" for name in marked}
    # no boolean "required" survives in the derived view (it would be invalid JSON Schema)
    assert '"required": true' not in json.dumps(derived)


def test_given_nested_required_markers_then_they_are_enforced_inside_list_items() -> None:
    found = problems("batchMeterUsage.in.json", {"UsageRecords": [{"CustomerIdentifier": "c"}]})
    paths = {p.path for p in found if p.problem == "is required"}
    assert paths == {"/UsageRecords/0/Timestamp", "/UsageRecords/0/Dimension"}


def test_given_credentials_fields_then_they_mirror_the_config_schema_and_mask_secrets() -> None:
    config = load_ui_schema("config.json")["properties"]
    fields = COMPONENT["credentials"]["fields"]
    assert set(fields) == {"authMode", "accessKeyId", "secretAccessKey", "sessionToken", "roleArn", "externalId",
                           "roleSource", "roleSessionName", "sessionDurationSeconds", "stsEndpointUrl", "region",
                           "endpointUrl", "callsPerSecond"}
    step_fields = {name: f for entry in COMPONENT["actions"].values() for name, f in entry.get("fields", {}).items()}
    for name, field in {**fields, **step_fields}.items():
        prop = config[name]
        assert field["label"] == prop["title"]
        assert field["required"] is bool(prop.get("required"))
        assert (field["viewClass"] == "PasswordFieldView") is (name in secret_fields())
        if field["viewClass"] == "SelectView":
            assert {str(v) for v in prop["enum"]} == set(field["model"])
    assert secret_fields() == {"secretAccessKey", "sessionToken", "externalId"}
    assert config["region"]["default"] == "us-east-1"


def test_given_the_logo_then_it_is_a_valid_128_by_128_png() -> None:
    import struct
    import zlib

    data = (ROOT / "logo.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, dict[bytes, bytes]()
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth, colour) == (128, 128, 8, 6)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 128 * (1 + 128 * 4)


@pytest.mark.parametrize(("cfg", "missing"), [
    ({}, {"/accessKeyId", "/secretAccessKey"}),
    ({"authMode": "accessKeys"}, {"/accessKeyId", "/secretAccessKey"}),
    ({"authMode": "assumeRole"}, {"/roleArn", "/accessKeyId", "/secretAccessKey"}),
    ({"authMode": "assumeRole", "roleSource": "workloadIdentity"}, {"/roleArn"}),
    ({"authMode": "workloadIdentity"}, set()),
])
def test_given_a_credential_mode_then_exactly_its_fields_are_required(cfg: dict[str, Any], missing: set[str]) -> None:
    reported = {p.path for p in problems("config.json", cfg) if p.problem == "is required"}
    assert reported == missing
    bad = problems("config.json", {"authMode": "assumeRole", "roleSource": "workloadIdentity",
                                   "roleArn": "arn:aws:iam::12:role/x", "externalId": "x"})
    assert {p.path for p in bad} == {"/roleArn", "/externalId"}
    assert all("x" not in p.problem.split("pattern")[0] for p in bad)


# Every optional field of the credential and of the steps, with a valid value (the form stores a cleared one as "").
OPTIONAL_FIELDS = {"roleArn": "arn:aws:iam::123456789012:role/seller", "externalId": "ext-id-0001",
                   "roleSessionName": "seller", "sessionDurationSeconds": "900",
                   "stsEndpointUrl": "https://sts.us-east-1.amazonaws.com", "endpointUrl": "http://127.0.0.1:8080",
                   "callsPerSecond": "5", "region": "us-west-2", "authMode": "accessKeys", "roleSource": "accessKeys",
                   "outOfWindow": "fail", "timestampWindowHours": "6", "sameHourRecords": "sum",
                   "emitPerRecord": True, "sessionToken": "FwoGZXIvYXdzEXAMPLEtoken0000"}


def test_given_the_optional_fields_then_the_list_above_names_every_one() -> None:
    props = load_ui_schema("config.json")["properties"]
    assert set(OPTIONAL_FIELDS) == set(props) - {"accessKeyId", "secretAccessKey"}


@pytest.mark.parametrize("field", sorted(OPTIONAL_FIELDS))
def test_given_an_optional_field_filled_then_cleared_then_it_is_the_same_as_one_never_filled(field: str) -> None:
    from actions import batchMeterUsage
    from lib.client import Settings
    from lib.options import StepOptions

    keys = {"accessKeyId": "AKIAEXAMPLE000000000", "secretAccessKey": "secret/Example+Key0000000000000000000000"}
    assert Settings.from_cfg({**keys, field: ""}) == Settings.from_cfg(keys)
    assert StepOptions.from_cfg({**keys, field: ""}) == StepOptions.from_cfg(keys)
    assert batchMeterUsage.getMetaModel({field: ""}) == batchMeterUsage.getMetaModel({})


def test_given_a_cleared_required_field_then_the_error_says_it_is_required() -> None:
    from lib.client import Settings
    from lib.errors import MeteringError

    with pytest.raises(MeteringError) as raised:
        Settings.from_cfg({"accessKeyId": "", "secretAccessKey": "secret/Example+Key0000000000000000000000"})
    assert [(p.path, p.problem) for p in raised.value.problems] == [("/accessKeyId", "is required")]


@pytest.mark.parametrize(("value", "per_record"), [(True, True), ("on", True), ("true", True), (False, False),
                                                   ("off", False), ("false", False), ("", False)])
def test_given_the_checkbox_as_a_form_value_then_the_step_and_its_metadata_read_it_alike(
        value: Any, per_record: bool) -> None:
    from actions import batchMeterUsage
    from lib.client import Settings
    from lib.options import StepOptions

    cfg = {"accessKeyId": "AKIAEXAMPLE000000000", "secretAccessKey": "secret/Example+Key0000000000000000000000",
           "emitPerRecord": value}
    Settings.from_cfg(cfg)  # accepted
    assert StepOptions.from_cfg(cfg).emit_per_record is per_record
    out = batchMeterUsage.getMetaModel(cfg)["out"]
    assert out == load_ui_schema("batchMeterUsage.record.out.json" if per_record else "batchMeterUsage.out.json")
