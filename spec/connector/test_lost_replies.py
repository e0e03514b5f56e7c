"""A reply lost after AWS processed the call (the emulator's ``lostReply`` fault: the call is billed, then the
connection closes without an answer). The connector retries, and nothing is billed twice: AWS answers an
identical batch record, and a Meter Usage call with the same ClientToken, with the record the first attempt
billed. Each action's output names the record ids the emulator billed, exactly once each."""

from __future__ import annotations

import pytest
from metering_emulator.testing import EmulatorServer

from lib.errors import MeteringError
from spec.connector.builders import PRODUCT, REG_TOKEN, a_config, a_record, hour_start, run_action


def test_given_a_batch_whose_reply_is_lost_when_metering_then_each_record_is_billed_once_and_reported_with_its_id(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="lostReply", count=1, operations=["BatchMeterUsage"])
    out = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
        a_record(quantity=3), a_record(customer="cust-demo-0002", quantity=4)]}, a_config(metering_emulator.url))
    body = out["body"]
    assert [r["Status"] for r in body["Results"]] == ["Success", "Success"]
    stored = metering_emulator.admin.records()["records"]
    assert len(stored) == 2  # billed once each, though sent twice
    assert sorted(r["meteringRecordId"] for r in stored) == sorted(r["MeteringRecordId"] for r in body["Results"])
    stats = metering_emulator.admin.stats()["operations"]["BatchMeterUsage"]
    assert stats["calls"] == 2 and stats["succeeded"] == 2


def test_given_a_meter_usage_call_whose_reply_is_lost_when_retried_then_the_first_record_is_answered(
        metering_emulator: EmulatorServer) -> None:
    """The retry carries the same derived ClientToken, so AWS answers with the record already billed."""
    metering_emulator.admin.add_fault(type="lostReply", count=1, operations=["MeterUsage"])
    out = run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(), "UsageDimension": "users",
                                    "UsageQuantity": 5}, a_config(metering_emulator.url), msg_id="lost-1")
    [stored] = metering_emulator.admin.records()["records"]
    assert out["body"]["MeteringRecordId"] == stored["meteringRecordId"]
    assert metering_emulator.admin.stats()["operations"]["MeterUsage"]["calls"] == 2


def test_given_a_register_usage_call_whose_reply_is_lost_when_retried_then_the_signed_token_is_returned(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="lostReply", count=1, operations=["RegisterUsage"])
    out = run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1}, a_config(metering_emulator.url))
    assert out["body"]["Signature"].count(".") == 2
    assert metering_emulator.admin.stats()["operations"]["RegisterUsage"]["calls"] == 2


def test_given_a_resolve_customer_whose_reply_is_lost_when_retried_then_the_customer_is_resolved(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.add_fault(type="lostReply", count=1, operations=["ResolveCustomer"])
    out = run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, a_config(metering_emulator.url))
    assert out["body"]["ProductCode"] == PRODUCT


def test_given_single_use_tokens_and_a_lost_reply_when_resolve_customer_retries_then_the_error_says_why(
        metering_emulator: EmulatorServer) -> None:
    """AWS may answer a resubmitted registration token as expired (the model's ExpiredTokenException): after
    an attempt that got no answer, the error says that attempt most likely resolved it."""
    metering_emulator.admin.set_config(single_use_registration_tokens=True)
    metering_emulator.admin.add_fault(type="lostReply", count=1, operations=["ResolveCustomer"])
    with pytest.raises(MeteringError) as info:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, a_config(metering_emulator.url))
    err = info.value
    assert err.code == "ExpiredTokenException" and not err.retryable
    assert err.unanswered == [1] and err.error_details["unansweredAttempts"] == [1]
    assert "attempt 1 of this call got no answer" in str(err)
    assert "most likely resolved by that attempt" in str(err)
    assert err.request_id and f"[request id {err.request_id}]" in str(err)
    assert REG_TOKEN not in str(err)


def test_given_an_expired_token_without_a_lost_reply_then_no_attempt_is_blamed(
        metering_emulator: EmulatorServer) -> None:
    metering_emulator.admin.set_config(single_use_registration_tokens=True)
    run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, a_config(metering_emulator.url))
    with pytest.raises(MeteringError) as info:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, a_config(metering_emulator.url))
    assert info.value.code == "ExpiredTokenException" and info.value.unanswered == []
    assert "got no answer" not in str(info.value) and "submitted before" in str(info.value)


