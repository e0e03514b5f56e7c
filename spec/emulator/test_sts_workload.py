"""STS, IMDSv2 and the ECS credentials endpoint of the emulator, through botocore's own clients and
credential providers (botocore 1.44.8), and the metering endpoint accepting the sessions until they expire."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import ContainerProvider, Credentials, InstanceMetadataProvider
from botocore.exceptions import ClientError
from botocore.utils import ContainerMetadataFetcher, InstanceMetadataFetcher
from metering_emulator.testing import AdminError, EmulatorServer

from spec.emulator.support import PRODUCT, client, now, send
from spec.support.identity import (
    CONTAINER_AUTH,
    EXTERNAL_ID,
    SELLER_ROLE,
    SOURCE_KEY,
    SOURCE_SECRET,
    SUBJECT,
    WEB_TOKEN,
    WORKLOAD_ROLE,
    identity_fixtures,
)


@pytest.fixture
def idem(emu: EmulatorServer) -> EmulatorServer:
    emu.admin.load_fixtures(identity_fixtures())
    return emu


def sts(emu: EmulatorServer, key: str = SOURCE_KEY, secret: str = SOURCE_SECRET, token: str | None = None) -> Any:
    return boto3.client("sts", region_name="us-east-1", endpoint_url=emu.url, aws_access_key_id=key,
                        aws_secret_access_key=secret, aws_session_token=token,
                        config=Config(retries={"total_max_attempts": 1}))


def _meter(emu: EmulatorServer, creds: dict[str, Any], dimension: str = "users") -> dict[str, Any]:
    c = client(emu, access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"],
               token=creds.get("SessionToken") or creds.get("Token"))
    return dict(c.batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[
        {"Timestamp": now(), "CustomerIdentifier": "cust-demo-0001", "Dimension": dimension, "Quantity": 2}]))


def test_given_trusted_key_and_right_external_id_when_assume_role_then_botocore_parses_session_and_it_meters(
    idem: EmulatorServer,
) -> None:
    answer = sts(idem).assume_role(RoleArn=SELLER_ROLE, RoleSessionName="seller-1", ExternalId=EXTERNAL_ID,
                                   DurationSeconds=900)
    creds = answer["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20
    assert creds["SessionToken"] and creds["SecretAccessKey"]
    left = creds["Expiration"].timestamp() - time.time()
    assert 890 < left <= 901
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::999988887777:assumed-role/metering-seller/seller-1"
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":seller-1")
    assert answer["ResponseMetadata"]["RequestId"]
    assert _meter(idem, creds)["Results"][0]["Status"] == "Success"
    sessions = idem.admin.call("GET", "sts/sessions")["sessions"]
    assert [(s["roleArn"], s["source"]) for s in sessions] == [(SELLER_ROLE, "AssumeRole")]
    assert EXTERNAL_ID not in str(idem.admin.fixtures()) and "SecretAccessKey" not in str(sessions)


@pytest.mark.parametrize("external_id", [None, "ext-id-wrong-000"])
def test_given_missing_or_wrong_external_id_when_assume_role_then_access_denied_without_the_id(
    idem: EmulatorServer, external_id: str | None,
) -> None:
    extra = {} if external_id is None else {"ExternalId": external_id}
    with pytest.raises(ClientError) as info:
        sts(idem).assume_role(RoleArn=SELLER_ROLE, RoleSessionName="seller-1", **extra)
    err = info.value.response
    assert err["Error"]["Code"] == "AccessDenied"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "sts:AssumeRole" in err["Error"]["Message"] and SELLER_ROLE in err["Error"]["Message"]
    assert EXTERNAL_ID not in str(err) and (external_id is None or external_id not in str(err))
    assert err["ResponseMetadata"]["RequestId"]


def test_given_untrusted_or_unknown_or_bad_signature_when_assume_role_then_sts_error_codes(
    idem: EmulatorServer,
) -> None:
    temp = {"key": "ASIAEMULATOR0000TEMP", "secret": "emulator/Temp+Secret/DoNotUseInProduction0",
            "token": "emulator-session-token-0000000000000000"}
    # The temporary fixture key's account (444455556666) is trusted by account.
    assert sts(idem, **temp).assume_role(RoleArn=SELLER_ROLE, RoleSessionName="chain",
                                         ExternalId=EXTERNAL_ID)["Credentials"]["AccessKeyId"]
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (sts(idem).assume_role, {"RoleArn": WORKLOAD_ROLE, "RoleSessionName": "x1"}, "AccessDenied"),
        (sts(idem).assume_role, {"RoleArn": "arn:aws:iam::999988887777:role/nope", "RoleSessionName": "x1"},
         "AccessDenied"),
        (sts(idem, key="AKIAUNKNOWN000000000").assume_role, {"RoleArn": SELLER_ROLE, "RoleSessionName": "x1"},
         "InvalidClientTokenId"),
        (sts(idem, secret="wrong").assume_role, {"RoleArn": SELLER_ROLE, "RoleSessionName": "x1"},
         "SignatureDoesNotMatch"),
        (sts(idem).assume_role, {"RoleArn": SELLER_ROLE, "RoleSessionName": "x1", "ExternalId": EXTERNAL_ID,
                                 "DurationSeconds": 7200}, "ValidationError"),
    ]
    for call, kwargs, code in cases:
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        assert info.value.response["Error"]["Code"] == code, kwargs


@pytest.mark.parametrize(("signed_as", "sent_as", "status"), [("/", "/", 200), ("/", "/?Action=GetCallerIdentity", 403),
                                                            ("/?x=1", "/?x=1", 200)])
def test_given_a_signed_assume_role_then_its_query_string_is_part_of_the_signature(
    idem: EmulatorServer, signed_as: str, sent_as: str, status: int
) -> None:
    form = (f"Action=AssumeRole&Version=2011-06-15&RoleArn={SELLER_ROLE}&RoleSessionName=q1"
            f"&ExternalId={EXTERNAL_ID}").encode()
    request = AWSRequest(method="POST", url=idem.url + signed_as, data=form,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(SOURCE_KEY, SOURCE_SECRET), "sts", "us-east-1").add_auth(request)
    reply = send(idem, "POST", sent_as, form, dict(request.prepare().headers.items()))
    assert reply.status == status, reply.body
    if status != 200:
        assert b"<Code>SignatureDoesNotMatch</Code>" in reply.body


def test_given_short_sessions_when_they_expire_then_metering_says_expired_token(idem: EmulatorServer) -> None:
    # botocore refuses DurationSeconds below 900 itself; short sessions come from the emulator's default.
    idem.admin.set_config(sts_default_duration_seconds=30)
    creds = sts(idem).assume_role(RoleArn=SELLER_ROLE, RoleSessionName="short",
                                  ExternalId=EXTERNAL_ID)["Credentials"]
    assert 25 < creds["Expiration"].timestamp() - time.time() <= 31
    assert _meter(idem, creds)["Results"][0]["Status"] == "Success"
    idem.admin.call("POST", "sts/expire", {"roleArn": SELLER_ROLE})
    with pytest.raises(ClientError) as info:
        _meter(idem, creds, "api_calls")
    assert info.value.response["Error"]["Code"] == "ExpiredTokenException"
    fresh = sts(idem).assume_role(RoleArn=SELLER_ROLE, RoleSessionName="short",
                                  ExternalId=EXTERNAL_ID)["Credentials"]
    assert _meter(idem, fresh, "storage_gb")["Results"][0]["Status"] == "Success"
    idem.admin.call("POST", "sts/revoke", {})
    with pytest.raises(ClientError) as info:
        _meter(idem, fresh, "api_calls")
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_given_trusted_subject_when_assume_role_with_web_identity_then_session_and_wrong_token_refused(
    idem: EmulatorServer,
) -> None:
    unsigned = boto3.client("sts", region_name="us-east-1", endpoint_url=idem.url, aws_access_key_id="x",
                            aws_secret_access_key="y", config=Config(signature_version=botocore_unsigned()))
    answer = unsigned.assume_role_with_web_identity(RoleArn=WORKLOAD_ROLE, RoleSessionName="pod",
                                                    WebIdentityToken=WEB_TOKEN)
    assert answer["SubjectFromWebIdentityToken"] == SUBJECT
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert _meter(idem, answer["Credentials"])["Results"][0]["Status"] == "Success"
    for role, token, code in ((WORKLOAD_ROLE, "not-a-token-0000", "InvalidIdentityToken"),
                              (SELLER_ROLE, WEB_TOKEN, "AccessDenied")):
        with pytest.raises(ClientError) as info:
            unsigned.assume_role_with_web_identity(RoleArn=role, RoleSessionName="pod", WebIdentityToken=token)
        assert info.value.response["Error"]["Code"] == code
        assert WEB_TOKEN not in str(info.value.response)


def botocore_unsigned() -> Any:
    from botocore import UNSIGNED

    return UNSIGNED


def test_given_instance_profile_when_botocore_imds_provider_loads_then_session_credentials_meter(
    idem: EmulatorServer,
) -> None:
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1,
                                      config={"ec2_metadata_service_endpoint": idem.url + "/"})
    creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert creds is not None and creds.method == "iam-role"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key.startswith("ASIA") and frozen.token
    assert _meter(idem, {"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key,
                         "Token": frozen.token})["Results"][0]["Status"] == "Success"
    # IMDSv1 (no session token) is refused; a token is needed.
    assert send(idem, "GET", "/latest/meta-data/iam/security-credentials/", b"", {}).status == 401


def test_given_container_endpoint_when_botocore_container_provider_loads_then_auth_header_is_required(
    idem: EmulatorServer,
) -> None:
    uri = idem.url + "/v2/credentials/task-1"
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_AUTH}
    creds = ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher()).load()
    assert creds is not None and creds.method == "container-role"
    frozen = creds.get_frozen_credentials()
    assert _meter(idem, {"AccessKeyId": frozen.access_key, "SecretAccessKey": frozen.secret_key,
                         "Token": frozen.token})["Results"][0]["Status"] == "Success"
    assert send(idem, "GET", "/v2/credentials/task-1", b"", {}).status == 401
    sources = idem.admin.call("GET", "sts/sessions")["issued"]
    assert sources == {"ContainerCredentials": 1}


@pytest.mark.parametrize(("kind", "status"), [("throttle", 429), ("error500", 500), ("html503", 503),
                                              ("empty502", 502)])
def test_given_a_busy_instance_metadata_service_then_botocore_finds_no_role_until_the_fault_is_spent(
    idem: EmulatorServer, kind: str, status: int,
) -> None:
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1,
                                      config={"ec2_metadata_service_endpoint": idem.url + "/"})
    idem.admin.add_fault(type=kind, operations=["InstanceMetadata"])
    assert send(idem, "PUT", "/latest/api/token", b"", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}).status == status
    assert InstanceMetadataProvider(iam_role_fetcher=fetcher).load() is None  # what botocore makes of it
    assert idem.admin.call("GET", "sts/sessions")["issued"] == {}
    assert idem.admin.faults()[0]["fired"] >= 2  # the token and the role lookups both answered busy
    idem.admin.clear_faults()
    creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert creds is not None and creds.get_frozen_credentials().token


def test_given_a_counted_fault_on_the_container_endpoint_then_botocore_retries_past_it(
    idem: EmulatorServer,
) -> None:
    uri = idem.url + "/v2/credentials/task-1"
    env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": CONTAINER_AUTH}
    idem.admin.add_fault(type="drop", count=1, operations=["ContainerCredentials"])
    creds = ContainerProvider(environ=env, fetcher=ContainerMetadataFetcher(sleep=lambda _s: None)).load()
    assert creds is not None and creds.get_frozen_credentials().token
    assert idem.admin.faults() == []  # fired once, then disarmed
    assert idem.admin.call("GET", "sts/sessions")["issued"] == {"ContainerCredentials": 1}


def test_given_a_workload_fault_then_metering_calls_are_untouched_and_metering_only_faults_are_refused(
    idem: EmulatorServer,
) -> None:
    idem.admin.add_fault(type="error500", operations=["InstanceMetadata", "ContainerCredentials"])
    assert _meter(idem, {"AccessKeyId": SOURCE_KEY, "SecretAccessKey": SOURCE_SECRET})["Results"][0]["Status"] \
        == "Success"
    for kind in ("lostReply", "requestTimeout", "unprocessed"):
        with pytest.raises(AdminError) as info:
            idem.admin.add_fault(type=kind, operations=["InstanceMetadata"])
        assert info.value.status == 400 and "InstanceMetadata" in info.value.body["message"]


def test_given_refuse_long_term_keys_when_meter_usage_then_refused_for_akia_and_accepted_for_role_session(
    idem: EmulatorServer, tmp_path: Path,
) -> None:
    idem.admin.set_config(refuse_long_term_keys=True)
    request = {"ProductCode": PRODUCT, "Timestamp": now(), "UsageDimension": "users", "UsageQuantity": 1}
    with pytest.raises(ClientError) as info:
        client(idem).meter_usage(**request)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "long-term access keys are not supported" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        client(idem).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    assert info.value.response["Error"]["Code"] == "PlatformNotSupportedException"
    fetcher = InstanceMetadataFetcher(timeout=2, num_attempts=1,
                                      config={"ec2_metadata_service_endpoint": idem.url + "/"})
    creds = InstanceMetadataProvider(iam_role_fetcher=fetcher).load()
    assert creds is not None
    frozen = creds.get_frozen_credentials()
    role = client(idem, access_key=frozen.access_key, secret_key=frozen.secret_key, token=frozen.token)
    assert role.meter_usage(**request)["MeteringRecordId"]
    assert role.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)["Signature"]
    # BatchMeterUsage is the seller's call: long-term keys stay accepted.
    assert client(idem).batch_meter_usage(ProductCode=PRODUCT, UsageRecords=[])["Results"] == []


def test_given_identity_fixture_errors_when_loading_then_every_problem_is_named(idem: EmulatorServer) -> None:
    from metering_emulator.testing import AdminError

    bad = identity_fixtures()
    bad["roles"].append({"roleArn": "not-an-arn"})
    bad["instanceProfile"] = {"roleArn": "arn:aws:iam::000000000000:role/missing"}
    with pytest.raises(AdminError) as info:
        idem.admin.load_fixtures(bad)
    text = str(info.value.body)
    assert "roles[2].roleArn" in text and "instanceProfile.roleArn" in text


def test_given_two_sessions_of_one_workload_role_then_meter_usage_is_one_caller_and_a_resend_is_not_rebilled(
    idem: EmulatorServer,
) -> None:
    # AWS meters MeterUsage once per dimension and hour per instance, task or pod: a redelivered message
    # signed with the next session of the same role must not be billed again.
    answers = [sts(idem).assume_role(RoleArn=SELLER_ROLE, RoleSessionName=f"s-{i}", ExternalId=EXTERNAL_ID)
               for i in range(2)]
    ids = []
    for answer in answers:
        creds = answer["Credentials"]
        meter = client(idem, access_key=creds["AccessKeyId"], secret_key=creds["SecretAccessKey"],
                       token=creds["SessionToken"])
        ids.append(meter.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users",
                                     UsageQuantityAsDecimal="2.5")["MeteringRecordId"])
    assert answers[0]["Credentials"]["AccessKeyId"] != answers[1]["Credentials"]["AccessKeyId"]
    assert ids[0] == ids[1]
    assert len([r for r in idem.admin.records()["records"] if r["operation"] == "MeterUsage"]) == 1
