"""Structured JSON log lines; secrets (crypto password, API key, cfg credentials) are redacted."""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticio_sailor.logs import (
    REDACTOR,
    Redactor,
    config_secrets,
    declared_secret_fields,
    secret_forms,
    setup_logging,
)

from spec.sailor.helpers import assert_nothing_leaks


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging takes over the root logger and warnings; give them back to pytest afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_given_config_when_collecting_secrets_then_secret_keys_and_long_values() -> None:
    cfg = {"apiKey": "k1", "accessKeyId": "AKIA0000", "region": "us-east-1", "nested": {"password": "pw1"},
           "n": 3, "short": "abc"}
    secrets = config_secrets(cfg)
    assert {"k1", "AKIA0000", "us-east-1", "pw1"} <= set(secrets)
    assert "abc" not in secrets


def test_given_the_id_of_a_key_in_cfg_then_it_is_masked_in_logs_only_and_an_error_can_name_it() -> None:
    # an error must be able to say which access key to fix; the secret key itself stays strict
    r = Redactor()
    r.add_config({"accessKeyId": "AKIAEXAMPLE000000000", "secretAccessKey": "wJalr/Example+Secret0000",
                  "api_key_id": "kid-0000000001", "apiKey": "ak-secret-000001", "secret_id": "vault-approle-s1"})
    text = ("key AKIAEXAMPLE000000000 (kid-0000000001) secret wJalr/Example+Secret0000 api ak-secret-000001 "
            "approle vault-approle-s1")
    # an "..._id" may be a secret (Vault's AppRole secret_id): only a key's id is named
    assert r.strict(text) == "key AKIAEXAMPLE000000000 (kid-0000000001) secret *** api *** approle ***"
    assert r(text) == "key *** (***) secret *** api *** approle ***"


def test_given_a_three_character_secret_then_it_is_masked_as_a_word_of_its_own_not_inside_other_words() -> None:
    r = Redactor()
    r.add(["Met", "123"])
    text = "MeterUsage of account 123456789012 failed; ExternalId Met, code 123."
    assert r.strict(text) == "MeterUsage of account 123456789012 failed; ExternalId ***, code ***."
    assert r(text) == r.strict(text)
    # an escape before it is no word character: a JSON-escaped line break or tab in the finished log line, a
    # percent-escape of a URL in a URL (once or twice)
    escaped = '{"msg":"external id:\\nMet and\\tMet and \\u001bMet","q":"ExternalId%3DMet%26x ExternalId%253DMet"}'
    assert "Met" not in r.strict(escaped).replace("MeterUsage", ""), r.strict(escaped)


def test_given_registered_secret_when_redacting_then_every_occurrence_masked() -> None:
    r = Redactor()
    r.add(["s3cr3t-value", "ab"])
    assert r("x s3cr3t-value y s3cr3t-value ab") == "x *** y *** ab"


def test_given_a_reason_quoting_a_secret_at_the_cut_when_clipped_then_no_part_of_it_shows() -> None:
    """Reasons are cut to a few hundred characters for log lines and errors: masked first, then cut (cut first,
    the secret would no longer match and its first part would show)."""
    from elasticio_sailor.logs import clip

    token = "maester-token-0123456789abcdefghijklmnopqrstuvwxyz"
    REDACTOR.add([token])
    text = "x" * 250 + f" Invalid header value b'Bearer {token}\\n'"
    clipped = clip(ValueError(text), 300)
    assert len(clipped) <= 300 and "maester-token" not in clipped and "Bearer ***" in clipped


def test_given_an_object_storage_token_ending_in_a_line_break_then_it_is_sent_without_it() -> None:
    """A token mounted from a file often ends in a line break; no header value may hold one (http.client
    would refuse it, quoting the token in its error)."""
    from elasticio_sailor.objectstorage import ObjectStorage

    storage = ObjectStorage("http://127.0.0.1:9/", "tok-from-a-file\n", None, retries=0)  # type: ignore[arg-type]
    assert storage._token == "tok-from-a-file"


def test_given_component_logs_cfg_when_formatted_then_json_line_without_the_secret() -> None:
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "info", "ELASTICIO_FLOW_ID": "flow1", "ELASTICIO_STEP_ID": "s2"}, stream=out)
    REDACTOR.add_config({"secretAccessKey": "wJalr/Secret+Key-123"})
    logging.getLogger("component").info("cfg is %s", {"secretAccessKey": "wJalr/Secret+Key-123"},
                                        extra={"messageId": "m1"})
    line = json.loads(out.getvalue().strip())
    assert "wJalr/Secret+Key-123" not in out.getvalue()
    assert "***" in line["msg"]
    assert line["name"] == "component"
    assert line["level"] == 30
    assert line["v"] == 0
    assert line["messageId"] == "m1"
    assert line["ELASTICIO_FLOW_ID"] == line["tag"] == "flow1"  # Node's keys (lib/logging.js)
    assert line["time"].endswith("Z")


def test_given_warn_level_when_logging_info_then_nothing_written() -> None:
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "warn"}, stream=out)
    logging.getLogger("sailor").info("quiet")
    logging.getLogger("sailor").warning("loud")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["loud"]
    assert lines[0]["level"] == 40


def test_given_module_and_root_loggers_when_logging_then_json_lines_at_the_level_redacted() -> None:
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "info"}, stream=out)
    REDACTOR.add(["module-logger-secret-5"])
    logging.getLogger("some_component.client").info("retrying with module-logger-secret-5")
    logging.getLogger("some_component.client").debug("too detailed")
    logging.warning("from the root logger")  # noqa: LOG015 - the root logger on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["name"], x["logger"], x["level"]) for x in lines] == [
        ("component", "some_component.client", 30), ("component", "root", 40), ("component", "py.warnings", 40)]
    assert lines[0]["msg"] == "retrying with ***"
    assert "deprecated thing" in lines[2]["msg"]


