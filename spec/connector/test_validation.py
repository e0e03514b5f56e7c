"""Validation before any call: every problem at once, by path, never echoing a value (property-based)."""

from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from metering_emulator.testing import EmulatorServer

from lib.client import Settings, settings_for
from lib.errors import MeteringError
from lib.operations import OPERATIONS
from lib.runner import validate_body
from lib.schema import iso_utc, json_schema, parse_timestamp
from lib.validation import _compile, _compile_valid, batch_problems, compiled_valid, ecma_regex, problems
from spec.connector.builders import LICENSE, PRODUCT, a_config, a_record, hour_start, run_action

ROOT = Path(__file__).resolve().parents[2]

TAG_CHARS = string.ascii_letters + string.digits + "+ -=._:/@"
tag = st.fixed_dictionaries({"Key": st.text(TAG_CHARS, min_size=1, max_size=100),
                             "Value": st.text(TAG_CHARS, min_size=1, max_size=256)})
timestamp = st.one_of(
    st.integers(min_value=0, max_value=4_000_000_000),
    st.integers(min_value=100_000_000_000, max_value=4_000_000_000_000),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                 timezones=st.just(UTC)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
)
meter_body = st.fixed_dictionaries(
    {"ProductCode": st.text(string.ascii_letters + string.digits + "-/=:_.@", max_size=255),
     "Timestamp": timestamp,
     "UsageDimension": st.text(min_size=1, max_size=255)},
    optional={"UsageQuantity": st.integers(0, 2**31 - 1), "DryRun": st.booleans(),
              "ClientToken": st.text(min_size=1, max_size=64),
              "UsageAllocations": st.lists(
                  st.fixed_dictionaries({"AllocatedUsageQuantity": st.integers(0, 2**31 - 1)},
                                        optional={"Tags": st.lists(tag, min_size=1, max_size=5)}),
                  min_size=1, max_size=4)})


@given(meter_body)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_given_any_body_within_the_aws_constraints_then_the_schema_accepts_it(body: dict[str, Any]) -> None:
    assert problems("meterUsage.in.json", body) == []


SECRETISH = st.text(string.ascii_letters + string.digits, min_size=12, max_size=40).map(lambda s: "Zq9" + s)
VIOLATIONS = {
    "/UsageDimension": lambda v: "x" * 256 + v,
    "/ProductCode": lambda v: "bad code! " + v,
    "/ClientToken": lambda v: v * 5 + "y" * 64,
    "/Timestamp": lambda v: "yesterday " + v,
    "/UsageQuantity": lambda v: v,
}


@given(st.sets(st.sampled_from(sorted(VIOLATIONS)), min_size=1), SECRETISH)
@settings(max_examples=100)
def test_given_several_bad_members_then_each_path_is_reported_once_without_its_value(
        bad: set[str], marker: str) -> None:
    body: dict[str, Any] = {"ProductCode": PRODUCT, "Timestamp": 1_700_000_000, "UsageDimension": "users"}
    for path in bad:
        body[path[1:]] = VIOLATIONS[path](marker)
    found = problems("meterUsage.in.json", body)
    assert {p.path for p in found} == bad
    with pytest.raises(MeteringError) as raised:
        validate_body(OPERATIONS["meterUsage"], body)
    text = str(raised.value) + repr(raised.value.error_details)
    assert marker not in text
    assert [p.path for p in raised.value.problems] == sorted(bad)


@given(st.datetimes(min_value=datetime(1971, 1, 2), max_value=datetime(2999, 1, 1)),
       st.integers(-14 * 60, 14 * 60), st.integers(0, 999_999))