@pytest.mark.parametrize(("records", "local_clock_too"), [(1, False), (2, False), (2, True)],
                         ids=["alone", "isolated-from-another", "left-the-window-here-too"])
def test_given_a_lost_reply_then_a_retry_refused_for_a_record_then_its_result_and_log_say_it_may_have_been_billed(
        metering_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture, records: int,
        local_clock_too: bool) -> None:
    """The lost attempt billed the record; by the retry its 24 hours ran out (AWS's clock 2 minutes on), so AWS
    refuses it. Refused alone, after the call was split to isolate it, or found out of the window by the
    connector's own clock before it was sent again, its result must not read as simply "not billed" (README:
    Known limits)."""
    import logging
    import time

    from lib.client import MeteringClient, Settings
    from lib.resilience import Backoff
    from spec.connector.builders import ACCESS_KEY, SECRET_KEY

    emu = metering_emulator
    emu.admin.add_fault(type="lostReply", count=1, operations=["BatchMeterUsage"])
    shift = [0.0]

    def sleep(_delay: float) -> None:  # the backoff: AWS's clock (and, if asked, ours) 2 minutes on
        emu.admin.set_clock(offset_seconds=120)
        shift[0] = 120.0 if local_clock_too else 0.0

    client = MeteringClient(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=emu.url),
                            backoff=Backoff(base=0.001, cap=0.002), sleep=sleep)
    edge = int(time.time()) - 24 * 3600 + 60  # inside the window now, outside it 2 minutes later
    sent = [a_record(timestamp=edge, quantity=3), a_record(customer="cust-demo-0002", quantity=4)][:records]
    with caplog.at_level(logging.INFO, logger="lib"):
        body = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": sent}, a_config(emu.url),
                          client=client, now=lambda: time.time() + shift[0])["body"]
    assert 3 in {r["quantity"] for r in emu.admin.records()["records"]}  # billed by the lost attempt
    first = body["Results"][0]
    assert first["Status"] == "TimestampOutOfBounds" and "AWS may have billed it" in first["ErrorMessage"], first
    if records == 2:
        assert body["Results"][1]["Status"] == "Success"
    reports = [r.getMessage() for r in caplog.records
               if "record(s) 0 refused" in r.getMessage() or "left the accepted timestamp window" in r.getMessage()]
    assert reports and all("got no answer" in line for line in reports), reports


def test_given_a_lost_reply_then_the_record_left_unprocessed_then_out_of_the_window_it_says_it_may_have_been_billed(
        metering_emulator: EmulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    """Attempt 1 billed both records and lost its answer; attempt 2 answers, leaving record 0 unprocessed
    (AWS's UnprocessedRecords); before the next round, record 0 is out of the window by our clock. Its
    result must not read as simply "not billed": the lost attempt billed it."""
    import logging
    import time

    from lib.client import MeteringClient, Settings
    from lib.resilience import Backoff
    from spec.connector.builders import ACCESS_KEY, SECRET_KEY

    emu = metering_emulator
    emu.admin.add_fault(type="lostReply", count=1, operations=["BatchMeterUsage"])
    shift = [0.0]

    def sleep(_delay: float) -> None:  # between attempts 1 and 2: the next answer leaves a record unprocessed
        if not shift[0]:
            emu.admin.add_fault(type="unprocessed", count=1, operations=["BatchMeterUsage"])
        shift[0] = 120.0

    client = MeteringClient(Settings.create(ACCESS_KEY, SECRET_KEY, endpoint_url=emu.url),
                            backoff=Backoff(base=0.001, cap=0.002), sleep=sleep)
    edge = int(time.time()) - 24 * 3600 + 60  # inside the window now, outside it 2 minutes later (our clock)
    sent = [a_record(timestamp=edge, quantity=3), a_record(customer="cust-demo-0002", quantity=4)]
    with caplog.at_level(logging.INFO, logger="lib"):
        body = run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": sent}, a_config(emu.url),
                          client=client, now=lambda: time.time() + shift[0])["body"]
    assert sorted(r["quantity"] for r in emu.admin.records()["records"]) == [3, 4]  # both billed by attempt 1
    [first] = [r for r in body["Results"] if r["RecordIndex"] == 0]
    assert first["Status"] == "TimestampOutOfBounds" and "AWS may have billed it" in first["ErrorMessage"], body
    reports = [r.getMessage() for r in caplog.records if "left the accepted timestamp window" in r.getMessage()]
    assert reports and all("got no answer" in line for line in reports), reports
