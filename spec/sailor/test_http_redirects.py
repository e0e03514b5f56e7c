"""Redirects and broken answers of the platform API client (``api.py``) and the service result POST.

Node 2.7.8 (axios with follow-redirects) follows these redirects but keeps the credentials only on a
same-origin one; here a same-origin redirect is followed with the ``Authorization`` header and a redirect
to another origin is refused, so the basic auth (and the request body) never reaches another host.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest
from elasticio_sailor.api import ApiClient, ApiError, same_site
from elasticio_sailor.service import post_result
from elasticio_sailor.settings import ServiceSettings, load_service_settings

from spec.sailor.scripted_http import Answer, ScriptedServer, redirect, reply, truncated

BASIC = "Basic " + base64.b64encode(b"u@example.com:api-key-secret").decode()
OTHER_HOSTS = {"another host": "127.0.0.2", "another port": "127.0.0.1"}


def api(srv: ScriptedServer) -> ApiClient:
    return ApiClient(srv.url, "u@example.com", "api-key-secret", attempts=3, delay_s=0)


def routes(table: dict[str, Answer]) -> Answer:
    def answer(h: BaseHTTPRequestHandler) -> None:
        table[h.path](h)
    return answer


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_given_a_same_origin_redirect_then_the_api_client_follows_it_with_its_credentials(status: int) -> None:
    with ScriptedServer(reply(200)) as srv:
        srv.answer = routes({"/v1/tasks/F/steps/S": redirect(status, "/moved"),
                             "/moved": reply(200, b'{"id":"S"}', {"Content-Type": "application/json"})})
        assert api(srv).get_step("F", "S") == {"id": "S"}
        assert [r.path for r in srv.requests] == ["/v1/tasks/F/steps/S", "/moved"]
        assert all(r.headers["authorization"] == BASIC for r in srv.requests)


@pytest.mark.parametrize("other", list(OTHER_HOSTS))
@pytest.mark.parametrize(("status", "call"), [
    (302, lambda c: c.get_step("F", "S")),
    (307, lambda c: c.update_keys("acc", {"refresh_token": "rt-secret"})),
])
def test_given_a_redirect_to_another_origin_then_refused_and_the_credentials_go_nowhere_else(
    other: str, status: int, call: Callable[[ApiClient], object],
) -> None:
    with ScriptedServer(reply(200, b"{}"), host=OTHER_HOSTS[other]) as elsewhere, \
            ScriptedServer(reply(200)) as srv:
        srv.answer = redirect(status, lambda: f"{elsewhere.url}/steal")
        with pytest.raises(ApiError, match=f"answered {status}: redirect to another origin refused$") as info:
            call(api(srv))
        assert info.value.status == status
        assert elsewhere.requests == [], "the other origin never got the basic auth (nor the keys)"
        assert len(srv.requests) == 1, "a refused redirect is a client error: not retried"
        assert "api-key-secret" not in str(info.value) and elsewhere.url not in str(info.value)


def test_given_a_truncated_answer_then_the_api_client_retries_and_fails_with_an_api_error() -> None:
    with ScriptedServer(truncated()) as srv:
        with pytest.raises(ApiError, match="failed: IncompleteRead"):
            api(srv).get_step("F", "S")
        assert len(srv.requests) == 3
    with ScriptedServer(truncated(404)) as srv:  # the error body itself is cut short
        with pytest.raises(ApiError, match="answered 404") as info:
            api(srv).get_step("F", "S")
        assert info.value.status == 404 and len(srv.requests) == 1


def service_settings() -> ServiceSettings:
    return load_service_settings({"ELASTICIO_API_REQUEST_RETRY_ATTEMPTS": "3",
                                  "ELASTICIO_API_REQUEST_RETRY_DELAY": "0"})


@pytest.mark.parametrize("other", list(OTHER_HOSTS))
def test_given_the_result_post_redirected_to_another_origin_then_refused_without_credentials_sent(
    other: str,
) -> None:
    with ScriptedServer(reply(200), host=OTHER_HOSTS[other]) as elsewhere, ScriptedServer(reply(200)) as srv:
        srv.answer = redirect(302, lambda: f"{elsewhere.url}/steal")
        url = srv.url.replace("http://", "http://user%40x.com:p%40ss@") + "/result"
        assert post_result(url, {"status": "success", "data": {}}, service_settings()) == 302
        assert elsewhere.requests == []
        assert len(srv.requests) == 1


def test_given_the_result_post_redirected_within_its_origin_then_followed_with_the_basic_auth() -> None:
    with ScriptedServer(reply(200)) as srv:
        srv.answer = routes({"/result": redirect(302, "/result2"), "/result2": reply(200)})
        url = srv.url.replace("http://", "http://user%40x.com:p%40ss@") + "/result"
        assert post_result(url, {"status": "success", "data": {}}, service_settings()) == 200
        auth = "Basic " + base64.b64encode(b"user@x.com:p@ss").decode()
        assert [(r.path, r.headers.get("authorization")) for r in srv.requests] == [
            ("/result", auth), ("/result2", auth)]


@pytest.mark.parametrize(("old", "new", "kept"), [
    ("https://api.example.com/v1", "https://api.example.com/v2", True),
    ("http://api.example.com/v1", "https://api.example.com/v1", True),  # a load balancer forcing HTTPS
    ("http://api.example.com:80/v1", "https://api.example.com:443/v1", True),
    ("https://api.example.com/v1", "http://api.example.com/v1", False),  # never down to plain HTTP
    ("https://api.example.com/v1", "https://other.example.com/v1", False),
    ("https://api.example.com/v1", "https://api.example.com:8443/v1", False),
    ("http://api.example.com:8080/v1", "https://api.example.com/v1", False),  # another port
    ("http://api.example.com:8080/v1", "https://api.example.com:8080/v1", True),
])
def test_given_a_redirect_then_credentials_go_only_to_the_same_host_never_downgraded(
        old: str, new: str, kept: bool) -> None:
    assert same_site(old, new) is kept