def test_given_an_instant_in_any_accepted_form_then_it_becomes_the_same_epoch_second(
        naive: datetime, offset_minutes: int, micros: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = naive.replace(tzinfo=zone, microsecond=micros)
    expected = int(moment.timestamp() // 1)
    assert parse_timestamp(moment.isoformat()) == expected
    assert parse_timestamp(moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")) == expected
    assert parse_timestamp(expected) == expected
    assert parse_timestamp(expected + (micros // 1000) / 1000) == expected  # fractions truncated like botocore
    millis = expected * 1000 + micros // 1000
    if millis >= 100_000_000_000:  # epoch milliseconds are told apart from seconds from 1973-03-03 on
        assert parse_timestamp(millis) == expected
    else:  # below the threshold a number is read as epoch seconds (documented rule)
        assert parse_timestamp(millis) == millis
    assert parse_timestamp(str(expected)) == expected


@pytest.mark.parametrize("value", ["2026-05-01T12:00:00", "2026-05-01", "tomorrow", "", True, None, [], -5,
                                   float("nan"), "2026-13-01T00:00:00Z",
                                   # valid texts whose instant no output can render in UTC (years 0 and 10000)
                                   "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_given_an_ambiguous_or_bad_timestamp_then_it_is_rejected(value: Any) -> None:
    found = problems("meterUsage.in.json", {"ProductCode": PRODUCT, "Timestamp": value, "UsageDimension": "u"})
    assert [p.path for p in found] == ["/Timestamp"]


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-08 01:30:00+00", "2026-12-08T01:30:00Z"),  # PostgreSQL's timestamptz text: an hours-only offset
    ("2026-12-08T01:30:00-05", "2026-12-08T06:30:00Z"),
    ("2026-12-08T01:30:00+0530", "2026-12-07T20:00:00Z"),
    # the hour's last second, as text with more digits than a float holds: truncated, not rounded up into
    # the next hour (and the next hour's bill)
    ("1796695199.9999999", "2026-12-08T01:59:59Z"),
    ("1796695199999.99999", "2026-12-08T01:59:59Z"),
])
def test_given_an_hours_only_offset_or_a_long_fraction_then_the_instant_is_exact(text: str, expected: str) -> None:
    assert iso_utc(parse_timestamp(text)) == expected


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "0999-06-30T23:59:59Z", "9999-12-31T23:59:59Z"])
def test_given_the_first_and_last_years_then_a_timestamp_reads_back_as_the_same_iso_text(text: str) -> None:
    """Outputs render timestamps as ISO-8601 UTC: four-digit years at both ends of the range accepted."""
    assert iso_utc(parse_timestamp(text)) == text


def test_given_both_or_neither_customer_ids_then_the_record_path_says_exactly_one_is_needed() -> None:
    both = dict(a_record(), CustomerAWSAccountId="111122223333")
    neither = {"Timestamp": hour_start(), "Dimension": "users"}
    found = problems("batchMeterUsage.in.json", {"ProductCode": PRODUCT, "UsageRecords": [a_record(), both, neither]})
    assert [(p.path, p.problem) for p in found] == [
        ("/UsageRecords/1", "needs exactly one of CustomerIdentifier, CustomerAWSAccountId"),
        ("/UsageRecords/2", "needs exactly one of CustomerIdentifier, CustomerAWSAccountId")]


def test_given_a_misspelt_member_then_it_is_reported_instead_of_silently_metering_zero() -> None:
    record = {"Timestamp": hour_start(), "CustomerIdentifier": "c", "Dimension": "users", "quantity": 5}
    found = problems("batchMeterUsage.in.json", {"ProductCode": PRODUCT, "UsageRecords": [record]})
    assert [p.path for p in found] == ["/UsageRecords/0"] and "quantity" in found[0].problem


def test_given_allocations_that_break_the_documented_rules_then_each_is_reported() -> None:
    allocations = [{"AllocatedUsageQuantity": 1}, {"AllocatedUsageQuantity": 1},
                   {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "a", "Value": "b"}]},
                   {"AllocatedUsageQuantity": 1, "Tags": [{"Key": "a", "Value": "b"}]}]
    body = {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users", "UsageQuantity": 5,
            "UsageAllocations": allocations}
    with pytest.raises(MeteringError) as raised:
        validate_body(OPERATIONS["meterUsage"], body)
    assert [(p.path, p.problem) for p in raised.value.problems] == [
        ("/UsageAllocations", "allocated quantities add up to 4, not to the record's quantity 5"),
        ("/UsageAllocations/1", "only one allocation may have no tags"),
        ("/UsageAllocations/3", "repeats the tag set of an earlier allocation")]


def test_given_an_invalid_message_when_running_then_nothing_is_sent(metering_emulator: EmulatorServer) -> None:
    with pytest.raises(MeteringError) as raised:
        run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
            a_record(), {"Timestamp": "soon", "CustomerIdentifier": "c", "Dimension": ""}]},
            a_config(metering_emulator.url))
    assert raised.value.code == "ValidationFailed" and raised.value.retryable is False
    assert {p.path for p in raised.value.problems} == {"/UsageRecords/1/Timestamp", "/UsageRecords/1/Dimension"}
    assert raised.value.error_details["problems"][0]["path"].startswith("/UsageRecords/1/")
    assert metering_emulator.admin.stats()["operations"].get("BatchMeterUsage", {}).get("calls", 0) == 0


