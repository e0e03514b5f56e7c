"""The generated boolean validator (lib/validation.py's valid path) on the edge cases of its rules.

Every verdict is stated here and must be given alike by jsonschema (the reference), by the closure tree
(which explains failures) and by the generated function (which answers on the valid path).
"""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from lib import validation
from lib.schema import TIMESTAMP_FORMAT, is_timestamp, json_schema
from lib.validation import _EPOCH_LIMIT, _compile, _compile_valid, _generate, compiled, failures, problems, valid
from spec.connector.builders import PRODUCT
from spec.support.jsonschema_reference import ReferenceValidator, reference_failures

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GONE = object()  # a member left out


class Text(str):
    pass


class Whole(int):
    pass


class Members(dict):  # type: ignore[type-arg]
    pass


class Items(list):  # type: ignore[type-arg]
    pass


def _verdicts(schema_name: str, instance: Any) -> tuple[bool, bool, bool]:
    """(jsonschema, the closure tree, the generated function): True for valid."""
    return (not reference_failures(schema_name, instance), not compiled(schema_name)(instance),
            valid(schema_name, instance))


def _record(**changes: Any) -> dict[str, Any]:
    record = {"CustomerIdentifier": "cust-demo-0001", "Dimension": "users", "Quantity": 8, "Timestamp": 1765105200}
    record.update(changes)
    return {key: value for key, value in record.items() if value is not GONE}


def _batch(*records: Any) -> dict[str, Any]:
    return {"ProductCode": PRODUCT, "UsageRecords": list(records)}


