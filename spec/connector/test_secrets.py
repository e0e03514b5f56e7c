"""Secrets (secret key, session token) never appear in logs at any level, emitted messages or errors."""

from __future__ import annotations

import base64
import json
import logging
import os
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape as xml_escape

import pytest
from elasticio_sailor.messages import format_error
from metering_emulator.testing import EmulatorServer

import lib.credentials
import verifyCredentials
from lib.client import CREDENTIAL_RULE, MeteringClient, Settings
from lib.errors import MeteringError
from lib.operations import OPERATIONS
from lib.redact import SecretFilter, scrub_known
from lib.resilience import Backoff
from spec.connector.builders import (
    PRODUCT,
    REG_TOKEN,
    SESSION_TOKEN,
    TEMP_ACCESS_KEY,
    TEMP_SECRET_KEY,
    StepContext,
    a_config,
    a_record,
    hour_start,
    run_action,
)
from spec.connector.scripted import Canned, ScriptedServer
from spec.support.identity import EXTERNAL_ID, SELLER_ROLE, SOURCE_KEY, SOURCE_SECRET, identity_fixtures
from spec.support.ports import closed_port_url
from spec.support.secrets import base64_leaks

WRONG_SECRET = "Wrong+Secret/ForTheScan/abcdefghijklmnop"


