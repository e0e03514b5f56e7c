"""Known-answer SigV4 vectors (botocore 1.43.11 captures, copied into data/) replayed byte-for-byte, and the
request target (path and query string) as a signed part of the request."""

from __future__ import annotations

import calendar
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from metering_emulator.testing import EmulatorServer

from spec.emulator.support import DEMO_TOKEN, signed

DATA = json.loads((Path(__file__).parent / "data" / "sigv4_vectors.json").read_text(encoding="utf-8"))
VECTORS: list[dict[str, Any]] = DATA["vectors"]

FIXTURES = {
    "credentials": [{"accessKeyId": DATA["accessKeyId"], "secretAccessKey": DATA["secretAccessKey"],
                     "accountId": "123456789012"}],
    "products": [{
        "productCode": "abc123prodcode",
        "dimensions": ["Hosts", "Users"],
        "customers": [
            {"customerIdentifier": "cust-EXAMPLE"},
            {"customerAWSAccountId": "123456789012",
             "licenseArn": "arn:aws:license-manager::123456789012:license:l-0123456789abcdef0"},
        ],
    }],
    "registrationTokens": [{"token": "AbCd+EfGh/IjKl==", "productCode": "abc123prodcode",
                            "customer": {"customerIdentifier": "cust-EXAMPLE"}}],
}


def _vector_time(vector: dict[str, Any]) -> float:
    date = dict(vector["headers"]).get("X-Amz-Date", "20261127T074031Z")
    return float(calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ")))


@pytest.fixture(scope="module")
def vector_emu() -> Any:
    """An emulator holding the vectors' credential; the clock is set per test to the capture time."""
    with EmulatorServer(fixtures=FIXTURES, quotas=False, timestamp_window_hours=40000,
                        month_end_grace_hours=40000) as emu:
        yield emu


def _replay(emu: EmulatorServer, vector: dict[str, Any], path: str | None = None) -> tuple[int, dict[str, Any]]:
    """Send the captured request bytes unchanged (Host header included; ``path`` replaces the request
    target) and parse the reply."""
    head = f"{vector['method']} {path or vector['path']} HTTP/1.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in vector["headers"]) + "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + vector["body"].encode("utf-8"))
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    raw = b"".join(chunks)
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["label"] for v in VECTORS])
def test_given_a_captured_request_when_replayed_at_its_capture_time_then_the_expected_outcome(
    vector_emu: EmulatorServer, vector: dict[str, Any]
) -> None:
    vector_emu.admin.reset()
    vector_emu.admin.set_config(clock_offset_seconds=_vector_time(vector) + 30 - time.time())
    status, body = _replay(vector_emu, vector)
    if vector["expect"] == "OK":
        expected_status = 412 if '"DryRun": true' in vector["body"] else 200
        assert status == expected_status, body
        if expected_status == 412:
            assert body["__type"] == "DryRunOperation"
    else:
        assert body["__type"] == vector["expect"]
        assert status in (400, 403)
        if vector.get("expectMessage"):
            assert body["message"] == vector["expectMessage"]


def test_given_a_captured_request_when_replayed_a_day_later_then_signature_expired(
    vector_emu: EmulatorServer,
) -> None:
    vector = VECTORS[0]
    vector_emu.admin.reset()
    vector_emu.admin.set_config(clock_offset_seconds=_vector_time(vector) + 86400 - time.time())
    status, body = _replay(vector_emu, vector)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert body["message"].startswith("Signature expired: 20261127T074031Z is now earlier than 20261128T0735")
    assert body["message"].endswith(" - 5 min.)")


def test_given_a_captured_request_when_replayed_ten_minutes_early_then_signature_not_yet_current(
    vector_emu: EmulatorServer,
) -> None:
    vector = VECTORS[0]
    vector_emu.admin.reset()
    vector_emu.admin.set_config(clock_offset_seconds=_vector_time(vector) - 600 - time.time())
    status, body = _replay(vector_emu, vector)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert body["message"].startswith("Signature not yet current: 20261127T074031Z is still later than")


def test_given_a_captured_request_when_one_body_byte_changes_then_the_signature_does_not_verify(
    vector_emu: EmulatorServer,
) -> None:
    vector = dict(VECTORS[2])
    vector_emu.admin.reset()
    vector_emu.admin.set_config(clock_offset_seconds=_vector_time(vector) - time.time())
    assert _replay(vector_emu, vector)[0] == 200
    vector_emu.admin.reset()
    vector_emu.admin.set_config(clock_offset_seconds=_vector_time(vector) - time.time())
    vector["body"] = vector["body"].replace('"Quantity": 10', '"Quantity": 11')
    status, body = _replay(vector_emu, vector)
    assert (status, body["__type"]) == (400, "InvalidSignatureException")
    assert vector_emu.admin.records()["records"] == []


def test_given_a_captured_request_when_a_query_string_is_added_then_the_signature_does_not_verify(
    vector_emu: EmulatorServer,
) -> None:
    vector = VECTORS[2]
    assert vector["path"] == "/"
    for path in ("/?Action=Anything&x=1", "/?x"):
        vector_emu.admin.reset()
        vector_emu.admin.set_config(clock_offset_seconds=_vector_time(vector) - time.time())
        status, body = _replay(vector_emu, vector, path)
        assert (status, body["__type"]) == (400, "InvalidSignatureException"), path
        assert vector_emu.admin.records()["records"] == []


@pytest.mark.parametrize(("signed_as", "sent_as", "verifies"), [
    ("/", "/?Action=Anything&x=1", False),
    ("/?Action=Anything&x=1", "/", False),
    ("/?Action=Anything&x=1", "/?Action=Anything&x=2", False),
    ("/?Action=Anything&x=1", "/?Action=Anything&x=1", True),
    ("/?b=2&a=1&a=0", "/?a=0&a=1&b=2", True),  # the canonical query is sorted by name, then value
    ("/?note=a%20b%2Fc&empty=", "/?note=a%20b%2Fc&empty=", True),
])
def test_given_a_botocore_signed_request_then_its_query_string_is_part_of_the_signature(
    emu: EmulatorServer, signed_as: str, sent_as: str, verifies: bool
) -> None:
    reply = signed(emu, "ResolveCustomer", {"RegistrationToken": DEMO_TOKEN}, path=signed_as, send_path=sent_as)
    if verifies:
        assert reply.status == 200, reply.body
        assert reply.json()["ProductCode"]
    else:
        assert (reply.status, reply.error_type) == (400, "InvalidSignatureException")
        assert reply.json()["message"] == (
            "The request signature we calculated does not match the signature you provided.")