@pytest.mark.parametrize(("changes", "paths"), [
    ({"secretAccessKey": None}, ["/secretAccessKey"]),
    ({"accessKeyId": None, "secretAccessKey": None}, ["/accessKeyId", "/secretAccessKey"]),
    ({"region": "mars-north-1"}, ["/region"]),
    ({"endpointUrl": "http://metering.example.com"}, ["/endpointUrl"]),
    ({"endpointUrl": "ftp://127.0.0.1"}, ["/endpointUrl"]),
])
def test_given_a_bad_configuration_then_every_field_is_reported_and_no_secret_is_echoed(
        changes: dict[str, Any], paths: list[str]) -> None:
    cfg = a_config("http://127.0.0.1:9", secretAccessKey="Sx/very+secret+value0000")
    for key, value in changes.items():
        cfg.pop(key, None) if value is None else cfg.__setitem__(key, value)
    with pytest.raises(MeteringError) as raised:
        Settings.from_cfg(cfg)
    assert [p.path for p in raised.value.problems] == paths
    assert "very+secret" not in str(raised.value)
    # the step's credentials are at fault, not a message's mapping
    assert str(raised.value).endswith("(fix the credential fields named)"), str(raised.value)


def test_given_the_same_configuration_on_every_message_then_it_is_validated_once_and_errors_every_time(
) -> None:
    cfg = a_config("http://127.0.0.1:9", callsPerSecond="7")
    first = settings_for(cfg)
    assert settings_for(dict(cfg)) is first and first.calls_per_second == 7.0
    assert settings_for({**cfg, "region": "eu-west-1"}).region == "eu-west-1"  # another cfg, other settings
    bad = {**cfg, "region": "mars-north-1"}
    for _ in range(2):  # a refused cfg is not cached: the next message is refused the same way
        with pytest.raises(MeteringError) as raised:
            settings_for(bad)
        assert [p.path for p in raised.value.problems] == ["/region"]


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"), ("http://localhost:1", "http://localhost:1/"),
    ("http://[::1]:9", "http://[::1]:9/"), ("https://vpce.example.com", "https://vpce.example.com/"),
    (None, "https://metering.marketplace.eu-west-1.amazonaws.com/")])
def test_given_an_endpoint_then_tls_is_required_except_on_loopback(url: str | None, expected: str) -> None:
    cfg = a_config(url or "", region="eu-west-1")
    if url is None:
        cfg.pop("endpointUrl")
    assert Settings.from_cfg(cfg).endpoint_url == expected


@given(st.lists(st.booleans(), max_size=40))
@settings(max_examples=60)
def test_given_any_mix_of_good_and_broken_records_then_exactly_the_broken_ones_are_reported(
        broken: list[bool]) -> None:
    records = [{"Timestamp": "late", "CustomerIdentifier": "c", "Dimension": ""} if bad else a_record()
               for bad in broken]
    found = problems("batchMeterUsage.in.json", {"ProductCode": PRODUCT, "UsageRecords": records})
    assert {p.path for p in found} == {f"/UsageRecords/{i}/{m}" for i, bad in enumerate(broken) if bad
                                        for m in ("Timestamp", "Dimension")}