class Capture(logging.Handler):
    """Keeps every formatted record, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def windows(secret: str, size: int = 10) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def test_given_every_path_at_debug_then_no_secret_substring_leaks(
        metering_emulator: EmulatorServer, captured: Capture) -> None:
    good = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY,
                    sessionToken=SESSION_TOKEN)
    bad = a_config(metering_emulator.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=WRONG_SECRET,
                   sessionToken=SESSION_TOKEN)
    outputs: list[Any] = []
    ctx = StepContext()
    metering_emulator.admin.add_fault(type="throttle", count=1, operations=["ResolveCustomer"])
    metering_emulator.admin.add_fault(type="error500", count=1, operations=["RegisterUsage"])
    scenarios: list[Callable[[], Any]] = [
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, good, ctx=ctx),
        lambda: run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1}, good, ctx=ctx),
        lambda: run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(),
                                          "UsageDimension": "users"}, good, ctx=ctx),  # not entitled: error
        lambda: run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [
            a_record(), a_record(timestamp=hour_start(-20))]}, dict(good, emitPerRecord=True), ctx=ctx),
        lambda: run_action("batchMeterUsage", {"UsageRecords": [{"Timestamp": "x"}]}, good, ctx=ctx),
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, bad, ctx=ctx),
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, dict(bad, region="nowhere"), ctx=ctx),
        lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN},
                           dict(bad, endpointUrl="http://example.com"), ctx=ctx),
        lambda: verifyCredentials.verify(ctx, bad),
        lambda: verifyCredentials.verify(ctx, good),
    ]
    for scenario in scenarios:
        try:
            outputs.append(scenario())
        except Exception as err:  # noqa: BLE001 - every error is part of the scan
            outputs += [str(err), repr(err), format_error(err), getattr(err, "error_details", None)]
    outputs += [payload for _, payload in ctx.events]
    text = "\n".join(captured.lines) + "\n" + json.dumps(outputs, default=repr)
    assert "ThrottlingException" in text and "InvalidSignatureException" in text  # the scan saw the failures
    assert len(captured.lines) >= 10 and any("DEBUG" in line for line in captured.lines)
    for secret in (TEMP_SECRET_KEY, WRONG_SECRET, SESSION_TOKEN):
        leaked = [w for w in windows(secret) if w in text]
        assert not leaked, f"secret fragment leaked: {leaked[:1]}"


def test_given_a_log_call_that_formats_a_secret_then_the_filter_masks_it(captured: Capture) -> None:
    logger = logging.getLogger("spec.secrets.filter")
    guard = SecretFilter()
    guard.add([TEMP_SECRET_KEY, "abc"])  # too short to mask everywhere: masked where it is a word of its own
    logger.addFilter(guard)
    try:
        logger.warning("cfg was %s and %r, in words: fabcd abc-def", {"secretAccessKey": TEMP_SECRET_KEY}, "abc")
    finally:
        logger.removeFilter(guard)
    line = captured.lines[-1]
    assert TEMP_SECRET_KEY not in line and "{'secretAccessKey': '***'}" in line
    assert "and '***', in words: fabcd abc-def" in line


def test_given_the_role_modes_at_debug_then_no_session_credential_token_or_external_id_leaks(
        metering_emulator: EmulatorServer, captured: Capture, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Any) -> None:
    import lib.credentials
    from spec.support.identity import (
        CONTAINER_AUTH,
        EXTERNAL_ID,
        SELLER_ROLE,
        SOURCE_KEY,
        SOURCE_SECRET,
        WEB_TOKEN,
        WORKLOAD_ENV_NAMES,
        identity_fixtures,
        workload_env,
    )

    emu = metering_emulator
    emu.admin.load_fixtures(identity_fixtures())
    base = {"region": "us-east-1", "endpointUrl": emu.url, "stsEndpointUrl": emu.url}
    assume = {**base, "authMode": "assumeRole", "accessKeyId": SOURCE_KEY, "secretAccessKey": SOURCE_SECRET,
              "roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID}
    wrong_id = "ext-id-Wrong-Secret-42"
    ctx = StepContext()
    outputs: list[Any] = []
    frozen: list[Any] = []

    def in_container(kind: str) -> None:
        for name in WORKLOAD_ENV_NAMES:
            monkeypatch.delenv(name, raising=False)
        for name, value in workload_env(kind, emu.url, tmp_path).items():
            monkeypatch.setenv(name, value)
        lib.credentials.clear_cache()

    scenarios: list[tuple[str, Callable[[], Any]]] = [
        ("none", lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, assume, ctx=ctx)),
        ("none", lambda: run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN},
                                    dict(assume, externalId=wrong_id), ctx=ctx)),
        ("none", lambda: verifyCredentials.verify(ctx, dict(assume, externalId=wrong_id))),
        ("irsa", lambda: run_action("batchMeterUsage", {"ProductCode": PRODUCT, "UsageRecords": [a_record()]},
                                    dict(base, authMode="workloadIdentity"), ctx=ctx)),
        ("irsa", lambda: verifyCredentials.verify(ctx, dict(base, authMode="workloadIdentity"))),
        ("ecs", lambda: run_action("registerUsage", {"ProductCode": PRODUCT, "PublicKeyVersion": 1},
                                   dict(base, authMode="workloadIdentity"), ctx=ctx)),
        ("ec2", lambda: run_action("meterUsage", {"ProductCode": PRODUCT, "Timestamp": hour_start(),
                                                  "UsageDimension": "users"}, dict(base, authMode="workloadIdentity"),
                                   ctx=ctx)),
        ("none", lambda: verifyCredentials.verify(ctx, dict(base, authMode="workloadIdentity"))),
    ]
    for kind, scenario in scenarios:
        in_container(kind)
        try:
            outputs.append(scenario())
        except Exception as err:  # noqa: BLE001 - every error is part of the scan
            outputs += [str(err), repr(err), format_error(err), getattr(err, "error_details", None)]
        for source in lib.credentials._SOURCES.values():
            current = source._current
            if current is not None:
                frozen.append(current.get_frozen_credentials())
    lib.credentials.clear_cache()
    outputs += [payload for _, payload in ctx.events]
    text = "\n".join(captured.lines) + "\n" + json.dumps(outputs, default=repr)
    assert "AccessDenied" in text and "No workload identity" in text  # the scan saw the failures
    assert len(frozen) >= 4 and all(f.token for f in frozen)
    secrets = [EXTERNAL_ID, wrong_id, WEB_TOKEN, CONTAINER_AUTH, SOURCE_SECRET]
    secrets += [f.secret_key for f in frozen] + [f.token for f in frozen]
    for secret in secrets:
        leaked = [w for w in windows(secret) if w in text]
        assert not leaked, f"secret fragment leaked: {leaked[:1]}"


# Characters AWS never puts in a credential, each of which http.client refuses in a header with the value in
# its message ("Invalid header value b'<token>\\n'", a UnicodeEncodeError quoting the string).
BAD_CHARACTERS = {"line-break-at-the-end": "{}\n", "line-break-inside": "{}\r\nX-Injected: 1",
                  "control": "{}\x00", "non-latin-1": "{}\u2019x", "space-at-the-end": "{} "}
CREDENTIAL_VALUES = {"accessKeyId": TEMP_ACCESS_KEY, "secretAccessKey": TEMP_SECRET_KEY,
                     "sessionToken": SESSION_TOKEN}
ARGUMENTS = {"accessKeyId": "access_key_id", "secretAccessKey": "secret_access_key", "sessionToken": "session_token"}


def scanned(captured: Capture, *outputs: Any) -> str:
    """Everything a user or an operator could see: the log lines and the outputs as JSON."""
    return "\n".join(captured.lines) + "\n" + json.dumps(list(outputs), default=repr)


def error_outputs(err: BaseException) -> list[Any]:
    return [str(err), repr(err), format_error(err), getattr(err, "error_details", None)]


def assert_no_fragment(text: str, *secrets: str) -> None:
    for secret in secrets:
        leaked = [w for w in windows(secret.strip()) if w in text]
        assert not leaked, f"secret fragment leaked: {leaked[:1]}"


@pytest.mark.parametrize("mode", ["accessKeys", "assumeRole"])
@pytest.mark.parametrize("bad", sorted(BAD_CHARACTERS))
@pytest.mark.parametrize("field", sorted(CREDENTIAL_VALUES))
def test_given_a_credential_with_a_character_aws_never_issues_then_it_is_refused_by_field_and_rule_unsent(
        captured: Capture, field: str, bad: str, mode: str) -> None:
    value = BAD_CHARACTERS[bad].format(CREDENTIAL_VALUES[field])
    cfg = a_config(closed_port_url(), **{**CREDENTIAL_VALUES, field: value})
    if mode == "assumeRole":
        cfg.update(authMode="assumeRole", roleArn=SELLER_ROLE, externalId=EXTERNAL_ID,
                   stsEndpointUrl=closed_port_url())
    ctx = StepContext()
    with pytest.raises(MeteringError) as raised:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, ctx=ctx)
    err = raised.value
    assert (err.code, err.operation, err.retryable) == ("ValidationFailed", "configuration", False)
    assert [problem.path for problem in err.problems] == [f"/{field}"]
    assert err.problems[0].problem.endswith(CREDENTIAL_RULE)  # after the schema's own pattern, if it has one
    typed = {ARGUMENTS[name]: cfg[name] for name in CREDENTIAL_VALUES}
    with pytest.raises(MeteringError) as raised_by_create:  # library use: the same rule, by field
        Settings.create(**typed, endpoint_url=cfg["endpointUrl"])
    assert [problem.path for problem in raised_by_create.value.problems] == [f"/{field}"]
    reason = verifyCredentials.verify(ctx, cfg)
    assert reason["verified"] is False and f"({field}): " in reason["reason"]  # by its label in the form
    text = scanned(captured, *error_outputs(err), reason, ctx.events)
    assert_no_fragment(text, TEMP_SECRET_KEY, SESSION_TOKEN, value)


@pytest.mark.parametrize("bad", ["\n", "\r\nX-Injected: 1", "\u2019"], ids=["line-break", "crlf", "non-latin-1"])
def test_given_settings_built_without_the_checks_when_the_token_cannot_be_sent_then_the_error_holds_no_value(
        metering_emulator: EmulatorServer, captured: Capture, bad: str) -> None:
    """Library use that builds Settings directly: http.client's ValueError/UnicodeEncodeError, which quote
    the header value, become a MeteringError that names neither the value nor the exception's text."""
    token = SESSION_TOKEN + bad + "tail-of-the-token"
    settings = Settings.create(TEMP_ACCESS_KEY, TEMP_SECRET_KEY, endpoint_url=metering_emulator.url
                               )._replace(session_token=token)
    sleeps: list[float] = []
    client = MeteringClient(settings, backoff=Backoff(max_attempts=3), sleep=sleeps.append)
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": REG_TOKEN})
    err = raised.value
    assert (err.code, err.kind, err.retryable, sleeps) == ("RequestNotSent", "credentials", False, [])
    result = verifyCredentials.check(a_config(metering_emulator.url), client=client)
    assert result["verified"] is False and "cannot be sent" in result["reason"]
    assert_no_fragment(scanned(captured, *error_outputs(err), result), token, TEMP_SECRET_KEY)