def test_given_secret_with_reserved_characters_when_logged_in_every_form_then_no_form_is_written() -> None:
    secret = "dom\\us+er/p'w\"d 9"  # a backslash, both quotes, a space, URL-reserved characters
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "trace"}, stream=out)
    REDACTOR.add_config({"password": secret})
    lib = logging.getLogger("urllib3.connectionpool")
    lib.debug("https://h:443 \"GET /x?%s HTTP/1.1\" 200", urllib.parse.urlencode({"token": secret}))
    lib.debug("GET /x/%s", urllib.parse.quote(secret, safe=""))
    lib.debug("lower-case escapes %s", urllib.parse.quote(secret, safe="").lower())
    lib.debug("requoted %s", urllib.parse.quote(secret, safe="!#$%&'()*+,/:;=?@[]~"))
    comp = logging.getLogger("component")
    comp.info("cfg is %s", {"password": secret})  # repr: the backslash doubles, a quote is escaped
    comp.info("cfg is %s", {"password": secret, "other": "it's \"x\""})
    comp.info("in a list %r, as bytes %r", [secret + "'"], secret.encode())
    comp.warning("verbatim %s", secret)
    logging.error("root: %s", repr(secret))  # noqa: LOG015 - the root logger on purpose
    text = out.getvalue()
    assert text.count("***") >= 10
    assert_nothing_leaks([text], [secret])
    assert_nothing_leaks([text], [urllib.parse.quote(secret, safe="").lower()])


def test_given_secret_base64_encoded_or_percent_encoded_twice_when_logged_then_masked() -> None:
    """An HTTP Basic header (``user:`` and the secret, base64), a token inside a base64 JSON blob at each of the
    three byte offsets, URL-safe base64, and a URL carried in another URL's query (escapes escaped again)."""
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"  # AWS's example secret key has / and + (URL-safe differs)
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "trace"}, stream=out)
    REDACTOR.add_config({"secretAccessKey": secret})
    lib = logging.getLogger("http.client")
    for user in ("u", "us", "use"):  # the secret starts at each offset of a 3-byte group
        basic = base64.b64encode(f"{user}:{secret}".encode()).decode()
        lib.debug("send: b'GET / HTTP/1.1\\r\\nAuthorization: Basic %s\\r\\n'", basic)
        lib.debug("state %s", base64.urlsafe_b64encode(f'{{"{user}":"{secret}"}}'.encode()).decode())
    inner = "https://sts.example/?" + urllib.parse.urlencode({"token": secret})
    lib.debug("redirect to https://idp.example/?next=%s", urllib.parse.quote(inner, safe=""))
    text = out.getvalue()
    assert text.count("***") == 7
    assert_nothing_leaks([text], [secret])


def test_given_registered_secret_when_redacting_raw_text_then_its_forms_are_masked() -> None:
    r = Redactor()
    r.add(["p@ss w\\rd"])
    assert r("url https://h/?p=p%40ss+w%5Crd and p%40ss%20w%5Crd and {'k': 'p@ss w\\\\rd'}") == (
        "url https://h/?p=*** and *** and {'k': '***'}")
    assert {"p@ss w\\rd", "p%40ss%20w%5Crd", "p%40ss+w%5Crd", "p@ss w\\\\rd"} <= secret_forms("p@ss w\\rd")


def test_given_component_json_when_reading_declared_fields_then_password_views_of_credentials_and_functions() -> None:
    definition = {
        "credentials": {"fields": {"user": {"viewClass": "TextFieldView"}, "pwd": {"viewClass": "PasswordFieldView"}}},
        "triggers": {"t": {"fields": {"pin": {"viewClass": "PasswordFieldView"}}}},
        "actions": {"a": {"fields": {"pass": {"viewClass": "PasswordFieldView"}, "n": {}}}, "b": "junk"},
    }
    assert declared_secret_fields(definition) == {"pwd", "pin", "pass"}
    assert declared_secret_fields([]) == set()


@pytest.mark.parametrize("declared_first", [True, False])
def test_given_short_values_of_declared_secret_fields_when_redacting_then_masked_in_either_order(
    declared_first: bool
) -> None:
    r = Redactor()
    cfg = {"pwd": "hunter2", "pin": "4711", "user": "bob", "nested": {"pass": "s3x"}}
    if declared_first:
        r.declare_fields(["pwd", "pin", "pass"])
        r.add_config(cfg)
    else:
        r.add_config(cfg)
        assert r("hunter2 4711") == "hunter2 4711"  # no pattern names them
        r.declare_fields(["pwd", "pin", "pass"])
    assert r("pwd hunter2 pin 4711 pass s3x user bob") == "pwd *** pin *** pass *** user bob"


def test_given_component_path_when_setting_up_logging_then_its_password_fields_are_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "comp").mkdir()
    (tmp_path / "comp" / "component.json").write_text(json.dumps(
        {"credentials": {"fields": {"pwdx": {"label": "Password", "viewClass": "PasswordFieldView"}}}}))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "info", "ELASTICIO_COMPONENT_PATH": "/comp"}, stream=out)
    REDACTOR.add_config({"pwdx": "pw-0815", "region": "eu"})
    logging.getLogger("component").info("cfg is %s", {"pwdx": "pw-0815", "region": "eu"})
    assert json.loads(out.getvalue())["msg"] == "cfg is {'pwdx': '***', 'region': 'eu'}"
