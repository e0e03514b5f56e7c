"""Settings read from one table with Node's parsing rules (docs/platform-contract.md §2.1, §11 quirks 1–2)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from elasticio_sailor.settings import (
    OPTIONAL,
    REQUIRED_ALWAYS,
    REQUIRED_FOR_AMQP,
    SettingsError,
    additional_headers,
    camel_case,
    load_service_settings,
    load_settings,
    url_password,
)


def full_env(**extra: str) -> dict[str, str]:
    env = {f"ELASTICIO_{k}": f"v-{k.lower()}" for k in REQUIRED_ALWAYS + REQUIRED_FOR_AMQP}
    env["ELASTICIO_MESSAGE_CRYPTO_IV"] = "0123456789abcdef"
    env.update(extra)
    return env


def test_given_empty_environment_when_loading_then_every_missing_variable_is_listed() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({})
    assert info.value.problems == [f"ELASTICIO_{k} is missing" for k in REQUIRED_ALWAYS + REQUIRED_FOR_AMQP]


def test_given_empty_string_when_loading_then_it_counts_as_missing() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(full_env(ELASTICIO_FLOW_ID="", ELASTICIO_AMQP_URI=""))
    assert info.value.problems == ["ELASTICIO_FLOW_ID is missing", "ELASTICIO_AMQP_URI is missing"]


def test_given_hook_shutdown_when_loading_then_amqp_variables_are_optional() -> None:
    env = {k: v for k, v in full_env().items() if k[len("ELASTICIO_"):] in REQUIRED_ALWAYS}
    env["ELASTICIO_HOOK_SHUTDOWN"] = "true"
    settings = load_settings(env)
    assert settings.HOOK_SHUTDOWN is True
    assert settings.AMQP_URI is None


def test_given_hook_shutdown_false_when_loading_then_amqp_skipped_but_flag_false_like_node() -> None:
    env = {k: v for k, v in full_env().items() if k[len("ELASTICIO_"):] in REQUIRED_ALWAYS}
    env["ELASTICIO_HOOK_SHUTDOWN"] = "false"
    assert load_settings(env).HOOK_SHUTDOWN is False


def test_given_no_optional_variables_when_loading_then_node_defaults() -> None:
    settings = load_settings(full_env())
    assert settings.RABBITMQ_PREFETCH_SAILOR == 1
    assert settings.REBOUND_LIMIT == 20
    assert settings.REBOUND_INITIAL_EXPIRATION == 15000
    assert settings.DATA_RATE_LIMIT == 10
    assert settings.ERROR_RATE_LIMIT == 2
    assert settings.OUTGOING_MESSAGE_SIZE_LIMIT == 10485760
    assert settings.AMQP_PUBLISH_RETRY_ATTEMPTS == math.inf
    assert settings.PROTOCOL_VERSION == 1
    assert settings.INPUT_FORMAT == "default"
    assert settings.NO_ERROR_REPLIES is False
    assert settings.PROCESS_AMQP_DRAIN is True
    assert set(OPTIONAL) <= set(settings.values)


@pytest.mark.parametrize(
    "raw, expected", [("0", 20), ("abc", 20), ("10abc", 10), ("7", 7), ("-3", -3), ("", 20)]
)
def test_given_numeric_text_when_loading_then_parse_int_or_default(raw: str, expected: int) -> None:
    assert load_settings(full_env(ELASTICIO_REBOUND_LIMIT=raw)).REBOUND_LIMIT == expected


@pytest.mark.parametrize(
    "raw, expected", [("", False), ("false", False), ("0", True), ("no", True), ("False", True), ("true", True)]
)
def test_given_boolean_text_when_loading_then_only_empty_and_false_are_false(raw: str, expected: bool) -> None:
    assert load_settings(full_env(ELASTICIO_NO_ERROR_REPLIES=raw)).NO_ERROR_REPLIES is expected


def test_given_protocol_version_3_when_loading_then_rejected() -> None:
    with pytest.raises(SettingsError, match="PROTOCOL_VERSION"):
        load_settings(full_env(ELASTICIO_PROTOCOL_VERSION="3"))


@pytest.mark.parametrize(
    "name, camel",
    [("TENANT_ID", "tenantId"), ("SECOND_ELASTICIO_ENV", "secondElasticioEnv"), ("FOO_BAR2", "fooBar2"),
     ("V2_API", "v2Api"), ("MY_VAR2X", "myVar2X"), ("ABCDef", "abcDef"), ("FIRST", "first")],
)
def test_given_upper_snake_name_when_camel_casing_then_lodash_result(name: str, camel: str) -> None:
    assert camel_case(name) == camel


def test_given_additional_vars_when_loading_then_camel_cased_headers_without_unset_ones() -> None:
    env = {
        "ELASTICIO_ADDITIONAL_VARS_FOR_HEADERS":
            "ELASTICIO_FIRST, ELASTICIO_SECOND_ELASTICIO_ENV ,ELASTICIO_NOT_PRESENT",
        "ELASTICIO_FIRST": "first",
        "ELASTICIO_SECOND_ELASTICIO_ENV": "second",
    }
    assert additional_headers(env) == {"first": "first", "secondElasticioEnv": "second"}


def test_given_secrets_in_environment_when_listing_secrets_then_password_key_and_amqp_password() -> None:
    settings = load_settings(full_env(ELASTICIO_AMQP_URI="amqp://user:amqp-pass-1@host:5672/"))
    secrets = settings.secrets()
    assert "v-api_key" in secrets
    assert "v-message_crypto_password" in secrets
    assert "amqp-pass-1" in secrets


def test_given_a_token_ending_in_a_line_break_when_listing_secrets_then_also_the_token_as_sent() -> None:
    """A token mounted from a file: object storage gets it stripped, so that form is masked too."""
    secrets = load_settings(full_env(ELASTICIO_OBJECT_STORAGE_TOKEN="maester-token-77\n")).secrets()
    assert {"maester-token-77\n", "maester-token-77"} <= set(secrets)


def test_given_crypto_iv_when_listing_secrets_then_it_is_one() -> None:
    assert "0123456789abcdef" in load_settings(full_env()).secrets()


@pytest.mark.parametrize(
    "uri, expected",
    [("amqp://user:p%40ssw0rd@host:5672/", ["p%40ssw0rd", "p@ssw0rd"]),
     ("amqps://us%3Aer:p%2Fss%23w@host/vhost?heartbeat=30", ["p%2Fss%23w", "p/ss#w"]),
     ("amqp://user:plain-pass@host/?x=a@b", ["plain-pass"]),
     ("amqp://host:5672/", [])],
)
def test_given_amqp_uri_when_listing_secrets_then_its_password_as_written_and_decoded(
    uri: str, expected: list[str]
) -> None:
    assert url_password(uri) == expected
    assert set(expected) <= set(load_settings(full_env(ELASTICIO_AMQP_URI=uri)).secrets())


def test_given_result_url_with_password_when_listing_service_secrets_then_both_forms() -> None:
    settings = load_service_settings({"ELASTICIO_POST_RESULT_URL": "http://u%40x.com:p%40ss-1@127.0.0.1:1/result",
                                      "ELASTICIO_API_KEY": "k-1"})
    assert settings.secrets() == ["k-1", "p%40ss-1", "p@ss-1"]


def test_given_loaded_settings_when_assigning_then_frozen() -> None:
    settings = load_settings(full_env())
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.REBOUND_LIMIT = 5  # type: ignore[misc]


def test_given_flow_step_settings_when_reading_amqp_then_every_required_string() -> None:
    amqp = load_settings(full_env()).amqp()
    assert amqp.LISTEN_MESSAGES_ON == "v-listen_messages_on"
    assert amqp.MESSAGE_CRYPTO_IV == "0123456789abcdef"


def test_given_shutdown_hook_settings_when_reading_amqp_then_missing_ones_named() -> None:
    env = {k: v for k, v in full_env().items() if k[len("ELASTICIO_"):] in REQUIRED_ALWAYS}
    env["ELASTICIO_HOOK_SHUTDOWN"] = "1"
    with pytest.raises(SettingsError) as info:
        load_settings(env).amqp()
    assert info.value.problems == [f"ELASTICIO_{k} is missing" for k in REQUIRED_FOR_AMQP]


@pytest.mark.parametrize(
    "attempts, delay, expected",
    [(None, None, (1, 100)), ("4", "250", (4, 250)), ("10abc", "0", (10, 0)), ("0", "-5", (1, 100)),
     ("abc", "x", (1, 100))],
)
def test_given_service_retry_text_when_loading_service_settings_then_parse_int_without_default(
    attempts: str | None, delay: str | None, expected: tuple[int, int]
) -> None:
    env = {"ELASTICIO_POST_RESULT_URL": "http://127.0.0.1:1/result", "ELASTICIO_API_KEY": "k-1"}
    if attempts is not None:
        env["ELASTICIO_API_REQUEST_RETRY_ATTEMPTS"] = attempts
    if delay is not None:
        env["ELASTICIO_API_REQUEST_RETRY_DELAY"] = delay
    settings = load_service_settings(env)
    assert (settings.API_REQUEST_RETRY_ATTEMPTS, settings.API_REQUEST_RETRY_DELAY) == expected
    assert settings.CFG is None and settings.COMPONENT_PATH == ""
    assert settings.secrets() == ["k-1"]
