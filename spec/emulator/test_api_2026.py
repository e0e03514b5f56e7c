"""The late-2026 Metering API (botocore 1.44.8) through botocore's real client over HTTP: the usage clock
and the month-end cut-off, per-operation windows, decimal quantities billed exactly and deduplicated by
value, concurrent agreements (two licenses of one account), AgreementId, legacy and new integrations,
normalised echoes and the RequestTimeoutException fault."""

from __future__ import annotations

import calendar
import copy
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError
from metering_emulator.testing import DEFAULT_FIXTURES, AdminError, EmulatorServer

from spec.emulator.support import LICENSE_ARN, PRODUCT, client, now

LICENSE_2 = "arn:aws:license-manager::111122223333:license:l-fedcba9876543210fedcba9876543210"
NEW_PRODUCT = "emu-demo-newsaas-0001"
NEW_LICENSE = "arn:aws:license-manager::111122223333:license:l-00000000000000000000000000000new"
ACCOUNT = "111122223333"


def _epoch(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _rec(ts: float, **kw: Any) -> dict[str, Any]:
    return {"Timestamp": ts, "CustomerIdentifier": "cust-demo-0001", "Dimension": "users", **kw}


def _lic(ts: int, arn: str, **kw: Any) -> dict[str, Any]:
    return {"Timestamp": ts, "CustomerAWSAccountId": ACCOUNT, "LicenseArn": arn, "Dimension": "users", **kw}


def _code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


# -- the usage clock and the windows ----------------------------------------------------------------------


@pytest.mark.parametrize(("clock", "accepted"), [("2026-12-01T05:59:00Z", True), ("2026-12-01T06:01:00Z", False)])
def test_given_the_clock_on_the_first_when_batching_the_last_hour_of_the_previous_month_then_the_cut_off_decides(
    emu: EmulatorServer, clock: str, accepted: bool
) -> None:
    emu.admin.set_clock(now=clock)
    last_hour = _epoch("2026-11-30T23:00:00Z")
    this_month = _epoch("2026-12-01T00:30:00Z")
    c = client(emu)
    if accepted:
        result = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(last_hour, QuantityAsDecimal="2.5")])
        assert result["Results"][0]["Status"] == "Success"
        assert [r["hour"] for r in emu.admin.records()["records"]] == ["2026-11-30T23:00:00Z"]
        return
    with pytest.raises(c.exceptions.TimestampOutOfBoundsException) as info:
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(this_month, Quantity=1),
                                                               _rec(last_hour, Quantity=1, Dimension="api_calls")])
    assert "previous billing month" in info.value.response["Error"]["Message"]
    assert emu.admin.records()["records"] == [], "the whole call is rejected"
    assert c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(this_month, Quantity=1)])[
        "Results"][0]["Status"] == "Success"


def test_given_a_mid_month_clock_then_batch_takes_20_hours_and_meter_usage_only_6(emu: EmulatorServer) -> None:
    at = emu.admin.set_clock(now="2026-11-15T12:30:00Z", frozen=True)
    assert at["mode"] == "set" and at["frozen"] is True and at["now"] == _epoch("2026-11-15T12:30:00Z")
    c = client(emu)
    twenty = _epoch("2026-11-14T16:30:00Z")
    assert c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(twenty, Quantity=3)])[
        "Results"][0]["Status"] == "Success"
    with pytest.raises(c.exceptions.TimestampOutOfBoundsException):
        c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(twenty - 5 * 3600, Quantity=3)])
    with pytest.raises(c.exceptions.TimestampOutOfBoundsException):
        c.meter_usage(ProductCode=PRODUCT, Timestamp=_epoch("2026-11-15T05:00:00Z"), UsageDimension="users")
    c.meter_usage(ProductCode=PRODUCT, Timestamp=_epoch("2026-11-15T07:00:00Z"), UsageDimension="users",
                  UsageQuantityAsDecimal="1")
    assert sorted(r["operation"] for r in emu.admin.records()["records"]) == ["BatchMeterUsage", "MeterUsage"]