TAG = {"Key": "k", "Value": "v"}
RECORDS: list[tuple[str, Any, bool]] = [
    ("the usual record", _record(), True),
    # integers: bool is not one, 1.0 is, the bounds apply to numbers
    ("Quantity true", _record(Quantity=True), False),
    ("Quantity false", _record(Quantity=False), False),
    ("Quantity 1.0", _record(Quantity=1.0), True),
    ("Quantity 1.5", _record(Quantity=1.5), False),
    ("Quantity NaN", _record(Quantity=float("nan")), False),
    ("Quantity inf", _record(Quantity=float("inf")), False),
    ("Quantity -1", _record(Quantity=-1), False),
    ("Quantity at its maximum", _record(Quantity=2**31 - 1), True),
    ("Quantity past its maximum", _record(Quantity=2**31), False),
    ("Quantity 2.0 past its maximum", _record(Quantity=float(2**31)), False),
    ("Quantity an int subclass", _record(Quantity=Whole(8)), True),
    ("Quantity as a string", _record(Quantity="8"), False),
    ("Quantity a Decimal", _record(Quantity=Decimal(8)), False),
    # timestamps: epoch seconds, epoch milliseconds, numeric strings, ISO with an offset
    ("Timestamp 0", _record(Timestamp=0), True),
    ("Timestamp -1", _record(Timestamp=-1), False),
    ("Timestamp true", _record(Timestamp=True), False),
    ("Timestamp a float", _record(Timestamp=1765105200.5), True),
    ("Timestamp the last epoch second read as seconds", _record(Timestamp=99_999_999_999), True),
    ("Timestamp in epoch ms", _record(Timestamp=1765105200000), True),
    ("Timestamp the last ms before the year 10000", _record(Timestamp=_EPOCH_LIMIT - 1), True),
    ("Timestamp the year 10000 in ms", _record(Timestamp=_EPOCH_LIMIT), False),
    ("Timestamp the year 10000 in ms, as a float", _record(Timestamp=float(_EPOCH_LIMIT)), False),
    ("Timestamp NaN", _record(Timestamp=float("nan")), False),
    ("Timestamp inf", _record(Timestamp=float("inf")), False),
    ("Timestamp -inf", _record(Timestamp=float("-inf")), False),
    ("Timestamp an int subclass", _record(Timestamp=Whole(1765105200)), True),
    ("Timestamp a Fraction", _record(Timestamp=Fraction(1765105200)), False),
    ("Timestamp a Decimal", _record(Timestamp=Decimal(1765105200)), False),
    ("Timestamp numeric string", _record(Timestamp="1765105200"), True),
    ("Timestamp numeric string in ms", _record(Timestamp="1765105200000"), True),
    ("Timestamp numeric string with a fraction", _record(Timestamp="1765105200.5"), True),
    ("Timestamp numeric string with spaces", _record(Timestamp=" 1765105200 "), True),
    ("Timestamp negative numeric string", _record(Timestamp="-5"), False),
    ("Timestamp exponent string", _record(Timestamp="1e9"), False),
    ("Timestamp ISO Z", _record(Timestamp="2026-12-07T10:00:00Z"), True),
    ("Timestamp ISO lower case", _record(Timestamp="2026-12-07t10:00:00z"), True),
    ("Timestamp ISO +01:00", _record(Timestamp="2026-12-07T11:00:00+01:00"), True),
    ("Timestamp ISO +0100", _record(Timestamp="2026-12-07T11:00:00+0100"), True),
    ("Timestamp ISO with fraction", _record(Timestamp="2026-12-07T10:00:00.123456Z"), True),
    ("Timestamp ISO without offset", _record(Timestamp="2026-12-07T10:00:00"), False),
    ("Timestamp ISO 30 February", _record(Timestamp="2026-02-30T10:00:00Z"), False),
    ("Timestamp a date", _record(Timestamp="2026-12-07"), False),
    ("Timestamp ISO, a str subclass", _record(Timestamp=Text("2026-12-07T10:00:00Z")), True),
    ("Timestamp words, a str subclass", _record(Timestamp=Text("soon")), False),
    ("Timestamp a long string", _record(Timestamp="2026-12-07T10:00:00." + "1" * 80 + "Z"), True),
    ("Timestamp null", _record(Timestamp=None), False),
    ("Timestamp a list", _record(Timestamp=[1765105200]), False),
    ("Timestamp missing", _record(Timestamp=GONE), False),
    # oneOf: exactly one customer id
    ("both customer ids", _record(CustomerAWSAccountId="111122223333"), False),
    ("no customer id", _record(CustomerIdentifier=GONE), False),
    ("the account id alone", _record(CustomerIdentifier=GONE, CustomerAWSAccountId="111122223333"), True),
    ("an empty customer identifier", _record(CustomerIdentifier=""), True),
    # (patterns are ECMA-262's: `$` matches only at the very end, not before a trailing newline as in Python)
    ("an account id with a newline at the end", _record(CustomerIdentifier=GONE,
                                                        CustomerAWSAccountId="111122223333\n"), False),
    ("an account id with letters", _record(CustomerIdentifier=GONE, CustomerAWSAccountId="11112222333a"), False),
    # strings: code points, subclasses, the non-empty pattern
    ("Dimension empty", _record(Dimension=""), False),
    ("Dimension empty, a str subclass", _record(Dimension=Text("")), False),
    ("Dimension a str subclass", _record(Dimension=Text("users")), True),
    ("Dimension a newline", _record(Dimension="\n"), True),
    ("Dimension 255 two-byte code points", _record(Dimension="é" * 255), True),
    ("Dimension 255 emoji", _record(Dimension="\U0001f600" * 255), True),
    ("Dimension 256 emoji", _record(Dimension="\U0001f600" * 256), False),
    ("Dimension a number", _record(Dimension=5), False),
    # objects: subclasses, unknown members
    ("a dict subclass", Members(_record()), True),
    ("a dict subclass with an unknown member", Members(_record(quantity=5)), False),
    ("an unknown member", _record(quantity=5), False),
    ("a record that is a list", [_record()], False),
    ("a record that is a string", "record", False),
    ("a record that is null", None, False),
    # allocations: nested arrays and objects
    ("an allocation", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8, "Tags": [TAG]}]), True),
    ("an allocation without tags", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8}]), True),
    ("an allocation with both quantities",
     _record(UsageAllocations=[{"AllocatedUsageQuantity": 8, "AllocatedUsageQuantityAsDecimal": "8"}]), False),
    ("an allocation with no quantity", _record(UsageAllocations=[{"Tags": [TAG]}]), False),
    ("allocations in a nested list", _record(UsageAllocations=[[{"AllocatedUsageQuantity": 8}]]), False),
    ("no allocation", _record(UsageAllocations=[]), False),
    ("a list subclass of allocations", _record(UsageAllocations=Items([{"AllocatedUsageQuantity": 8}])), True),
    ("five tags", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8,
                                             "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(5)]}]), True),
    ("six tags", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8,
                                            "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(6)]}]), False),
    ("an empty tag list", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8, "Tags": []}]), False),
    ("a tag with a third member", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8,
                                                             "Tags": [{**TAG, "Note": "n"}]}]), False),
    ("a tag without its value", _record(UsageAllocations=[{"AllocatedUsageQuantity": 8, "Tags": [{"Key": "k"}]}]),
     False),
    ("a tag key ending in a newline",
     _record(UsageAllocations=[{"AllocatedUsageQuantity": 8, "Tags": [{"Key": "k\n", "Value": "v"}]}]), False),
    ("a tag key with a character outside the pattern (` -=` is a range: `!` is in it)",
     _record(UsageAllocations=[{"AllocatedUsageQuantity": 8, "Tags": [{"Key": "k~", "Value": "v"}]}]), False),
    ("an allocated quantity true", _record(UsageAllocations=[{"AllocatedUsageQuantity": True}]), False),
    ("an allocated quantity 1.0", _record(UsageAllocations=[{"AllocatedUsageQuantity": 1.0}]), True),
    ("a decimal quantity with a newline at the end", _record(Quantity=GONE, QuantityAsDecimal="1.5\n"), False),
    ("a decimal quantity with a leading zero", _record(Quantity=GONE, QuantityAsDecimal="01.5"), False),
]