def test_given_the_role_mode_when_botocore_quotes_the_configured_token_then_it_is_masked_with_the_keys_hint(
        metering_emulator: EmulatorServer, captured: Capture) -> None:
    """botocore's HTTPClientError quotes the header value it could not send: the configured secrets (not only
    those learnt at run time) are masked, and the hint is about the access keys, not a workload identity."""
    metering_emulator.admin.load_fixtures(identity_fixtures())
    token = "FwoGZXIvYXdzEXAMPLESESSIONTOKENsecretpart\n"
    settings = Settings.create(SOURCE_KEY, SOURCE_SECRET, endpoint_url=metering_emulator.url,
                               auth_mode="assumeRole", role_arn=SELLER_ROLE, external_id=EXTERNAL_ID,
                               sts_endpoint_url=metering_emulator.url)._replace(session_token=token)
    client = MeteringClient(settings, backoff=Backoff(max_attempts=1))
    try:
        with pytest.raises(MeteringError) as raised:
            client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": REG_TOKEN})
    finally:
        lib.credentials.clear_cache()
    err = raised.value
    assert (err.operation, err.kind, err.retryable) == ("credentials", "credentials", False)
    assert "***" in err.aws_message and "access keys" in str(err) and "workload identity" not in str(err)
    assert_no_fragment(scanned(captured, *error_outputs(err)), token, SOURCE_SECRET, EXTERNAL_ID)