def test_given_the_clock_api_then_set_offset_real_and_reset_behave(emu: EmulatorServer) -> None:
    assert emu.admin.clock()["mode"] == "real"
    running = emu.admin.set_clock(now=_epoch("2026-12-01T05:59:00Z"))
    assert running["iso"] == "2026-12-01T05:59:00Z" and running["frozen"] is False
    time.sleep(1.1)
    assert emu.admin.clock()["now"] > running["now"], "a set clock runs on unless frozen"
    offset = emu.admin.set_clock(offset_seconds=-3600)
    assert offset["mode"] == "offset" and abs(offset["offsetSeconds"] + 3600) < 1e-6
    assert abs(emu.admin.health()["now"] - (time.time() - 3600)) < 5
    assert emu.admin.real_clock()["mode"] == "real"
    emu.admin.set_clock(now="2027-01-01T00:00:00Z")
    emu.admin.reset()
    assert emu.admin.clock()["mode"] == "real"


@pytest.mark.parametrize("body", [{"now": "yesterday"}, {"now": "2026-12-01T05:59:00"}, {"now": True},
                                  {"offsetSeconds": "1"}, {"real": False}, {}, {"now": 1, "real": True},
                                  {"offsetSeconds": 1, "frozen": True}, {"when": 1}, []])
def test_given_a_bad_clock_setting_then_400_and_the_clock_is_unchanged(emu: EmulatorServer, body: Any) -> None:
    with pytest.raises(AdminError) as info:
        emu.admin.call("POST", "clock", body)
    assert info.value.status == 400 and info.value.body["__type"] == "ValidationException"
    assert emu.admin.clock()["mode"] == "real"


def test_given_a_set_clock_then_sigv4_still_checks_against_real_time(emu: EmulatorServer) -> None:
    emu.admin.set_clock(now="2020-02-01T03:00:00Z")
    # botocore signs with the real time: the request verifies although the usage clock is years away
    assert client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")["ProductCode"]


def test_given_the_old_single_window_name_then_it_sets_both_windows(emu: EmulatorServer) -> None:
    config = emu.admin.set_config(timestamp_window_hours=12)
    assert (config["batchMeterUsageWindowHours"], config["meterUsageWindowHours"]) == (12, 12)
    assert "timestampWindowHours" not in config


def test_given_a_frozen_clock_then_the_windows_are_exact_ages_not_hour_aligned(emu: EmulatorServer) -> None:
    """BatchMeterUsage: "Usage records aren't accepted 24 hours or more after an event"; MeterUsage: "more
    than six hours after events occur, the records won't be accepted" (botocore model). Measured from now,
    not from the start of the current hour."""
    emu.admin.set_clock(now="2026-12-10T13:30:00Z", frozen=True)
    c = client(emu)

    def batch(ts: int) -> str:
        try:
            result = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(ts, Quantity=1)])
        except c.exceptions.TimestampOutOfBoundsException:
            return "out"
        return str(result["Results"][0]["Status"])

    def meter(ts: int) -> str:
        try:
            c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=1)
        except c.exceptions.TimestampOutOfBoundsException:
            return "out"
        return "Success"

    assert batch(_epoch("2026-12-09T13:05:00Z")) == "out", "24 h 25 min old: after the start of the hour - 24 h"
    assert batch(_epoch("2026-12-09T13:30:00Z")) == "out", "exactly 24 h old"
    assert batch(_epoch("2026-12-09T13:30:01Z")) == "Success", "a second under 24 h old"
    assert meter(_epoch("2026-12-10T07:05:00Z")) == "out", "6 h 25 min old: after the start of the hour - 6 h"
    assert meter(_epoch("2026-12-10T07:29:59Z")) == "out", "a second over 6 h old"
    assert meter(_epoch("2026-12-10T07:30:00Z")) == "Success", "exactly 6 h old"
    emu.admin.set_config(batch_meter_usage_window_hours=2, meter_usage_window_hours=2)
    assert batch(_epoch("2026-12-10T11:30:00Z")) == "out" and batch(_epoch("2026-12-10T11:30:01Z")) == "Success"
    assert meter(_epoch("2026-12-10T11:29:59Z")) == "out" and meter(_epoch("2026-12-10T11:30:00Z")) == "Success"


# -- decimal quantities -----------------------------------------------------------------------------------


