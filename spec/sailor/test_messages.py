"""Headers, error format, rebound math (docs/platform-contract.md §4.6, §6.7, §6.8), routing key, new_message."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from elasticio_sailor import Rebound, new_message
from elasticio_sailor.logs import REDACTOR
from elasticio_sailor.messages import (
    amqp_headers,
    format_error,
    incoming_headers,
    outgoing_headers,
    pop_routing_key,
    rebound_expiration,
    rebound_iteration,
    uuid4,
)

STATIC = {"execId": "exec1", "taskId": "flow1", "workspaceId": "ws1", "containerId": "cont1",
          "userId": "user1", "stepId": "step_2", "compId": "comp1", "function": "emit_async"}


def test_given_platform_headers_when_building_outgoing_then_exactly_the_node_set_in_node_order() -> None:
    incoming = {"messageId": "msg-in-1", "threadId": "thread-1", "stepId": "step_1", "X-EIO-META-Tenant": "T",
                "reply_to": "reply.rk.1", "taskId": "other", "execId": "execX", "someOtherHeader": "dropped"}
    out = outgoing_headers(incoming_headers(incoming), STATIC, {"tenantId": "tenant-7"})
    assert list(out) == ["stepId", "x-eio-meta-tenant", "threadId", "messageId", "parentMessageId", "reply_to",
                         "tenantId", "execId", "taskId", "workspaceId", "containerId", "userId", "compId",
                         "function", "start"]
    assert out["stepId"] == "step_2"
    assert out["x-eio-meta-tenant"] == "T"
    assert out["threadId"] == "thread-1"
    assert out["parentMessageId"] == "msg-in-1"
    assert out["reply_to"] == "reply.rk.1"
    assert out["execId"] == "exec1" and out["taskId"] == "flow1"
    assert uuid.UUID(out["messageId"]).version == 4
    assert isinstance(out["start"], int)


def test_given_two_messages_when_building_outgoing_then_each_gets_its_own_message_id() -> None:
    a = outgoing_headers(incoming_headers({"messageId": "m"}), STATIC, {})
    b = outgoing_headers(incoming_headers({"messageId": "m"}), STATIC, {})
    assert a["messageId"] != b["messageId"]


def test_given_no_thread_id_but_trace_id_when_reading_then_trace_id_is_the_thread() -> None:
    assert incoming_headers({"X-EIO-META-TRACE-ID": "X"})["threadId"] == "X"


def test_given_neither_thread_nor_trace_when_reading_then_a_new_uuid_thread() -> None:
    kept = incoming_headers({})
    assert uuid.UUID(kept["threadId"]).version == 4


def test_given_no_message_id_when_building_amqp_headers_then_absent_values_are_omitted() -> None:
    out = amqp_headers(outgoing_headers(incoming_headers({}), STATIC, {}))
    assert "parentMessageId" not in out
    assert None not in out.values()


def test_given_mixed_case_routing_key_header_when_popping_then_value_returned_and_header_removed() -> None:
    headers: dict[str, Any] = {"X-EIO-Routing-Key": "K", "keep": "me"}
    assert pop_routing_key(headers) == "K"
    assert headers == {"keep": "me"}
    assert pop_routing_key({}) is None


@pytest.mark.parametrize(
    "incoming, iteration, expiration",
    [({}, 1, 15000), ({"reboundIteration": 1}, 2, 30000), ({"reboundIteration": 2}, 3, 60000),
     ({"reboundIteration": "2"}, 1, 15000), ({"reboundIteration": True}, 1, 15000)],
)
def test_given_incoming_iteration_when_rebounding_then_doubling_expiration(
    incoming: dict[str, Any], iteration: int, expiration: int
) -> None:
    assert rebound_iteration(incoming) == iteration
    assert rebound_expiration(iteration, 15000) == expiration


def test_given_exception_with_details_when_formatting_then_node_fields_then_details() -> None:
    class QuotaError(Exception):
        name = "QuotaExceeded"
        error_details: ClassVar[dict[str, str]] = {"code": "Q1", "name": "ignored"}

    try:
        raise QuotaError("no quota")
    except QuotaError as exc:
        err = format_error(exc)
    assert list(err) == ["name", "message", "stack", "code"]
    assert err["name"] == "QuotaExceeded"
    assert err["message"] == "no quota"
    assert "QuotaError: no quota" in err["stack"]
    assert err["code"] == "Q1"


def test_given_plain_exception_when_formatting_then_class_name() -> None:
    assert format_error(ValueError("bad"))["name"] == "ValueError"
    assert format_error(Rebound("later"))["message"] == "later"


def _raised(code: str) -> BaseException:
    try:
        exec(code, {})  # noqa: S102 - fixed snippets that raise the built-in errors under test
    except Exception as exc:  # noqa: BLE001
        return exc
    raise AssertionError(f"{code!r} did not raise")


@pytest.mark.parametrize("code, expected", [("None.get('x')", "AttributeError"), ("undefined_name", "NameError"),
                                            ("import no_such_module_here", "ModuleNotFoundError")])
def test_given_a_builtin_error_with_a_name_attribute_when_formatting_then_its_class_names_it(
        code: str, expected: str) -> None:
    """AttributeError, NameError and ImportError have a ``name`` (the missing attribute, variable or module):
    the error event is named by the class, as Node names a TypeError, not ``get`` or ``undefined_name``."""
    assert format_error(_raised(code))["name"] == expected


@pytest.mark.parametrize(
    "value, expected",
    [("boom", {"name": "Error", "message": "boom", "stack": "Not Available"}),
     ("", {"name": "Error", "message": "Not Available", "stack": "Not Available"}),
     ({"message": "m"}, {"name": "Error", "message": "m", "stack": "Not Available"}),
     ({"message": "m", "name": "N", "stack": "S"}, {"name": "N", "message": "m", "stack": "S"})],
)
def test_given_non_exception_when_formatting_then_node_normalisation(value: Any, expected: dict[str, Any]) -> None:
    assert format_error(value) == expected


MSG_SECRET = "msg-secret/t0k+en"  # registered in the process-wide redactor, as the sailor registers cfg


def test_given_exception_quoting_a_secret_when_formatting_then_message_stack_and_causes_masked() -> None:
    REDACTOR.add_config({"token": MSG_SECRET})

    class ApiFailure(Exception):
        error_details: ClassVar[dict[str, Any]] = {"url": f"https://h/x?t={MSG_SECRET}", "n": 3,
                                                   "nested": [{"auth": MSG_SECRET}]}

    quoted = "msg-secret%2Ft0k%2Ben"
    try:
        try:
            raise ConnectionError(f"cause quoting {{'token': {MSG_SECRET!r}}}")
        except ConnectionError as cause:
            raise ApiFailure(f"GET https://h/x?token={quoted} failed") from cause
    except ApiFailure as exc:
        err = format_error(exc)
    assert list(err) == ["name", "message", "stack", "url", "n", "nested"]  # Node's shape, then details
    assert err["message"] == "GET https://h/x?token=*** failed"
    assert "ConnectionError: cause quoting {'token': '***'}" in err["stack"]
    assert "The above exception was the direct cause" in err["stack"]
    assert "ApiFailure: GET https://h/x?token=*** failed" in err["stack"]
    assert err["url"] == "https://h/x?t=***" and err["n"] == 3 and err["nested"] == [{"auth": "***"}]
    assert MSG_SECRET not in repr(err) and quoted not in repr(err)


@pytest.mark.parametrize(
    "payload, expected",
    [(f"plain {MSG_SECRET}", {"name": "Error", "message": "plain ***", "stack": "Not Available"}),
     ({"message": f"m {MSG_SECRET}", "name": "N", "stack": f"at {MSG_SECRET}"},
      {"name": "N", "message": "m ***", "stack": "at ***"}),
     (Rebound(f"later: {MSG_SECRET}"), None)],
)
def test_given_non_exception_or_rebound_quoting_a_secret_when_formatting_then_masked(
    payload: Any, expected: dict[str, Any] | None
) -> None:
    REDACTOR.add([MSG_SECRET])
    err = format_error(payload)
    if expected is not None:
        assert err == expected
    else:  # the rebound reason header is format_error(payload)["message"]
        assert err["message"] == "later: ***"
    assert MSG_SECRET not in repr(err)


def test_given_ordinary_cfg_values_when_formatting_an_error_then_kept_while_logs_mask_them() -> None:
    # the logs mask every 8+ character cfg string and values under keys like "authType" as a precaution;
    # an emitted error keeps them (a field name, an object type: what the next step reads), masking only
    # values that are secrets beyond doubt
    REDACTOR.add_config({"authType": "basic", "keyField": "emailAddress", "objectType": "contacts-v3",
                         "apiKey": "ak-ORDINARY-SECRET"})
    exc = ValueError("Field emailAddress is required to upsert contacts-v3 via basic auth (key ak-ORDINARY-SECRET)")
    err = format_error(exc)
    assert err["message"] == "Field emailAddress is required to upsert contacts-v3 via basic auth (key ***)"
    assert REDACTOR("emailAddress contacts-v3 ak-ORDINARY-SECRET") == "*** *** ***"


def test_given_body_when_new_message_then_node_shape_with_fresh_id() -> None:
    msg = new_message({"a": 1}, headers={"h": "v"})
    assert list(msg) == ["id", "body", "headers", "attachments", "metadata"]
    assert msg["body"] == {"a": 1} and msg["headers"] == {"h": "v"}
    assert msg["attachments"] == {} and msg["metadata"] == {}
    assert new_message({})["id"] != msg["id"]


def test_given_many_ids_when_generating_then_distinct_version_4_rfc_uuids_in_canonical_text() -> None:
    ids = [uuid4() for _ in range(1000)]  # several refills of the 256-id random pool
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