LONG_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE" + "Zx9/Qw3+" * 45  # longer than the 500 characters an AWS message keeps


def _signature_mismatch(headers: dict[str, str]) -> Canned:
    """AWS's InvalidSignatureException: it quotes the canonical request it expected, token included."""
    sent = {name.lower(): value for name, value in headers.items()}
    canonical = "POST\n/\n\n" + "".join(f"{name}:{sent[name]}\n" for name in (
        "content-type", "host", "x-amz-date", "x-amz-security-token", "x-amz-target"))
    message = ("The request signature we calculated does not match the signature you provided. Check your AWS "
               "Secret Access Key and signing method. Consult the service documentation for details.\n\nThe "
               "Canonical String for this request should have been\n'" + canonical + "'")
    body = json.dumps({"__type": "InvalidSignatureException", "message": message}).encode()
    return Canned(400, body, {"x-amzn-RequestId": "rid-signature"})


@pytest.mark.parametrize("mode", ["access-keys", "assume-role"])
def test_given_aws_quotes_the_canonical_request_then_the_token_is_masked_before_the_message_is_cut(
        metering_emulator: EmulatorServer, captured: Capture, mode: str) -> None:
    metering_emulator.admin.load_fixtures(identity_fixtures())
    ctx = StepContext()
    with ScriptedServer([_signature_mismatch]) as server:
        if mode == "access-keys":
            cfg = a_config(server.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY,
                           sessionToken=LONG_TOKEN)
        else:
            cfg = a_config(server.url, authMode="assumeRole", accessKeyId=SOURCE_KEY, secretAccessKey=SOURCE_SECRET,
                           roleArn=SELLER_ROLE, externalId=EXTERNAL_ID, stsEndpointUrl=metering_emulator.url)
        try:
            with pytest.raises(MeteringError) as raised:
                run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, ctx=ctx)
            sent = [headers.get("X-Amz-Security-Token") or headers.get("x-amz-security-token") or ""
                    for headers, _ in server.requests]
        finally:
            lib.credentials.clear_cache()
    err = raised.value
    assert (err.code, err.request_id, err.retryable) == ("InvalidSignatureException", "rid-signature", False)
    assert err.aws_message.startswith("The request signature we calculated does not match")
    assert "x-amz-security-token:***\nx-amz-target:AWSMPMeteringService.ResolveCustomer" in err.aws_message
    assert len(sent) == 1 and len(sent[0]) > 100
    assert_no_fragment(scanned(captured, *error_outputs(err), ctx.events), sent[0], LONG_TOKEN, TEMP_SECRET_KEY)