def test_given_botocore_decimal_members_then_the_exact_quantities_are_billed(emu: EmulatorServer) -> None:
    c = client(emu)
    ts = now()
    result = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        _rec(ts, QuantityAsDecimal="17.42", UsageAllocations=[
            {"AllocatedUsageQuantityAsDecimal": "0.1", "Tags": [{"Key": "team", "Value": "a"}]},
            {"AllocatedUsageQuantityAsDecimal": "0.2", "Tags": [{"Key": "team", "Value": "b"}]},
            {"AllocatedUsageQuantityAsDecimal": "17.12"}]),
        _rec(ts, CustomerIdentifier="cust-demo-0002", QuantityAsDecimal="0.000001"),
    ])
    assert [r["Status"] for r in result["Results"]] == ["Success", "Success"]
    assert result["Results"][0]["UsageRecord"]["QuantityAsDecimal"] == "17.42"
    meter = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="api_calls",
                          UsageQuantityAsDecimal="2.5",
                          UsageAllocations=[{"AllocatedUsageQuantityAsDecimal": "2.5"}])
    records = {r["meteringRecordId"]: r for r in emu.admin.records()["records"]}
    billed = [(records[r["MeteringRecordId"]]["quantityDecimal"], records[r["MeteringRecordId"]]["quantity"])
              for r in result["Results"]]
    assert billed == [("17.42", "17.42"), ("0.000001", "0.000001")]
    assert records[meter["MeteringRecordId"]]["quantityDecimal"] == "2.5"
    assert records[meter["MeteringRecordId"]]["quantityMember"] == "UsageQuantityAsDecimal"
    summary = emu.admin.records(customer="cust-demo-0001")["summary"]
    assert [(s["quantityDecimal"], s["quantity"]) for s in summary] == [("17.42", "17.42")]


def test_given_whole_quantities_then_the_records_view_keeps_an_integer_quantity(emu: EmulatorServer) -> None:
    client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(now(), QuantityAsDecimal="17.00")])
    stored = emu.admin.records()["records"][0]
    assert (stored["quantity"], stored["quantityDecimal"], stored["quantityMember"]) == (17, "17", "QuantityAsDecimal")


@pytest.mark.parametrize(("first", "second", "status"), [
    ({"Quantity": 17}, {"QuantityAsDecimal": "17.00"}, "Success"),
    ({"QuantityAsDecimal": "17.0"}, {"Quantity": 17}, "Success"),
    ({"QuantityAsDecimal": "17.000000"}, {"QuantityAsDecimal": "17"}, "Success"),
    ({"QuantityAsDecimal": "17.42"}, {"QuantityAsDecimal": "17.420"}, "Success"),
    ({"Quantity": 17}, {"QuantityAsDecimal": "17.000001"}, "DuplicateRecord"),
    ({"QuantityAsDecimal": "0"}, {}, "Success"),
])
def test_given_a_metered_hour_then_quantities_are_compared_by_value(
    emu: EmulatorServer, first: dict[str, Any], second: dict[str, Any], status: str
) -> None:
    c = client(emu)
    ts = now()
    original = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(ts, **first)])["Results"][0]
    again = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(ts, **second)])["Results"][0]
    assert again["Status"] == status
    assert again["MeteringRecordId"] == original["MeteringRecordId"]
    stored = emu.admin.records()["records"]
    assert len(stored) == 1
    assert (stored[0]["submissions"], stored[0]["duplicatesRejected"]) == ((2, 0) if status == "Success" else (1, 1))


def test_given_meter_usage_then_dedupe_and_client_tokens_compare_by_value(emu: EmulatorServer) -> None:
    c = client(emu)
    ts = now()
    a = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=5, ClientToken="v-1")
    b = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantityAsDecimal="5.00",
                      ClientToken="v-1")
    assert a["MeteringRecordId"] == b["MeteringRecordId"]
    with pytest.raises(c.exceptions.IdempotencyConflictException):
        c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantityAsDecimal="5.01",
                      ClientToken="v-1")
    with pytest.raises(c.exceptions.DuplicateRequestException):
        c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantityAsDecimal="5.5")
    assert [r["quantityDecimal"] for r in emu.admin.records()["records"]] == ["5"]


