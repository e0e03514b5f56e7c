"""The compiled validators (lib/validation.py) answer exactly as jsonschema does, on every schema.

Instances are valid seeds (the examples, the builders' records) mutated at random paths — members
removed, unknown members added, values swapped for ones of other types, strings cut to or past their
length bounds, the schema's own enum/const values put elsewhere — so every keyword of every schema is
exercised on both sides of its rule. Each answer of the closure tree (the failed keywords, by path) must
equal jsonschema's, and so must the problems reported to the user; the generated boolean validator (the
valid path) must give jsonschema's verdict on every one of those instances.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from lib.schema import SCHEMA_DIR, json_schema
from lib.validation import (
    Failure,
    _compile,
    _compile_valid,
    compiled,
    compiled_valid,
    describe,
    failures,
    problems,
    valid,
)
from spec.connector.builders import ACCESS_KEY, LICENSE, PRODUCT, REG_TOKEN, SECRET_KEY, a_record
from spec.support.jsonschema_reference import reference_failures, reference_validator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCHEMAS = sorted(path.name for path in SCHEMA_DIR.glob("*.json"))
CASES_PER_SCHEMA = 1500


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def _demo_batch() -> dict[str, Any]:
    body: dict[str, Any] = _example("batchMeterUsage.json")["body"]
    for record in body["UsageRecords"]:
        record.pop("_hoursAgo", None)  # read by the demo only
    return body


def _seeds(schema_name: str) -> list[Any]:
    record = {**a_record(), "UsageAllocations": [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": "k", "Value": "v"}]}]}
    modern = {"Timestamp": "2026-05-01T12:00:00Z", "CustomerAWSAccountId": "111122223333", "LicenseArn": LICENSE,
              "Dimension": "users", "QuantityAsDecimal": "1.5"}
    seeds: dict[str, list[Any]] = {
        "config.json": [
            _example("cfg.json"),
            {"authMode": "assumeRole", "roleArn": "arn:aws:iam::123456789012:role/metering", "accessKeyId": ACCESS_KEY,
             "secretAccessKey": SECRET_KEY, "externalId": "ext-id", "roleSessionName": "sess",
             "sessionDurationSeconds": "3600", "stsEndpointUrl": "https://sts.example.com", "callsPerSecond": "3.3"},
            {"authMode": "assumeRole", "roleSource": "workloadIdentity",
             "roleArn": "arn:aws:iam::123456789012:role/metering"},
            {"authMode": "workloadIdentity", "region": "eu-west-1", "emitPerRecord": True},
        ],
        "batchMeterUsage.in.json": [_demo_batch(),
                                    {"ProductCode": PRODUCT, "UsageRecords": [record, a_record()]},
                                    {"UsageRecords": [modern]}],
        "meterUsage.in.json": [_example("meterUsage.json")["body"],
                               {"ProductCode": PRODUCT, "Timestamp": 1_700_000_000, "UsageDimension": "users",
                                "UsageQuantity": 3, "DryRun": True, "ClientToken": "t",
                                "UsageAllocations": [{"AllocatedUsageQuantity": 3,
                                                      "Tags": [{"Key": "a", "Value": "b"}]}]}],
        "registerUsage.in.json": [_example("registerUsage.json")["body"]],
        "resolveCustomer.in.json": [_example("resolveCustomer.json")["body"], {"RegistrationToken": REG_TOKEN}],
    }
    if schema_name in seeds:
        return seeds[schema_name]
    rnd = random.Random(f"seed-{schema_name}")  # the output schemas: instances built from the schema
    return [_from_schema(json_schema(schema_name), rnd) for _ in range(8)]


def _from_schema(schema: Any, rnd: random.Random, depth: int = 0) -> Any:
    """An instance shaped by ``schema`` (members, types, enums, length bounds); not always valid."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rnd.choice(schema["enum"])
    kind = schema.get("type")
    kind = rnd.choice(kind) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        chosen = [name for name in props if name in schema.get("required", []) or rnd.random() < 0.6]
        return {name: _from_schema(props[name], rnd, depth + 1) for name in chosen}
    if kind == "array":
        count = 0 if depth > 4 else rnd.randint(schema.get("minItems", 0), min(schema.get("maxItems", 3), 3))
        return [_from_schema(schema.get("items", {}), rnd, depth + 1) for _ in range(count)]
    if kind == "string":
        return "a" * rnd.randint(schema.get("minLength", 0), min(schema.get("maxLength", 8), 8))
    if kind in ("integer", "number"):
        return rnd.randint(schema.get("minimum", 0), schema.get("maximum", 100))
    if kind == "boolean":
        return rnd.random() < 0.5
    return rnd.choice(SCALARS)