def _sts_error(code: str, message: str, status: int = 403) -> Canned:
    """An STS error answer (Query protocol, XML), as AWS's STS writes it."""
    body = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{code}</Code><Message>{xml_escape(message)}</Message></Error><RequestId>rid-sts</RequestId>"
            "</ErrorResponse>")
    return Canned(status, body.encode(), {"Content-Type": "text/xml"})


def _sts_signature_mismatch(headers: dict[str, str]) -> Canned:
    """STS's SignatureDoesNotMatch quotes the canonical request it expected, the signer's session token included."""
    sent = {name.lower(): value for name, value in headers.items()}
    canonical = "POST\n/\n\n" + "".join(f"{name}:{sent.get(name, '')}\n" for name in (
        "content-type", "host", "x-amz-date", "x-amz-security-token"))
    return _sts_error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you "
                      "provided.\n\nThe Canonical String for this request should have been\n'" + canonical + "'")


def _in_container(monkeypatch: pytest.MonkeyPatch, kind: str, emulator_url: str, tmp_path: Any) -> None:
    from spec.support.identity import WORKLOAD_ENV_NAMES, workload_env

    for name in WORKLOAD_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in workload_env(kind, emulator_url, tmp_path).items():
        monkeypatch.setenv(name, value)
    lib.credentials.clear_cache()


def test_given_assume_role_from_the_workload_when_sts_quotes_the_workload_session_then_it_is_masked(
        metering_emulator: EmulatorServer, captured: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The workload's own session (here the ECS task role's) signs AssumeRole: it is a secret too, although the
    connector never hands it out for a metering call."""
    metering_emulator.admin.load_fixtures(identity_fixtures())
    _in_container(monkeypatch, "ecs", metering_emulator.url, tmp_path)
    ctx = StepContext()
    with ScriptedServer([_sts_signature_mismatch]) as sts:
        cfg = {"region": "us-east-1", "endpointUrl": metering_emulator.url, "authMode": "assumeRole",
               "roleSource": "workloadIdentity", "roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID,
               "stsEndpointUrl": sts.url}
        try:
            with pytest.raises(MeteringError) as raised:
                run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, ctx=ctx)
            answer = verifyCredentials.verify(ctx, cfg)
            sent = [next((v for k, v in headers.items() if k.lower() == "x-amz-security-token"), "")
                    for headers, _ in sts.requests]
        finally:
            lib.credentials.clear_cache()
    err = raised.value
    assert err.code == "SignatureDoesNotMatch" and "x-amz-security-token:***" in err.aws_message
    assert answer["verified"] is False
    assert sent and all(len(token) > 20 for token in sent)
    assert_no_fragment(scanned(captured, *error_outputs(err), answer, ctx.events), *sent)


def test_given_a_rotated_web_identity_token_file_then_the_new_token_is_masked_before_it_is_used(
        metering_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The kubelet rotates the projected token; botocore reads the file again when it refreshes, and STS may
    quote a token it rejects: the new token is a known secret from the next use of the credentials on."""
    from lib.redact import scrub_known

    metering_emulator.admin.load_fixtures(identity_fixtures())
    _in_container(monkeypatch, "irsa", metering_emulator.url, tmp_path)
    cfg = {"region": "us-east-1", "endpointUrl": metering_emulator.url, "stsEndpointUrl": metering_emulator.url,
           "authMode": "workloadIdentity"}
    rotated = "eyJhbGciOiJSUzI1NiJ9.rotated-projected-token.Zq8PkWm2Lx"
    try:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
        Path(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]).write_text(rotated)
        assert rotated in scrub_known(f"token {rotated}")  # not known yet: nothing has used the credentials
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    finally:
        lib.credentials.clear_cache()
    assert scrub_known(f"Couldn't verify token {rotated}") == "Couldn't verify token ***"