@pytest.mark.parametrize(("label", "record", "expected"), RECORDS, ids=[case[0] for case in RECORDS])
def test_given_a_record_then_jsonschema_the_closures_and_the_generated_validator_agree(
        label: str, record: Any, expected: bool) -> None:
    assert _verdicts("batchMeterUsage.in.json", _batch(record)) == (expected, expected, expected)


@pytest.mark.parametrize(("body", "expected"), [
    (_batch(), True), (_batch(*[_record()] * 25), True), ({"ProductCode": "", "UsageRecords": [_record()]}, True),
    ({"ProductCode": "bad code!", "UsageRecords": [_record()]}, False), ({"ProductCode": PRODUCT}, False),
    ({"UsageRecords": Items([_record()])}, True), (Members(_batch(_record())), True), ({"UsageRecords": {}}, False),
    ([], False), (None, False), ("body", False), (_batch(_record(), _record(Quantity=True)), False),
])
def test_given_a_batch_body_then_all_three_agree(body: Any, expected: bool) -> None:
    assert _verdicts("batchMeterUsage.in.json", body) == (expected, expected, expected)


def _meter(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EXAMPLES / "meterUsage.json").read_text(encoding="utf-8"))["body"]
    body.update(changes)
    return {key: value for key, value in body.items() if value is not GONE}


@pytest.mark.parametrize(("body", "expected"), [
    (_meter(), True), (_meter(Timestamp=1765105200000), True), (_meter(Timestamp="1765105200"), True),
    (_meter(Timestamp=True), False), (_meter(ClientToken="\U0001f600" * 64), True),
    (_meter(ClientToken="\U0001f600" * 65), False), (_meter(ClientToken=""), False),
    (_meter(UsageQuantityAsDecimal="017"), False), (_meter(UsageQuantityAsDecimal="1.1234567"), False),
    (_meter(UsageDimension=Text("")), False), (_meter(DryRun=1), False), (_meter(DryRun=False), True),
    (_meter(UsageAllocations=[{"AllocatedUsageQuantityAsDecimal": "42.125", "Tags": [TAG]}]), True),
    (_meter(UsageAllocations=[{"AllocatedUsageQuantityAsDecimal": "42.125", "AllocatedUsageQuantity": 42}]), False),
    (_meter(Timestamp=GONE), False), ([_meter()], False),
])
def test_given_a_meter_usage_body_then_all_three_agree(body: Any, expected: bool) -> None:
    assert _verdicts("meterUsage.in.json", body) == (expected, expected, expected)