# Patterns are ECMA-262 regexes (JSON Schema): `$` without the multiline flag matches only at the very end. Python's
# re.search (which jsonschema uses) also lets it match before a trailing newline; AWS refuses such values.
LICENSED = {"CustomerAWSAccountId": "111122223333", "LicenseArn": LICENSE, "Dimension": "users"}
NEWLINE_BATCH = {"UsageRecords": [
    {"Timestamp": hour_start(), **LICENSED, "QuantityAsDecimal": "17\n"},
    {"Timestamp": hour_start(), **LICENSED, "QuantityAsDecimal": "3",
     "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "3", "Tags": [{"Key": "team\n", "Value": "x"}]}]},
    {"Timestamp": hour_start(), **LICENSED, "CustomerAWSAccountId": "111122223333\n", "QuantityAsDecimal": "2"}]}


def test_given_values_with_a_trailing_newline_then_both_compilers_refuse_them_naming_the_field_and_rule() -> None:
    with pytest.raises(MeteringError) as raised:
        validate_body(OPERATIONS["batchMeterUsage"], NEWLINE_BATCH)
    assert [(p.path, p.problem) for p in raised.value.problems] == [
        ("/UsageRecords/0/QuantityAsDecimal", "must be a decimal number written as text, with at most 10 digits "
                                              "before the point and 6 after, such as \"17.42\""),
        ("/UsageRecords/1/UsageAllocations/0/Tags/0/Key", "must match the pattern ^[a-zA-Z0-9+ -=._:\\/@]+$"),
        ("/UsageRecords/2/CustomerAWSAccountId", "must be digits only (a 12-digit AWS account id)")]
    for index, record in enumerate(NEWLINE_BATCH["UsageRecords"]):  # each alone, by the generated validator too
        assert compiled_valid("batchMeterUsage.in.json")({"UsageRecords": [record]}) is False, index
    # the same records without the newline are valid
    fixed = json.loads(json.dumps(NEWLINE_BATCH).replace("\\n", ""))
    assert problems("batchMeterUsage.in.json", fixed) == [] and compiled_valid("batchMeterUsage.in.json")(fixed)
    # jsonschema's re.search would have let all three through (why the reference gives `pattern` ECMA's meaning)
    assert Draft202012Validator(json_schema("batchMeterUsage.in.json")).is_valid(NEWLINE_BATCH)


DECIMAL_RULE = "^(?!0*(\\.0*)?$)[0-9]{1,4}(\\.[0-9]{1,3})?$"
# (pattern, string, ECMA-262's answer)
ECMA_ANSWERS: list[tuple[str, str, bool]] = [
    ("^[0-9]+$", "17", True), ("^[0-9]+$", "17\n", False), ("^[0-9]+$", "\n", False), ("^[0-9]+$", "1\n\n", False),
    ("a$", "ba", True), ("a$", "a\nb", False), ("a$", "ba\n", False),
    ("\\$", "$", True), ("a\\$", "a", False), ("a\\$", "a$", True),  # escaped: a literal dollar sign
    ("^[$]+$", "$$", True), ("^[$]+$", "$\n", False),  # inside a class: a literal
    ("^[^\\]$]$", "x", True), ("^[^\\]$]$", "$", False), ("^[^\\]$]$", "x\n", False),  # \] does not end the class
    ("^[a-]$", "-", True), ("^[a-]$", "-\n", False),
    ("^\\\\$", "\\", True), ("^\\\\$", "\\\n", False),  # an escaped backslash, then the anchor
    ("^(a|b$)", "a\n", True), ("^(a|b$)", "b\n", False), ("^(?:b$|c)", "b", True),
    (DECIMAL_RULE, "3.3", True), (DECIMAL_RULE, "3.3\n", False), (DECIMAL_RULE, "0", False),
    (DECIMAL_RULE, "0\n", False),
    ("[\\s\\S]*$", "x\n", True), ("^[\\s\\S]+$", "\n", True), ("^a\\n$", "a\n", True), ("^a\\n$", "a\n\n", False),
]


@pytest.mark.parametrize(("pattern", "text", "expected"), ECMA_ANSWERS)
def test_given_a_pattern_then_both_compilers_give_the_ecma_262_answer(pattern: str, text: str, expected: bool) -> None:
    assert bool(re.search(ecma_regex(pattern), text)) is expected
    schema = {"type": "string", "pattern": pattern}
    assert (not _compile(schema)(text), _compile_valid(schema)(text)) == (expected, expected)
    if text.endswith("\n") and not expected and re.search(pattern, text):
        assert Draft202012Validator(schema).is_valid(text)  # plain jsonschema's answer differs here


@pytest.mark.parametrize("pattern", ["[]a]", "^[^]a]$", "x[]"])
def test_given_a_class_opening_with_a_bracket_then_both_compilers_refuse_the_pattern(pattern: str) -> None:
    for build in (_compile, _compile_valid):  # ECMA: an empty class / any character; Python: a literal ]
        with pytest.raises(ValueError, match="class opening"):
            build({"pattern": pattern})


def test_given_legacy_records_without_product_code_then_they_are_refused_before_any_call(
        metering_emulator: EmulatorServer) -> None:
    body = {"UsageRecords": [a_record(timestamp=hour_start(-hour)) for hour in range(4)]}
    with pytest.raises(MeteringError) as raised:
        run_action("batchMeterUsage", body, a_config(metering_emulator.url))
    assert raised.value.code == "ValidationFailed"
    assert [(p.path, p.problem) for p in raised.value.problems] == [
        ("/ProductCode", "is required when records carry a CustomerIdentifier (/UsageRecords/0/CustomerIdentifier "
                         "and 3 more): a legacy record names its product by the request's ProductCode")]
    assert metering_emulator.admin.stats()["operations"].get("BatchMeterUsage", {}).get("calls", 0) == 0
    # among licensed records too, and an empty ProductCode is none
    licensed = {"Timestamp": hour_start(), **LICENSED, "Quantity": 1}
    mixed = {"ProductCode": "", "UsageRecords": [licensed, a_record(customer="")]}
    found = batch_problems(mixed, "UsageRecords")
    assert [p.path for p in found] == ["/ProductCode"]
    assert found[0].problem.startswith("is required when records carry a CustomerIdentifier "
                                       "(/UsageRecords/1/CustomerIdentifier and 0 more)")
    assert batch_problems({"ProductCode": PRODUCT, **body}, "UsageRecords") == []
    assert batch_problems({"UsageRecords": [licensed]}, "UsageRecords") == []


def test_given_account_records_without_license_or_product_code_then_each_is_refused_before_any_call(
        metering_emulator: EmulatorServer) -> None:
    # No ProductCode: each record's LicenseArn must name the product (botocore model, BatchMeterUsageRequest).
    licensed = {"Timestamp": hour_start(), **LICENSED, "Quantity": 1}
    bare = {key: value for key, value in licensed.items() if key != "LicenseArn"}
    body = {"UsageRecords": [licensed, bare, licensed, bare]}
    with pytest.raises(MeteringError) as raised:
        run_action("batchMeterUsage", body, a_config(metering_emulator.url))
    assert raised.value.code == "ValidationFailed"
    assert [p.path for p in raised.value.problems] == ["/UsageRecords/1/LicenseArn", "/UsageRecords/3/LicenseArn"]
    assert "required when the request has no ProductCode" in raised.value.problems[0].problem
    # an empty LicenseArn (refused by the schema's pattern first) names no product either
    assert [p.path for p in batch_problems({"UsageRecords": [{**bare, "LicenseArn": ""}]}, "UsageRecords")] == [
        "/UsageRecords/0/LicenseArn"]
    assert metering_emulator.admin.stats()["operations"].get("BatchMeterUsage", {}).get("calls", 0) == 0
    # a legacy account record with the request's ProductCode stays valid
    assert batch_problems({"ProductCode": PRODUCT, "UsageRecords": [bare]}, "UsageRecords") == []


def _schema_patterns() -> list[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                found.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in (ROOT / "schemas").glob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return sorted(found)


PATTERN_PROBES = ["", "a", "A1", "17", "17\n", "\n17", "17.5", "17.1234567", "0", "01", "111122223333",
                  "111122223333\n", "team", "team\n", "k\n", "x y", "a=b", "$", "abc$", "\n", "\r\n", "a\nb",
                  "prod-1234abcd", "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef",
                  "arn:aws:license-manager::111122223333:license:l-0123456789abcdef0123456789abcdef\n"]


def test_given_every_schema_pattern_then_ecma_regex_answers_as_javascript_does() -> None:
    """An independent check of :func:`ecma_regex`: the schemas' patterns evaluated by Node's own RegExp (the
    ECMA-262 engine JSON Schema refers to) on probe strings, ASCII ones (Python's \\w and \\d take Unicode
    beyond ECMA's; lib/validation.py says so)."""
    node = shutil.which("node")
    assert node, "node is needed (scripts/setup.sh installs it with the peers)"
    patterns = _schema_patterns()
    assert len(patterns) >= 5
    pairs = [[p, s] for p in patterns for s in PATTERN_PROBES]
    script = ("let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const pairs=JSON.parse(d);"
              "process.stdout.write(JSON.stringify(pairs.map(([p,s])=>new RegExp(p).test(s))))})")
    out = subprocess.run([node, "-e", script], input=json.dumps(pairs), capture_output=True, text=True,
                         timeout=60, check=True)
    expected = json.loads(out.stdout)
    got = [re.search(ecma_regex(p), s) is not None for p, s in pairs]
    differ = [(p, s, e) for (p, s), e, g in zip(pairs, expected, got, strict=True) if e != g]
    assert differ == []
    assert any(e for e in expected) and not all(expected)  # the probes tell patterns apart


# -- error texts an engineer can act on (a rule in words, not a regular expression) -----------------------------------

def test_given_an_empty_required_string_then_the_error_says_it_must_not_be_empty() -> None:
    assert [(p.path, p.problem) for p in problems("resolveCustomer.in.json", {"RegistrationToken": ""})] == [
        ("/RegistrationToken", "must not be empty")]


def test_given_an_account_id_mapped_as_a_number_then_the_error_says_to_map_it_as_text() -> None:
    found = problems("batchMeterUsage.in.json", {"UsageRecords": [
        {"Timestamp": hour_start(), "CustomerAWSAccountId": 111122223333, "LicenseArn": LICENSE, "Dimension": "d"}]})
    assert [p.path for p in found] == ["/UsageRecords/0/CustomerAWSAccountId"]
    assert found[0].problem.startswith("must be a string") and "$string(...)" in found[0].problem


@pytest.mark.parametrize(("schema", "body", "path"), [
    ("batchMeterUsage.in.json", {"ProductCode": PRODUCT, "UsageRecords": [
        {"Timestamp": 1, "CustomerIdentifier": "c", "Dimension": "d", "Quantity": 3_000_000_000}]},
     "/UsageRecords/0/Quantity"),
    ("meterUsage.in.json", {"ProductCode": PRODUCT, "Timestamp": 1, "UsageDimension": "d",
                            "UsageQuantity": 3_000_000_000}, "/UsageQuantity"),
])
def test_given_a_whole_quantity_above_the_models_maximum_then_the_error_points_at_the_decimal_member(
        schema: str, body: dict[str, Any], path: str) -> None:
    found = {p.path: p.problem for p in problems(schema, body)}
    assert found[path].startswith("must be less than or equal to 2147483647; give larger quantities in ")
    assert "AsDecimal" in found[path]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("sessionDurationSeconds", "60", "a whole number of seconds from 900 to 43200"),
    ("callsPerSecond", "0", "a number above 0"),
    ("roleSessionName", "a b", "2 to 64 characters"),
    ("endpointUrl", "https://example.com/path", "without path"),
])
def test_given_a_config_field_breaking_its_pattern_then_the_error_states_the_rule_in_words(
        field: str, value: str, words: str) -> None:
    cfg = {"accessKeyId": "AKIAEXAMPLE000000000", "secretAccessKey": "secret/Example+Key0000000000000000000000",
           "authMode": "assumeRole", "roleArn": "arn:aws:iam::123456789012:role/r", field: value}
    with pytest.raises(MeteringError) as raised:
        Settings.from_cfg(cfg)
    found = {p.path: p.problem for p in raised.value.problems}
    assert words in found[f"/{field}"] and "^" not in found[f"/{field}"], found