def _vocabulary(schema: Any, out: list[Any]) -> list[Any]:
    """Values the schema itself names (enum, const, bounds) and strings at and past its length bounds."""
    if isinstance(schema, dict):
        out.extend(schema.get("enum", []))
        if "const" in schema:
            out.append(schema["const"])
        for key in ("minimum", "maximum"):
            if key in schema:
                out += [schema[key], schema[key] - 1, schema[key] + 1, schema[key] + 0.5]
        for key in ("minLength", "maxLength"):
            if key in schema:
                out += ["a" * max(schema[key] - 1, 0), "a" * schema[key], "a" * (schema[key] + 1)]
        for value in schema.values():
            _vocabulary(value, out)
    elif isinstance(schema, list):
        for value in schema:
            _vocabulary(value, out)
    return out


def _members(schema: Any, out: set[str]) -> set[str]:
    if isinstance(schema, dict):
        out.update(schema.get("properties", {}))
        out.update(name for name in schema.get("required", []) if isinstance(name, str))
        for value in schema.values():
            _members(value, out)
    elif isinstance(schema, list):
        for value in schema:
            _members(value, out)
    return out


SCALARS: list[Any] = [None, True, False, 0, -1, 1, 1.0, 2.5, 10**12, 10**13, "", " ", "x", "users", "17.42", "1e3",
                      "2026-05-01T12:00:00Z", "2026-05-01T12:00:00", "-5", "ünïcode", "a\nb", [], {}, [1], {"a": 1},
                      # a trailing newline: where jsonschema's re.search and ECMA-262 part (see the test below)
                      "17\n", "111122223333\n", "k\n"]