def _config(**changes: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = json.loads((EXAMPLES / "cfg.json").read_text(encoding="utf-8"))
    cfg.update(changes)
    return {key: value for key, value in cfg.items() if value is not GONE}


ROLE = "arn:aws:iam::123456789012:role/metering"


@pytest.mark.parametrize(("cfg", "expected"), [
    (_config(), True), (_config(region=1), False), (_config(region="mars-north-1"), False),
    (_config(region=Text("eu-west-1")), True), (_config(timestampWindowHours=24), True),
    (_config(timestampWindowHours=24.0), True), (_config(timestampWindowHours=True), False),
    (_config(timestampWindowHours="12"), False), (_config(authMode="AccessKeys"), False),
    (_config(secretAccessKey=GONE), False), (_config(authMode="assumeRole"), False),
    (_config(authMode="assumeRole", roleArn=ROLE), True),
    (_config(authMode="assumeRole", roleArn=ROLE, accessKeyId=GONE, secretAccessKey=GONE), False),
    (_config(authMode="assumeRole", roleArn=ROLE, roleSource="workloadIdentity", accessKeyId=GONE,
             secretAccessKey=GONE), True),
    (_config(authMode=Text("workloadIdentity"), accessKeyId=GONE, secretAccessKey=GONE), True),
    (_config(authMode="workloadIdentity", accessKeyId=GONE, secretAccessKey=GONE), True),
    (_config(emitPerRecord=0), False), (_config(callsPerSecond="0.0"), False), (_config(callsPerSecond="2.5"), True),
])
def test_given_a_configuration_then_all_three_agree(cfg: Any, expected: bool) -> None:
    assert _verdicts("config.json", cfg) == (expected, expected, expected)


def _spy(monkeypatch: pytest.MonkeyPatch, compiler: str) -> list[str]:
    """Replace ``validation.<compiler>`` by a wrapper; returns the list of schema names it is asked for."""
    asked: list[str] = []
    real = getattr(validation, compiler)

    def spy(schema_name: str) -> Any:
        asked.append(schema_name)
        return real(schema_name)
    monkeypatch.setattr(validation, compiler, spy)
    return asked


def test_given_a_valid_instance_then_the_closure_tree_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ran = _spy(monkeypatch, "compiled")
    for _ in range(validation.GENERATE_AFTER):  # a schema in regular use (see the next test for the first uses)
        problems("batchMeterUsage.in.json", _batch(_record()))
    ran.clear()
    assert problems("batchMeterUsage.in.json", _batch(_record())) == []
    assert failures("batchMeterUsage.in.json", _batch(_record())) == []
    assert ran == []
    assert [p.path for p in problems("batchMeterUsage.in.json", _batch(_record(Quantity=True)))] == [
        "/UsageRecords/0/Quantity"]
    assert ran == ["batchMeterUsage.in.json"]


def test_given_a_schema_first_used_then_the_closure_tree_answers_until_it_is_in_regular_use(
        monkeypatch: pytest.MonkeyPatch) -> None:
    generated = _spy(monkeypatch, "compiled_valid")
    monkeypatch.setattr(validation, "_uses", {})
    monkeypatch.setattr(validation, "_quick", {})
    bad = _batch(_record(Quantity=True))
    for use in range(validation.GENERATE_AFTER - 1):
        if use % 2:
            assert [p.path for p in problems("batchMeterUsage.in.json", bad)] == ["/UsageRecords/0/Quantity"]
        else:
            assert problems("batchMeterUsage.in.json", _batch(_record())) == []
    assert generated == [] and validation._uses["batchMeterUsage.in.json"] == validation.GENERATE_AFTER - 1
    assert failures("batchMeterUsage.in.json", _batch(_record())) == []
    assert generated == ["batchMeterUsage.in.json"]
    assert problems("batchMeterUsage.in.json", _batch(_record())) == []
    assert generated == ["batchMeterUsage.in.json"]  # generated once, then reused


def test_given_the_epoch_bound_of_the_quick_test_then_is_timestamp_agrees_on_both_sides() -> None:
    assert is_timestamp(0) and is_timestamp(_EPOCH_LIMIT - 1)
    assert not is_timestamp(-1) and not is_timestamp(_EPOCH_LIMIT)


# Keyword semantics beyond the shapes of our schemas, against jsonschema on a pool of instances.
_FORMATS = FormatChecker(formats=())
_FORMATS.checks(TIMESTAMP_FORMAT)(is_timestamp)
ODD_NAME = "a'\"\n\\ {x}"
CODE_NAME = "__import__('os').system('exit 3')"
ODD_SCHEMA = {"type": "object", "properties": {ODD_NAME: {"const": 1}, CODE_NAME: {"type": "string"}},
              "required": [ODD_NAME], "additionalProperties": False}
ADHOC: list[Any] = [
    True, {}, {"minimum": 1.5, "maximum": 3}, {"type": "number", "minimum": 0, "maximum": 2.5},
    {"type": ["null", "boolean"]}, {"type": []}, {"type": "integer"}, {"type": ["integer", "string"]},
    {"minLength": 2, "maxLength": 3}, {"pattern": "b"}, {"pattern": "^a$"}, {"pattern": "[\\s\\S]+"},
    {"type": "string", "pattern": "^[\\s\\S]+$", "maxLength": 2},
    {"minItems": 1, "maxItems": 2, "items": {"type": "integer"}}, {"items": {"minimum": 2}},
    {"enum": [1, True, "1", [1], {"a": 1}, None, 2.5]}, {"enum": []}, {"enum": ["a", "b"]}, {"enum": [1.0, False]},
    {"const": [1, {"a": True}]}, {"const": False}, {"const": 0}, {"const": "x"}, {"const": None},
    {"oneOf": []}, {"oneOf": [{"type": "integer"}, {"minimum": 2}, {"type": "string"}]},
    {"oneOf": [{"required": ["a"]}, {"required": ["a", "b"]}, {"required": []}]},
    {"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
    {"allOf": [{"type": "string"}, {"maxLength": 1}]}, {"allOf": []}, {"not": {"type": "array"}}, {"not": {}},
    {"not": {"required": ["a"]}}, {"if": {"type": "integer"}, "then": {"minimum": 5}, "else": {"type": "string"}},
    {"if": {"minimum": 5}}, {"if": {"required": ["a"]}, "else": {"required": ["b"]}},
    {"if": {"required": ["a"]}, "then": {"properties": {"a": {"const": 1}}}},
    {"format": TIMESTAMP_FORMAT}, {"format": "date-time"}, {"type": "string", "format": TIMESTAMP_FORMAT},
    {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}, "b": {"not": {}}}},
    {"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
    {"additionalProperties": False},
    ODD_SCHEMA, {"enum": [ODD_NAME, CODE_NAME]}, {"const": CODE_NAME}, {"pattern": "^" + "'\"\\n" + "$"},
]
POOL: list[Any] = [
    None, True, False, 0, 1, 1.0, 1.5, 2, 2.5, 3, 3.5, 5, 10, -1, float("nan"), float("inf"), Whole(5), Decimal("2.5"),
    "", "a", "ab", "abc", "abcd", "b", "1", "x", "a\n", "\n", "'\"\n", Text("ab"), Text(""), ODD_NAME, CODE_NAME,
    [], [1], [1, 2], [1, 2, 3], [1.0], [True], ["a"], Items([1]), [1, {"a": True}], [1, {"a": 1}],
    {}, {"a": 1}, {"a": 1.0}, {"a": True}, {"a": 1, "b": 2}, {"b": 1}, {"a": 2}, Members(a=1),
    1765105200, 1765105200000, "2026-12-07T10:00:00Z", "1765105200", "soon",
    {ODD_NAME: 1}, {ODD_NAME: 1, CODE_NAME: "s"}, {ODD_NAME: 1, CODE_NAME: 1}, {ODD_NAME: 1, "x": 1}, {CODE_NAME: "s"},
]


@pytest.mark.parametrize("schema", ADHOC, ids=[json.dumps(schema)[:60] for schema in ADHOC])
def test_given_any_keyword_of_the_subset_then_the_generated_validator_answers_as_jsonschema(schema: Any) -> None:
    reference = ReferenceValidator(schema, format_checker=_FORMATS)  # jsonschema, `pattern` with ECMA's `$`
    check, closures = _compile_valid(schema), _compile(schema)
    for instance in POOL:
        expected = reference.is_valid(instance)
        assert check(instance) is expected, instance
        assert (not closures(instance)) is expected, instance


def test_given_member_names_and_constants_then_the_source_holds_them_only_as_repr_literals_or_names() -> None:
    source, _, namespace = _generate(json_schema("batchMeterUsage.in.json"))
    assert "^[-a-zA-Z0-9/=:_.@]*$" not in source  # patterns live in the namespace, compiled
    assert any(getattr(value, "__self__", None) is not None and value.__self__.pattern == "^[-a-zA-Z0-9/=:_.@]*\\Z"
               for value in namespace.values())
    assert "'UsageRecords' not in x0" in source
    odd, _, _ = _generate(ODD_SCHEMA)
    assert repr(ODD_NAME) in odd and repr(CODE_NAME) in odd


def _nested(depth: int, leaf: Any) -> tuple[Any, Any]:
    """A schema of ``depth`` levels of items and members, and an instance of that shape ending in ``leaf``."""
    schema: Any = {"type": "integer", "minimum": 0}
    instance: Any = leaf
    for level in range(depth):
        if level % 2:
            schema, instance = {"type": "array", "items": schema}, [instance]
        else:
            schema, instance = {"type": "object", "properties": {"m": schema}, "required": ["m"]}, {"m": instance}
    return schema, instance


@pytest.mark.parametrize("depth", [1, 7, 8, 9, 30, 60])
def test_given_a_deeply_nested_schema_then_the_generated_validator_compiles_and_agrees(depth: int) -> None:
    schema, good = _nested(depth, 1)
    _, bad = _nested(depth, -1)
    _, wrong = _nested(depth, True)
    check = _compile_valid(schema)
    assert (check(good), check(bad), check(wrong)) == (True, False, False)
    reference = Draft202012Validator(schema)
    assert (reference.is_valid(good), reference.is_valid(bad), reference.is_valid(wrong)) == (True, False, False)
    if depth > 8:  # written as several functions: the source never nests deeper than Python compiles
        assert _generate(schema)[0].count("def ") > 1