@pytest.mark.parametrize("external_id", ["k9", "k9Z"])
def test_given_a_short_external_id_when_sts_quotes_it_then_it_is_masked_there(
        captured: Capture, external_id: str) -> None:
    """AWS allows External IDs of 2 characters; values that short are not masked everywhere (they would mask
    ordinary words), but where STS's text quotes one as a word of its own it is."""
    ctx = StepContext()
    with ScriptedServer([_sts_error("AccessDenied", f"ExternalId {external_id} does not match the trust policy")]
                        ) as sts, ScriptedServer([Canned(500)]) as metering:
        cfg = a_config(metering.url, authMode="assumeRole", accessKeyId=SOURCE_KEY, secretAccessKey=SOURCE_SECRET,
                       roleArn=SELLER_ROLE, externalId=external_id, stsEndpointUrl=sts.url)
        try:
            with pytest.raises(MeteringError) as raised:
                run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, ctx=ctx)
            answer = verifyCredentials.verify(ctx, cfg)
        finally:
            lib.credentials.clear_cache()
    text = scanned(captured, *error_outputs(raised.value), answer)
    assert "ExternalId *** does not match" in str(raised.value) and "ExternalId *** does not match" in answer["reason"]
    assert f"ExternalId {external_id} " not in text


def test_given_aws_quotes_the_session_token_percent_encoded_then_that_form_is_masked_too(
        captured: Capture) -> None:
    """A presigned URL or a canonical query string carries the token percent-encoded (``/`` → ``%2F``, ``+`` →
    ``%2B``); that form is masked like the token itself, also where the message is cut at 500 characters."""
    encoded = quote(LONG_TOKEN, safe="")
    message = "x" * 300 + f" X-Amz-Security-Token={encoded}"
    body = json.dumps({"__type": "UnrecognizedClientException", "message": message}).encode()
    ctx = StepContext()
    with ScriptedServer([Canned(403, body, {"x-amzn-RequestId": "rid-encoded"})]) as server:
        cfg = a_config(server.url, accessKeyId=TEMP_ACCESS_KEY, secretAccessKey=TEMP_SECRET_KEY,
                       sessionToken=LONG_TOKEN)
        with pytest.raises(MeteringError) as raised:
            run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, ctx=ctx)
    assert "X-Amz-Security-Token=***" in raised.value.aws_message
    assert_no_fragment(scanned(captured, *error_outputs(raised.value), ctx.events), encoded, LONG_TOKEN)


@pytest.mark.parametrize("field", ["endpointUrl", "stsEndpointUrl"])
def test_given_an_endpoint_url_with_a_password_then_it_is_refused_by_field_and_rule_unechoed(field: str) -> None:
    url = "https://proxyuser:Endp0intPassw0rd@metering.example.com/"
    cfg = a_config("https://metering.us-east-1.amazonaws.com/", **{field: url})
    if field == "stsEndpointUrl":
        cfg.update(authMode="assumeRole", roleArn=SELLER_ROLE)
    with pytest.raises(MeteringError) as raised:
        run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg)
    answer = verifyCredentials.verify(StepContext(), cfg)
    rule = "must not contain a user name or password"
    assert f"/{field}: {rule}" in str(raised.value) and f"({field}): {rule}" in answer["reason"]
    assert "Endp0intPassw0rd" not in json.dumps([error_outputs(raised.value), answer], default=repr)


def test_given_a_secret_base64_encoded_or_percent_encoded_twice_then_the_filter_and_error_texts_mask_it() -> None:
    """A third party's text may carry a secret base64-encoded (an HTTP Basic header from a proxy, a token
    blob), starting at any byte of a 3-byte group, in either alphabet; or escaped twice (a URL in a URL)."""
    secret = TEMP_SECRET_KEY
    texts = [f"Authorization: Basic {base64.b64encode(f'{user}:{secret}'.encode()).decode()}"
             for user in ("u", "us", "use")]
    texts.append("state=" + base64.urlsafe_b64encode(f'{{"k":"{secret}"}}'.encode()).decode())
    texts.append("next=" + quote("https://h/?" + urlencode({"token": secret}), safe=""))
    twice = quote(quote(secret, safe=""), safe="")
    assert all(base64_leaks(text, [secret]) for text in texts[:4]) and twice in texts[4]  # they do carry it
    log_filter = SecretFilter()
    log_filter.add([secret])
    for text in texts:
        record = logging.LogRecord("proxy", logging.DEBUG, __file__, 1, "%s", (text,), None)
        log_filter.filter(record)
        for masked in (record.getMessage(), scrub_known(text, also=[secret])):
            assert "***" in masked
            assert not base64_leaks(masked, [secret])
            assert twice not in masked


