"""What goes on the wire: headers, SigV4 scope and bodies equal to what botocore would send."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.serialize import create_serializer

from lib.client import MeteringClient, Settings
from lib.operations import OPERATIONS
from lib.schema import json_schema, timestamps_to_epoch
from spec.connector.builders import LICENSE, PRODUCT, SESSION_TOKEN, a_config
from spec.connector.scripted import Canned, ScriptedServer

MODEL = botocore.session.get_session().get_service_model("meteringmarketplace")
INPUTS: dict[str, dict[str, Any]] = {
    "meterUsage": {"ProductCode": PRODUCT, "Timestamp": "2024-05-01T12:30:15.123456Z", "UsageDimension": "Hosts",
                   "UsageQuantityAsDecimal": "5.25", "ClientToken": "t-1",
                   "UsageAllocations": [{"AllocatedUsageQuantityAsDecimal": "3.25",
                                         "Tags": [{"Key": "env", "Value": "prod"}]},
                                        {"AllocatedUsageQuantityAsDecimal": "2"}]},
    "batchMeterUsage": {"ProductCode": PRODUCT, "UsageRecords": [
        {"Timestamp": 1714566615123, "CustomerIdentifier": "cust-EXAMPLE", "Dimension": "Users",
         "QuantityAsDecimal": "10.000001"},
        {"Timestamp": "2024-05-01T14:00:00+02:00", "CustomerAWSAccountId": "111122223333", "LicenseArn": LICENSE,
         "Dimension": "Users", "QuantityAsDecimal": "0"}]},
    "registerUsage": {"ProductCode": PRODUCT, "PublicKeyVersion": 1, "Nonce": "nonce-123"},
    "resolveCustomer": {"RegistrationToken": "AbCd+EfGh/IjKl=="},
}


def botocore_body(op_name: str, params: dict[str, Any]) -> Any:
    """The JSON body botocore serialises for the same parameters (timestamps as it parses them).

    One deliberate difference: botocore 1.44 sends epoch seconds with milliseconds, the connector whole
    seconds (docs/metering-api.md: AWS floors usage timestamps to the hour), so fractions are dropped here.
    """
    from botocore.utils import parse_to_aware_datetime

    def convert(value: Any, shape: Any) -> Any:
        if shape.type_name == "timestamp":
            return parse_to_aware_datetime(value if not (isinstance(value, int) and value > 10**11) else value / 1000)
        if shape.type_name == "structure":
            return {k: convert(v, shape.members[k]) for k, v in value.items()}
        if shape.type_name == "list":
            return [convert(v, shape.member) for v in value]
        return value

    op_model = MODEL.operation_model(op_name)
    request = create_serializer("json").serialize_to_request(convert(params, op_model.input_shape), op_model)
    return whole_seconds(json.loads(request["body"]), op_model.input_shape)


def whole_seconds(value: Any, shape: Any) -> Any:
    """``value`` with every timestamp truncated to whole epoch seconds."""
    if shape.type_name == "timestamp":
        return int(value)
    if shape.type_name == "structure":
        return {k: whole_seconds(v, shape.members[k]) for k, v in value.items()}
    if shape.type_name == "list":
        return [whole_seconds(v, shape.member) for v in value]
    return value


@pytest.mark.parametrize("action", sorted(INPUTS))
def test_given_an_input_then_the_body_and_headers_match_what_botocore_sends(action: str) -> None:
    op = OPERATIONS[action]
    wire = timestamps_to_epoch(json_schema(op.in_schema), INPUTS[action])
    reply = Canned(200, b"{}", {"x-amzn-RequestId": "rid"})
    with ScriptedServer([reply]) as server:
        client = MeteringClient(Settings.from_cfg(a_config(server.url, accessKeyId="ASIAEMULATOR0000TEMP",
                                                           sessionToken=SESSION_TOKEN)))
        client.call(op, wire)
        headers, body = server.requests[0]
    assert json.loads(body) == botocore_body(op.name, INPUTS[action])
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["x-amz-target"] == f"AWSMPMeteringService.{op.name}"
    assert lower["content-type"] == "application/x-amz-json-1.1" and lower["accept-encoding"] == "identity"
    assert lower["x-amz-security-token"] == SESSION_TOKEN
    auth = lower["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=ASIAEMULATOR0000TEMP/")
    assert "/us-east-1/aws-marketplace/aws4_request" in auth and "metering.marketplace/" not in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "content-type", "x-amz-date", "x-amz-target", "x-amz-security-token"} <= set(signed)
