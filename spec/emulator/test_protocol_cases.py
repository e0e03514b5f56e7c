"""Protocol cases as data: every ``cases/*.json`` entry is a request and the reply it must get.

Case format: ``{"name", "setup"?: {"clock"?, "config"?, "fixtures"?, "requests"?: [request]},
"request": request, "expect": {"status", "type"?, "message"?, "messageContains"?, "body"?, "records"?,
"quantities"?}}``. ``setup.clock`` (ISO 8601 UTC) stands the emulator's usage clock still at that instant
(``POST /_emulator/clock``) and ``$NOW`` then means that instant; ``expect.quantities`` lists the stored
records' exact quantities (``quantityDecimal`` of ``GET /_emulator/records``) in order.
A request is ``{"operation"?, "target"?, "method"? (POST), "path"? ("/"), "body"? | "rawBody"?,
"auth"?: "sigv4" (default) | "none" | {"accessKey"?, "secretKey"?, "token"?, "region"?, "service"?},
"headers"? (added after signing, so unsigned), "dropHeaders"? (removed after signing), "contentType"?}``.
Body and fixture strings ``$NOW`` / ``$NOW-<s>`` / ``$NOW+<s>`` become epoch seconds at run time; ``$NOWF`` a float;
in ``rawBody`` the text ``$NOW`` is replaced by the epoch seconds.
In ``expect.body``, ``$ANY`` matches any value and ``$UUID`` any UUID; objects match as subsets
(``expect.exactBody``: the same, but objects must have exactly the expected keys).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from metering_emulator.testing import EmulatorServer

from spec.emulator.support import ACCESS_KEY, SECRET_KEY, Reply, send, signed

CASES_DIR = Path(__file__).parent / "cases"
CASES = [
    (f"{path.stem}: {case['name']}", case)
    for path in sorted(CASES_DIR.glob("*.json"))
    for case in json.loads(path.read_text(encoding="utf-8"))
]
_NOW_RE = re.compile(r"^\$NOW([+-]\d+)?$")


def _expand(value: Any, now: int) -> Any:
    if isinstance(value, str):
        if value == "$NOWF":
            return now + 0.25
        m = _NOW_RE.match(value)
        if m:
            return now + int(m.group(1) or 0)
        return value
    if isinstance(value, list):
        return [_expand(v, now) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, now) for k, v in value.items()}
    return value


def _perform(emu: EmulatorServer, request: dict[str, Any], now: int) -> Reply:
    if "rawBody" in request:
        body: bytes = request["rawBody"].replace("$NOW", str(now)).encode("utf-8")
    else:
        body = json.dumps(_expand(request.get("body", {}), now)).encode("utf-8")
    auth = request.get("auth", "sigv4")
    headers = request.get("headers", {})
    if auth == "none" or request.get("method", "POST") != "POST" or request.get("path", "/") != "/":
        out = {"Content-Type": request.get("contentType", "application/x-amz-json-1.1"), **headers}
        if request.get("operation"):
            out["X-Amz-Target"] = f"AWSMPMeteringService.{request['operation']}"
        return send(emu, request.get("method", "POST"), request.get("path", "/"), body, out)
    creds = auth if isinstance(auth, dict) else {}
    return signed(
        emu, request.get("operation"), body,
        access_key=creds.get("accessKey", ACCESS_KEY), secret_key=creds.get("secretKey", SECRET_KEY),
        token=creds.get("token"), region=creds.get("region", "us-east-1"),
        service=creds.get("service", "aws-marketplace"), target=request.get("target"),
        content_type=request.get("contentType", "application/x-amz-json-1.1"), extra=headers,
        drop=tuple(request.get("dropHeaders", [])),
    )


def _matches(expected: Any, actual: Any, exact: bool = False) -> bool:
    if expected == "$ANY":
        return True
    if expected == "$UUID":
        try:
            uuid.UUID(str(actual))
        except ValueError:
            return False
        return True
    if isinstance(expected, dict):
        return (isinstance(actual, dict) and (not exact or set(expected) == set(actual))
                and all(k in actual and _matches(v, actual[k], exact) for k, v in expected.items()))
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(_matches(e, a, exact) for e, a in zip(expected, actual, strict=True)))
    return bool(expected == actual)


def _stored(emu: EmulatorServer) -> list[dict[str, Any]]:
    """Stored records without their bookkeeping counters (those count rejected resends on purpose)."""
    counters = {"submissions", "duplicatesRejected"}
    return [{k: v for k, v in r.items() if k not in counters} for r in emu.admin.records()["records"]]


def test_the_case_files_hold_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({name for name, _ in CASES}) == len(CASES), "case names must be unique"


@pytest.mark.parametrize("case", [c for _, c in CASES], ids=[n for n, _ in CASES])
def test_protocol_case(emu: EmulatorServer, case: dict[str, Any]) -> None:
    now = int(time.time())
    setup = case.get("setup", {})
    if "clock" in setup:
        now = int(emu.admin.set_clock(now=setup["clock"], frozen=True)["now"])
    if "fixtures" in setup:
        emu.admin.load_fixtures(_expand(setup["fixtures"], now))
    if "config" in setup:
        emu.admin.set_config(**setup["config"])
    for prior in setup.get("requests", []):
        assert _perform(emu, prior, now).status == 200
    before = _stored(emu)
    reply = _perform(emu, case["request"], now)
    expect = case["expect"]
    assert reply.status == expect["status"], reply.body
    assert reply.headers.get("x-amzn-requestid")
    if "type" in expect:
        assert reply.headers.get("content-type") == "application/x-amz-json-1.1"
        assert reply.error_type == expect["type"], reply.body
        assert reply.headers.get("x-amzn-errortype") == expect["type"]
        assert isinstance(reply.json().get("message"), str)
        assert _stored(emu) == before, "a rejected request changed the stored records"
    if "message" in expect:
        assert reply.json()["message"] == expect["message"]
    if "messageContains" in expect:
        assert expect["messageContains"] in reply.json()["message"], reply.json()["message"]
    if "body" in expect:
        assert _matches(_expand(expect["body"], now), reply.json()), reply.json()
    if "exactBody" in expect:
        assert _matches(_expand(expect["exactBody"], now), reply.json(), exact=True), reply.json()
    if "records" in expect:
        assert len(emu.admin.records()["records"]) == expect["records"]
    if "quantities" in expect:
        assert [r["quantityDecimal"] for r in emu.admin.records()["records"]] == expect["quantities"]