def test_given_a_client_token_then_dry_run_false_is_the_same_request_as_no_dry_run(emu: EmulatorServer) -> None:
    """DryRun "Defaults to false if not specified" (botocore model): sending false changes nothing."""
    c = client(emu)
    ts = now()
    first = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=3,
                          ClientToken="dry-1")
    again = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="users", UsageQuantity=3,
                          ClientToken="dry-1", DryRun=False)
    assert again["MeteringRecordId"] == first["MeteringRecordId"]
    other = c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="api_calls", UsageQuantity=2,
                          ClientToken="dry-2", DryRun=False)
    assert c.meter_usage(ProductCode=PRODUCT, Timestamp=ts, UsageDimension="api_calls", UsageQuantity=2,
                         ClientToken="dry-2")["MeteringRecordId"] == other["MeteringRecordId"]
    assert len(emu.admin.records()["records"]) == 2


@pytest.mark.parametrize(("call", "code", "text"), [
    (lambda c: c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(now(), Quantity=1, QuantityAsDecimal="1")]),
     "ValidationException", "'usageRecords.1.member.quantity' and 'usageRecords.1.member.quantityAsDecimal'"),
    (lambda c: c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users", UsageQuantity=1,
                             UsageQuantityAsDecimal="1"),
     "ValidationException", "'usageQuantity' and 'usageQuantityAsDecimal'"),
    (lambda c: c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(now(), QuantityAsDecimal="1.5e2")]),
     "ValidationException", "Member must satisfy regular expression pattern: ^(0|[1-9][0-9]{0,9})(\\.[0-9]{1,6})?$"),
    (lambda c: c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users",
                             UsageQuantityAsDecimal="3", UsageAllocations=[{"AllocatedUsageQuantity": 3}]),
     "InvalidUsageAllocationsException", "don't use the same type of quantity (whole number or decimal)"),
    (lambda c: c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(now(), QuantityAsDecimal="0.3",
                                   UsageAllocations=[{"AllocatedUsageQuantityAsDecimal": "0.1"},
                                                     {"AllocatedUsageQuantityAsDecimal": "0.1",
                                                      "Tags": [{"Key": "k", "Value": "v"}]}])]),
     "InvalidUsageAllocationsException", "(0.2) is not equal to the usage quantity (0.3)"),
])
def test_given_what_aws_rejects_then_botocore_sees_the_aws_error(emu: EmulatorServer, call: Any, code: str,
                                                                 text: str) -> None:
    with pytest.raises(ClientError) as info:
        call(client(emu))
    assert _code(info) == code
    assert text in info.value.response["Error"]["Message"]
    assert emu.admin.records()["records"] == []


# -- concurrent agreements, AgreementId, integrations --------------------------------------------------------


def test_given_two_licenses_of_one_account_then_the_same_hour_and_dimension_bill_independently(
    emu: EmulatorServer,
) -> None:
    c = client(emu)
    ts = now()
    result = c.batch_meter_usage(UsageRecords=[_lic(ts, LICENSE_ARN, QuantityAsDecimal="4"),
                                               _lic(ts, LICENSE_2, QuantityAsDecimal="5.5")])
    assert [r["Status"] for r in result["Results"]] == ["Success", "Success"]
    again = c.batch_meter_usage(UsageRecords=[_lic(ts, LICENSE_2, QuantityAsDecimal="6")])["Results"][0]
    assert again["Status"] == "DuplicateRecord"
    assert again["MeteringRecordId"] == result["Results"][1]["MeteringRecordId"]
    summary = sorted((s["licenseArn"], s["quantityDecimal"]) for s in emu.admin.records()["summary"])
    assert summary == [(LICENSE_ARN, "4"), (LICENSE_2, "5.5")]
    only = emu.admin.records(license_arn=LICENSE_2)["records"]
    assert [r["quantityDecimal"] for r in only] == ["5.5"]


def test_given_product_code_with_license_records_then_accepted_but_flagged_for_audits(emu: EmulatorServer) -> None:
    ts = now()
    c = client(emu)
    c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_lic(ts, LICENSE_ARN, Quantity=1), _rec(ts, Quantity=1)])
    flagged = {r["meteringRecordId"]: r.get("productCodeWithLicenseArn", False)
               for r in emu.admin.records()["records"]}
    assert sorted(flagged.values()) == [False, True]
    assert emu.admin.stats()["audit"] == {"productCodeWithLicenseArn": 1, "productCodeAndLicenseArnSameHour": 0}