STS_SECRET = "StsIssued/Secret+Key0123456789abcdefABCDEF"
STS_TOKEN = "FwoGZXIvYXdzEStsIssuedSessionToken0123456789abcdefghijklmnopqrstuvwxyz"


def test_given_sts_answers_assume_role_with_a_body_cut_short_then_no_trace_of_the_session_leaves(
        captured: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's ResponseParserError quotes the whole raw answer: here a session's secret key and token no
    filter knows yet. Neither the error (retryable: STS may answer properly next time) nor the log shows it."""
    from elasticio_sailor import Rebound

    import lib.credentials
    from spec.support.identity import EXTERNAL_ID, SELLER_ROLE, SOURCE_KEY, SOURCE_SECRET

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    cut = (b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials>'
           b"<AccessKeyId>ASIASTSISSUED0000001</AccessKeyId><SecretAccessKey>" + STS_SECRET.encode()
           + b"</SecretAccessKey><SessionToken>" + STS_TOKEN.encode() + b"</SessionToken><Expiration>2026-")
    ctx = StepContext()
    lib.credentials.clear_cache()
    with ScriptedServer([Canned(200, cut, {"Content-Type": "text/xml"})]) as sts:
        cfg = {"region": "us-east-1", "endpointUrl": "http://127.0.0.1:9", "stsEndpointUrl": sts.url,
               "authMode": "assumeRole", "accessKeyId": SOURCE_KEY, "secretAccessKey": SOURCE_SECRET,
               "roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID}
        client = MeteringClient(Settings.from_cfg(cfg), backoff=Backoff(max_attempts=2), sleep=lambda _s: None)
        with pytest.raises(Rebound) as raised:
            run_action("resolveCustomer", {"RegistrationToken": REG_TOKEN}, cfg, ctx=ctx, client=client)
        verified = verifyCredentials.check(cfg)
    lib.credentials.clear_cache()
    cause = raised.value.__cause__
    assert isinstance(cause, MeteringError) and cause.code == "ResponseParserError" and cause.retryable
    text = scanned(captured, *error_outputs(raised.value), *error_outputs(cause), ctx.events, verified)
    text += "".join(traceback.format_exception(raised.value))
    assert_no_fragment(text, STS_SECRET, STS_TOKEN)
    assert "could not be read" in text
    # retryable: Verify credentials says to try again, not to check the keys
    assert verified["verified"] is False and verified["reason"].startswith("Could not verify now: "
                                                                           "ResponseParserError"), verified
    assert verified["reason"].endswith("try again later."), verified


def test_given_temporary_credentials_learnt_at_run_time_then_the_sailors_redactor_masks_them_too(
        metering_emulator: EmulatorServer) -> None:
    """The sailor's log lines, error events and service results mask what the connector learns at run time."""
    from elasticio_sailor.logs import REDACTOR

    import lib.credentials
    from spec.support.identity import EXTERNAL_ID, SELLER_ROLE, SOURCE_KEY, SOURCE_SECRET, identity_fixtures

    metering_emulator.admin.load_fixtures(identity_fixtures())
    cfg = {"region": "us-east-1", "endpointUrl": metering_emulator.url, "stsEndpointUrl": metering_emulator.url,
           "authMode": "assumeRole", "accessKeyId": SOURCE_KEY, "secretAccessKey": SOURCE_SECRET,
           "roleArn": SELLER_ROLE, "externalId": EXTERNAL_ID}
    lib.credentials.clear_cache()
    client = MeteringClient(Settings.from_cfg(cfg))
    client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": REG_TOKEN})
    session = client._credentials.current()  # type: ignore[union-attr]
    lib.credentials.clear_cache()
    line = f"secret {session.secret_key} token {session.token}"
    assert REDACTOR(line) == "secret *** token ***" and REDACTOR.strict(line) == "secret *** token ***"
