"""Every error the emulator produces, as botocore's real client parses it: modeled exception class or
generic ClientError code, HTTP status and request id."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from metering_emulator.testing import EmulatorServer

from spec.emulator.support import (
    LICENSE_ARN,
    PRODUCT,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    TEMP_TOKEN,
    client,
    now,
)

Call = Callable[[EmulatorServer], Any]


def _meter(emu: EmulatorServer, **kw: Any) -> Any:
    args = {"ProductCode": PRODUCT, "Timestamp": now(), "UsageDimension": "users", "UsageQuantity": 1, **kw}
    return client(emu).meter_usage(**{k: v for k, v in args.items() if v is not None})


def _batch(emu: EmulatorServer, *records: dict[str, Any], product: str | None = PRODUCT) -> Any:
    kw: dict[str, Any] = {"UsageRecords": list(records)}
    if product is not None:
        kw["ProductCode"] = product
    return client(emu).batch_meter_usage(**kw)


def _rec(**kw: Any) -> dict[str, Any]:
    record = {"Timestamp": now(), "CustomerIdentifier": "cust-demo-0001", "Dimension": "users", "Quantity": 1, **kw}
    return {k: v for k, v in record.items() if v is not None}


TASK_FIXTURES = {
    "credentials": [
        {"accessKeyId": "ASIATASKINOTHERREGION", "secretAccessKey": "task/secret/one", "accountId": "111122223333",
         "resourceRegion": "eu-central-1", "platform": "ecs"},
        {"accessKeyId": "AKIAEC2NODEROLE00000", "secretAccessKey": "node/secret/two", "accountId": "111122223333",
         "platform": "ec2"},
    ],
    "products": [{"productCode": PRODUCT, "dimensions": ["users"],
                  "customers": [{"customerAWSAccountId": "111122223333"}]}],
}


def _as_task(access_key: str, secret: str, operation: str) -> Call:
    def run(emu: EmulatorServer) -> Any:
        emu.admin.load_fixtures(TASK_FIXTURES)
        c = client(emu, access_key=access_key, secret_key=secret)
        if operation == "MeterUsage":
            return c.meter_usage(ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users")
        return c.register_usage(ProductCode=PRODUCT, PublicKeyVersion=1)
    return run


def _temp(emu: EmulatorServer) -> Any:
    return client(emu, access_key=TEMP_ACCESS_KEY, secret_key=TEMP_SECRET_KEY, token=TEMP_TOKEN)


def _twice(first: Call, second: Call) -> Call:
    def run(emu: EmulatorServer) -> Any:
        first(emu)
        return second(emu)
    return run


def _duplicate_hour(emu: EmulatorServer) -> Any:
    ts = now()
    _meter(emu, UsageQuantity=1, Timestamp=ts)
    return _meter(emu, UsageQuantity=2, Timestamp=ts)


def _configured(changes: dict[str, Any], call: Call) -> Call:
    def run(emu: EmulatorServer) -> Any:
        emu.admin.set_config(**changes)
        return call(emu)
    return run


def _unsigned(emu: EmulatorServer) -> Any:
    import boto3

    c = boto3.client("meteringmarketplace", region_name="us-east-1", endpoint_url=emu.url,
                     config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))
    return c.resolve_customer(RegistrationToken="emu-demo-registration-token-0001")


def _faulted(kind: str, call: Call) -> Call:
    def run(emu: EmulatorServer) -> Any:
        emu.admin.add_fault(type=kind, count=1)
        return call(emu)
    return run


SIX_TAGS = [{"AllocatedUsageQuantity": 1, "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(6)]}]

# (label, call, error code, modeled exception?, HTTP status)
TABLE: list[tuple[str, Call, str, bool, int]] = [
    ("unknown product", lambda e: _meter(e, ProductCode="nope"), "InvalidProductCodeException", True, 400),
    ("unknown dimension", lambda e: _batch(e, _rec(Dimension="cpu")), "InvalidUsageDimensionException", True, 400),
    ("six tags (modeled errors on)", _configured({"modeled_constraint_errors": True},
                                                 lambda e: _meter(e, UsageAllocations=SIX_TAGS)),
     "InvalidTagException", True, 400),
    ("allocation sum", lambda e: _meter(e, UsageQuantity=2, UsageAllocations=[{"AllocatedUsageQuantity": 1}]),
     "InvalidUsageAllocationsException", True, 400),
    ("old timestamp in a batch", lambda e: _batch(e, _rec(), _rec(Timestamp=now() - 26 * 3600)),
     "TimestampOutOfBoundsException", True, 400),
    ("unknown customer, strict", _configured({"strict_customers": True},
                                             lambda e: _batch(e, _rec(CustomerIdentifier="who"))),
     "InvalidCustomerIdentifierException", True, 400),
    ("license of another account", lambda e: _batch(e, _rec(CustomerIdentifier=None, CustomerAWSAccountId="1",
                                                             LicenseArn=LICENSE_ARN)),
     "InvalidLicenseException", True, 400),
    ("duplicate hour", _duplicate_hour, "DuplicateRequestException", True, 400),
    ("client token conflict", _twice(lambda e: _meter(e, ClientToken="c1"),
                                     lambda e: _meter(e, ClientToken="c1", UsageDimension="api_calls")),
     "IdempotencyConflictException", True, 409),
    ("not entitled (MeterUsage)", lambda e: _temp(e).meter_usage(ProductCode=PRODUCT, Timestamp=now(),
                                                                  UsageDimension="users"),
     "CustomerNotEntitledException", True, 400),
    ("not entitled (RegisterUsage)", lambda e: _temp(e).register_usage(ProductCode=PRODUCT, PublicKeyVersion=1),
     "CustomerNotEntitledException", True, 400),
    ("key version", lambda e: client(e).register_usage(ProductCode=PRODUCT, PublicKeyVersion=7),
     "InvalidPublicKeyVersionException", True, 400),
    ("unknown registration token", lambda e: client(e).resolve_customer(RegistrationToken="nope"),
     "InvalidTokenException", True, 400),
    ("expired registration token", _configured({"token_lifetime_seconds": 0},
                                               lambda e: client(e).resolve_customer(
                                                   RegistrationToken="emu-demo-registration-token-0001")),
     "ExpiredTokenException", True, 400),
    ("injected throttling", _faulted("throttle", _meter), "ThrottlingException", True, 400),
    ("injected 500", _faulted("error500", _meter), "InternalServiceErrorException", True, 500),
    ("injected request timeout", _faulted("requestTimeout", _meter), "RequestTimeoutException", False, 408),
    ("both quantity members", lambda e: _batch(e, _rec(QuantityAsDecimal="1")), "ValidationException", False, 400),
    ("allocations of another kind", lambda e: _meter(e, UsageQuantity=None, UsageQuantityAsDecimal="1",
                                                     UsageAllocations=[{"AllocatedUsageQuantity": 1}]),
     "InvalidUsageAllocationsException", True, 400),
    ("customer identifier on a new integration",
     lambda e: _batch(e, _rec(), product="emu-demo-newsaas-0001"), "InvalidCustomerIdentifierException", True, 400),
    ("disabled API", _configured({"disabled_operations": ["ResolveCustomer"]},
                                 lambda e: client(e).resolve_customer(RegistrationToken="x")),
     "DisabledApiException", True, 400),
    ("task in another region (MeterUsage)", _as_task("ASIATASKINOTHERREGION", "task/secret/one", "MeterUsage"),
     "InvalidEndpointRegionException", True, 400),
    ("task in another region (RegisterUsage)", _as_task("ASIATASKINOTHERREGION", "task/secret/one", "Register"),
     "InvalidRegionException", True, 400),
    ("EC2 node role (RegisterUsage)", _as_task("AKIAEC2NODEROLE00000", "node/secret/two", "Register"),
     "PlatformNotSupportedException", True, 400),
    ("26 records", lambda e: _batch(e, *[_rec() for _ in range(26)]), "ValidationException", False, 400),
    ("dry run", lambda e: _meter(e, DryRun=True), "DryRunOperation", False, 412),
    ("region mismatch", lambda e: client(e, region="eu-west-1").meter_usage(
        ProductCode=PRODUCT, Timestamp=now(), UsageDimension="users"), "InvalidSignatureException", False, 400),
    ("wrong secret", lambda e: client(e, secret_key="wrong").resolve_customer(RegistrationToken="x"),
     "InvalidSignatureException", False, 400),
    ("clock skew", _configured({"clock_offset_seconds": 900}, lambda e: _meter(e, Timestamp=now() + 900)),
     "InvalidSignatureException", False, 400),
    ("unknown key", lambda e: client(e, access_key="AKIANOBODY").resolve_customer(RegistrationToken="x"),
     "UnrecognizedClientException", False, 400),
    ("temporary key without token", lambda e: client(e, access_key=TEMP_ACCESS_KEY, secret_key=TEMP_SECRET_KEY)
     .resolve_customer(RegistrationToken="x"), "UnrecognizedClientException", False, 400),
    ("unsigned request", _unsigned, "MissingAuthenticationTokenException", False, 403),
]


@pytest.mark.parametrize(("label", "call", "code", "modeled", "status"), TABLE, ids=[t[0] for t in TABLE])
def test_given_a_faulty_call_when_botocore_parses_the_reply_then_the_right_error(
    emu: EmulatorServer, label: str, call: Call, code: str, modeled: bool, status: int
) -> None:
    with pytest.raises(ClientError) as info:
        call(emu)
    exc = info.value
    assert exc.response["Error"]["Code"] == code
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert exc.response["ResponseMetadata"]["RequestId"]
    assert exc.response["Error"]["Message"]
    modeled_class = getattr(client(emu).exceptions, code, None)
    if modeled:
        assert modeled_class is not None and isinstance(exc, modeled_class)
    else:
        assert modeled_class is None and type(exc) is ClientError
    assert emu.admin.stats()["operations"][exc.operation_name]["errors"][code] >= 1


def test_every_modeled_exception_of_the_service_is_produced_somewhere() -> None:
    from botocore.session import get_session

    model = get_session().get_service_model("meteringmarketplace")
    modeled = {s for s in model.shape_names if model.shape_for(s).metadata.get("exception")}
    produced = {code for _, _, code, is_modeled, _ in TABLE if is_modeled}
    assert modeled == produced