@pytest.mark.parametrize("license_first", [False, True])
def test_given_product_code_and_license_arn_records_of_one_customer_hour_then_billed_twice_and_audited(
    emu: EmulatorServer, license_first: bool
) -> None:
    """"Sending metering records with both ProductCode and LicenseArn for the same customer within the same
    hour will result in duplicate billing" (botocore model): a client migrating to LicenseArn that still
    sends ProductCode records in the same hour is caught double-billing."""
    c = client(emu)
    ts = now()
    by_code = {"Timestamp": ts, "CustomerAWSAccountId": ACCOUNT, "Dimension": "users", "Quantity": 5}

    def send_by_code() -> dict[str, Any]:
        return dict(c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[by_code])["Results"][0])

    def send_by_license() -> dict[str, Any]:
        return dict(c.batch_meter_usage(UsageRecords=[_lic(ts, LICENSE_ARN, Quantity=5)])["Results"][0])

    sends = [send_by_license, send_by_code] if license_first else [send_by_code, send_by_license]
    first, second = (send() for send in sends)
    assert (first["Status"], second["Status"]) == ("Success", "Success")
    assert first["MeteringRecordId"] != second["MeteringRecordId"], "product- and license-based usage bill apart"
    # each basis still deduplicates its own resends
    assert [send()["MeteringRecordId"] for send in sends] == [first["MeteringRecordId"], second["MeteringRecordId"]]
    records = {r["meteringRecordId"]: r for r in emu.admin.records()["records"]}
    assert len(records) == 2
    assert sum(r["quantity"] for r in records.values()) == 10, "billed twice"
    assert "doubleBilledWith" not in records[first["MeteringRecordId"]]
    assert records[second["MeteringRecordId"]]["doubleBilledWith"] == first["MeteringRecordId"]
    assert emu.admin.stats()["audit"] == {"productCodeWithLicenseArn": 0, "productCodeAndLicenseArnSameHour": 1}
    # another dimension or hour of the same customer is not a double billing
    c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[{**by_code, "Dimension": "api_calls"}])
    c.batch_meter_usage(UsageRecords=[_lic(ts - 3600, LICENSE_ARN, Quantity=5)])
    assert emu.admin.stats()["audit"]["productCodeAndLicenseArnSameHour"] == 1


def test_given_the_legacy_demo_token_then_resolve_customer_returns_the_identifier_and_the_agreement(
    emu: EmulatorServer,
) -> None:
    result = client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert result["CustomerIdentifier"] == "cust-demo-0001"
    # model: resolved "to obtain a CustomerIdentifier along with the CustomerAWSAccountId, ProductCode, ..."
    assert result["CustomerAWSAccountId"] == "210987654321" and result["ProductCode"] == "emu-demo-product-0001"
    assert result["Metadata"] == {"AgreementId": "agmt-demo-cust-0001"}


def test_given_a_new_integration_product_then_resolve_customer_has_no_customer_identifier(
    emu: EmulatorServer,
) -> None:
    result = client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0002")
    del result["ResponseMetadata"]
    assert result == {"CustomerAWSAccountId": ACCOUNT, "LicenseArn": NEW_LICENSE, "ProductCode": NEW_PRODUCT,
                      "Metadata": {"AgreementId": "agmt-demo-newsaas-0001"}}
    token = emu.admin.mint_token(NEW_PRODUCT, {"customerIdentifier": "cust-x", "customerAWSAccountId": ACCOUNT,
                                               "licenseArn": NEW_LICENSE})
    minted = client(emu).resolve_customer(RegistrationToken=token)
    assert "CustomerIdentifier" not in minted and minted["Metadata"]["AgreementId"] == "agmt-demo-newsaas-0001"


def test_given_a_minted_customer_with_its_own_agreement_then_that_agreement_is_returned(emu: EmulatorServer) -> None:
    token = emu.admin.mint_token(PRODUCT, {"customerAWSAccountId": ACCOUNT, "licenseArn": LICENSE_2,
                                           "agreementId": "agmt-minted-0001"})
    assert client(emu).resolve_customer(RegistrationToken=token)["Metadata"]["AgreementId"] == "agmt-minted-0001"
    derived = emu.admin.mint_token(PRODUCT, {"customerIdentifier": "cust-unlisted"})
    agreement = client(emu).resolve_customer(RegistrationToken=derived)["Metadata"]["AgreementId"]
    assert agreement.startswith("agmt-") and len(agreement) <= 64
    with pytest.raises(AdminError):
        emu.admin.mint_token(PRODUCT, {"customerIdentifier": "c", "agreementId": "not valid!"})