def _containers(value: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [trail] if isinstance(value, (dict, list)) else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _containers(item, (*trail, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _containers(item, (*trail, index))
    return found


def _at(value: Any, trail: tuple[Any, ...]) -> Any:
    for part in trail:
        value = value[part]
    return value


def _mutate(value: Any, rnd: random.Random, pool: list[Any], names: list[str]) -> Any:
    value = copy.deepcopy(value)
    for _ in range(rnd.randint(1, 3)):
        trails = _containers(value)
        if not trails:
            return rnd.choice(pool + SCALARS)
        target = _at(value, rnd.choice(trails))
        move = rnd.random()
        if isinstance(target, dict):
            keys = list(target)
            if move < 0.25 and keys:
                del target[rnd.choice(keys)]
            elif move < 0.6:
                target[rnd.choice(names)] = copy.deepcopy(rnd.choice(pool + SCALARS))
            elif move < 0.7:
                target[rnd.choice(["Unknown", "quantity", "_x"])] = 1
            elif keys:
                key = rnd.choice(keys)
                target[key] = copy.deepcopy(rnd.choice([*pool, *SCALARS, [target[key]] * 30, {}]))
        elif isinstance(target, list):
            if move < 0.3 and target:
                target.pop(rnd.randrange(len(target)))
            elif move < 0.6 and target:
                target.extend(copy.deepcopy(target[:1]) * rnd.choice([1, 4, 30]))
            else:
                target.append(copy.deepcopy(rnd.choice(pool + SCALARS)))
    return value


def _key(found: list[Failure]) -> Counter[tuple[Any, ...]]:
    return Counter((f.path, f.keyword, json.dumps(f.limit, sort_keys=True), json.dumps(f.detail)) for f in found)


@pytest.mark.parametrize("schema_name", SCHEMAS)
def test_given_mutated_instances_then_the_compiled_checks_fail_exactly_the_keywords_jsonschema_fails(
        schema_name: str) -> None:
    schema = json_schema(schema_name)
    pool = _vocabulary(schema, [])
    names = sorted(_members(schema, set()))
    rnd = random.Random(f"validation-{schema_name}")
    seeds = _seeds(schema_name)
    keywords: Counter[str] = Counter()
    verdicts: Counter[bool] = Counter()
    plain = Draft202012Validator(schema, format_checker=reference_validator(schema_name).format_checker)
    parted = 0
    for case in range(CASES_PER_SCHEMA):
        instance = seeds[case % len(seeds)] if case < len(seeds) else _mutate(rnd.choice(seeds), rnd, pool, names)
        # The reference is jsonschema with `pattern` given ECMA-262's meaning (spec/support/jsonschema_reference.py):
        # on a string ending in a newline, plain jsonschema lets `$` match before it. Those instances stay in the
        # corpus, compared with the ECMA answer; here is counted how often plain jsonschema would have said otherwise.
        reference = reference_failures(schema_name, instance)
        if '\\n"' in json.dumps(instance) and plain.is_valid(instance) != (not reference):
            parted += 1
        # the closure tree itself, on every instance (failures() runs it only when the valid path says invalid)
        assert _key(compiled(schema_name)(instance) or []) == _key(reference), (schema_name, instance)
        assert _key(failures(schema_name, instance)) == _key(reference), (schema_name, instance)
        assert problems(schema_name, instance) == describe(reference)
        # the generated boolean validator: jsonschema's verdict
        assert valid(schema_name, instance) is (not reference), (schema_name, instance)
        keywords.update(f.keyword for f in reference)
        verdicts[not reference] += 1
    # the corpus reaches the rules: every rule keyword the schema uses fails on some instance
    assert _rules(schema, set()) <= set(keywords), (_rules(schema, set()) - set(keywords), keywords)
    # and both verdicts, many times
    assert verdicts[True] >= 100 and verdicts[False] >= 500, verdicts
    if schema_name in ("batchMeterUsage.in.json", "meterUsage.in.json"):  # patterns ending in $ on their strings
        assert parted > 0  # the corpus reaches the cases where ECMA-262 and Python's re.search part


RULES = {"type", "required", "additionalProperties", "minItems", "maxItems", "minLength", "maxLength", "pattern",
         "minimum", "maximum", "enum", "const", "oneOf", "not"}


def _rules(schema: Any, out: set[str]) -> set[str]:
    if isinstance(schema, dict):
        # (an empty required list, minLength 0 or minItems 0 cannot fail)
        out.update(key for key in schema if key in RULES
                   and not (key in ("required", "minLength", "minItems") and not schema[key]))
        if schema.get("format") == "aws-timestamp":
            out.add("format")
        for key, value in schema.items():
            if key not in ("enum", "const", "required", "if"):  # if: a condition, never a failure itself
                _rules(value, out)
    elif isinstance(schema, list):
        for value in schema:
            _rules(value, out)
    return out


def test_given_the_seeds_then_they_are_valid() -> None:
    for schema_name in SCHEMAS:
        if schema_name.endswith(".in.json") or schema_name == "config.json":
            for seed in _seeds(schema_name):
                assert reference_failures(schema_name, seed) == [], (schema_name, seed)
                assert problems(schema_name, seed) == []
                assert valid(schema_name, seed) is True
                assert compiled_valid(schema_name) is compiled_valid(schema_name)  # generated once per process


UNSUPPORTED: list[Any] = [
    {"type": "string", "uniqueItems": True}, {"$ref": "#/x"}, {"items": [{"type": "string"}]},
    {"additionalProperties": {"type": "string"}}, {"properties": {"a": {"patternProperties": {"^x": {}}}}},
    False, "string", {"items": True}, {"items": {}, "prefixItems": [{}]}, {"additionalProperties": True},
    {"oneOf": [{"required": ["a"]}, {"required": ["b"], "dependentRequired": {}}]},
    {"not": {"$defs": {}}}, {"allOf": [{"items": False}]}, {"if": {"$anchor": "x"}},
    {"if": {"type": "object"}, "then": {"minProperties": 1}}, {"if": {}, "else": {"contains": {}}},
    # refused even where the rule could never apply (a string has no members, no items)
    {"type": "string", "properties": {"a": {"$ref": "#"}}}, {"type": "integer", "items": {"uniqueItems": True}},
    {"properties": {"a": {"properties": {"b": {"items": {"properties": {"c": {"unevaluatedItems": False}}}}}}}},
]


@pytest.mark.parametrize("schema", UNSUPPORTED)
def test_given_a_keyword_outside_the_compiled_subset_then_both_compilers_refuse_the_schema(schema: Any) -> None:
    with pytest.raises(ValueError):
        _compile(schema)
    with pytest.raises(ValueError):
        _compile_valid(schema)


def _outcome(build: Any, schema: Any) -> str:
    try:
        build(schema)
    except Exception as exc:  # noqa: BLE001 - the kind of refusal is what is compared
        return type(exc).__name__
    return "compiled"


@pytest.mark.parametrize("schema", [
    *UNSUPPORTED,
    True, {}, {"title": "annotations only", "description": "x", "default": 1, "examples": []},
    {"then": {"$ref": "#"}, "else": {"uniqueItems": True}},  # without `if`, then/else only annotate (both compilers)
    {"type": "no-such-type"}, {"type": ["string", "nope"]}, {"type": []}, {"pattern": "("}, {"pattern": "[\\s\\S]*"},
    {"enum": 5}, {"oneOf": [True, {}]}, {"not": True}, {"if": True, "then": {}, "else": {}},
    *(json_schema(name) for name in SCHEMAS),
])
def test_given_any_schema_then_the_boolean_compiler_refuses_exactly_what_the_closure_compiler_refuses(
        schema: Any) -> None:
    assert _outcome(_compile_valid, schema) == _outcome(_compile, schema)