def test_given_a_new_integration_then_customer_identifier_records_are_refused(emu: EmulatorServer) -> None:
    c = client(emu)
    with pytest.raises(c.exceptions.InvalidCustomerIdentifierException):
        c.batch_meter_usage(ProductCode=NEW_PRODUCT, UsageRecords=[_rec(now(), Quantity=1)])
    ok = c.batch_meter_usage(UsageRecords=[_lic(now(), NEW_LICENSE, QuantityAsDecimal="1.5")])
    assert ok["Results"][0]["Status"] == "Success"


# -- echoes -----------------------------------------------------------------------------------------------


def test_given_normalised_echoes_then_botocore_parses_the_other_forms(emu: EmulatorServer) -> None:
    emu.admin.set_config(echo="normalised")
    ts = now()
    result = client(emu).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        _rec(ts + 0.5, QuantityAsDecimal="17.42"), _rec(ts, CustomerIdentifier="cust-demo-0002")])
    first, second = (r["UsageRecord"] for r in result["Results"])
    assert first["QuantityAsDecimal"] == "17.420000"
    assert first["Timestamp"] == datetime.fromtimestamp(ts, UTC)
    assert second["Quantity"] == 0 and "QuantityAsDecimal" not in second
    assert [r["quantityDecimal"] for r in emu.admin.records()["records"]] == ["17.42", "0"]
    with pytest.raises(AdminError):
        emu.admin.set_config(echo="loud")


# -- the RequestTimeoutException fault --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_given_request_timeouts_when_botocore_retries_then_its_own_retry_recovers(emu: EmulatorServer,
                                                                                  mode: str) -> None:
    emu.admin.add_fault(type="requestTimeout", count=2, operations=["BatchMeterUsage"])
    c = client(emu, retries={"mode": mode, "total_max_attempts": 3})
    result = c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[_rec(now(), QuantityAsDecimal="1.25")])
    assert result["Results"][0]["Status"] == "Success"
    assert result["ResponseMetadata"]["RetryAttempts"] == 2
    stats = emu.admin.stats()["operations"]["BatchMeterUsage"]
    assert (stats["calls"], stats["errors"]["RequestTimeoutException"]) == (3, 2)
    assert [r["quantityDecimal"] for r in emu.admin.records()["records"]] == ["1.25"]


def test_given_a_request_timeout_without_retries_then_botocore_reports_code_and_status(emu: EmulatorServer) -> None:
    emu.admin.add_fault(type="requestTimeout", count=1)
    with pytest.raises(ClientError) as info:
        client(emu).resolve_customer(RegistrationToken="emu-demo-registration-token-0001")
    assert _code(info) == "RequestTimeoutException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 408
    assert info.value.response["ResponseMetadata"]["RequestId"]


def test_given_licenses_of_two_products_in_one_request_then_it_is_refused_and_nothing_billed(
    emu: EmulatorServer,
) -> None:
    """Model: "Each BatchMeterUsage request is for only one product." (no error named: ValidationException)."""
    with pytest.raises(ClientError) as info:
        client(emu).batch_meter_usage(UsageRecords=[_lic(now(), LICENSE_ARN, QuantityAsDecimal="1"),
                                                    _lic(now(), NEW_LICENSE, QuantityAsDecimal="1")])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "only one product" in info.value.response["Error"]["Message"]
    assert emu.admin.records()["records"] == []


def test_given_no_product_code_then_a_customer_identifier_record_is_refused(emu: EmulatorServer) -> None:
    """Model (ProductCode): "required only for legacy integrations that use CustomerIdentifier"."""
    fixtures = copy.deepcopy(DEFAULT_FIXTURES)
    legacy = fixtures["products"][0]["customers"][0]
    legacy["licenseArn"] = "arn:aws:license-manager::210987654321:license:l-1"
    emu.admin.load_fixtures(fixtures)
    with pytest.raises(ClientError) as info:
        client(emu).batch_meter_usage(UsageRecords=[{
            "Timestamp": now(), "CustomerIdentifier": "cust-demo-0001", "LicenseArn": legacy["licenseArn"],
            "Dimension": "users", "QuantityAsDecimal": "1"}])
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert emu.admin.records()["records"] == []
