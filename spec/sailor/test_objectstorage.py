"""The object-storage client (``elasticio_sailor.objectstorage``) against the test server over real HTTP."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from elasticio_sailor.crypto import MessageCipher, dumps
from elasticio_sailor.logs import Redactor
from elasticio_sailor.objectstorage import (
    OBJECT_ID_HEADER,
    FetchError,
    ObjectStorage,
    ObjectStorageError,
    UploadError,
    backoff_ms,
    fetch_body,
    lighten,
    objects_url,
    retry_options,
)
from elasticio_sailor.settings import load_settings

from spec.sailor.scripted_http import Answer, ScriptedServer, garbled, redirect, reply, stalled, truncated
from spec.support.objectstorage import ObjectStorageServer

CIPHER = MessageCipher("pässwörd-2", "0123456789abcdef")


@pytest.fixture
def server() -> Iterator[ObjectStorageServer]:
    with ObjectStorageServer("tok-" + secrets.token_hex(16), prefix="/maester/") as srv:
        yield srv


def client(server: ObjectStorageServer, **kw: object) -> tuple[ObjectStorage, list[float]]:
    sleeps: list[float] = []
    opts: dict[str, object] = {"flow_id": "F", "step_id": "S", "sleep": sleeps.append}
    opts.update(kw)
    return ObjectStorage(server.url, server.token, CIPHER, **opts), sleeps  # type: ignore[arg-type]


@pytest.mark.parametrize("base", ["http://h/maester", "http://h/maester/", "http://h/maester//"])
def test_given_a_base_with_a_prefix_then_objects_is_appended_not_substituted(base: str) -> None:
    assert objects_url(base) == "http://h/maester/objects"


@pytest.mark.parametrize(("env", "expected"), [
    ({}, (2, 10000)),
    ({"REQUEST_MAX_RETRY": "0"}, (2, 10000)),  # `0 || default` in maester-client
    ({"REQUEST_MAX_RETRY": "4", "REQUEST_TIMEOUT": "500"}, (4, 500)),
    ({"REQUEST_MAX_RETRY": "5", "REQUEST_TIMEOUT": "499"}, (2, 10000)),  # out of range → default
    ({"REQUEST_MAX_RETRY": "3x", "REQUEST_TIMEOUT": "20000ms"}, (3, 20000)),  # parseInt prefix
    ({"REQUEST_MAX_RETRY": "abc", "REQUEST_TIMEOUT": "20001"}, (2, 10000)),
    ({"REQUEST_MAX_RETRY": "-1"}, (2, 10000)),
])
def test_given_env_then_retry_options_as_maester_client(env: dict[str, str], expected: tuple[int, int]) -> None:
    assert retry_options(env) == expected


def test_given_retries_then_backoff_doubles_from_100ms_with_at_most_20_percent_jitter() -> None:
    assert [backoff_ms(n, lambda: 0.0) for n in range(3)] == [100, 200, 400]
    assert [backoff_ms(n, lambda: 1.0) for n in range(3)] == [120, 240, 480]
    assert backoff_ms(10, lambda: 1.0) == 15000


def test_given_a_body_when_added_then_the_raw_ciphertext_is_stored_and_read_back(
    server: ObjectStorageServer,
) -> None:
    storage, _ = client(server)
    body = {"a": "Größe ✓", "n": [1, 2.5, None]}
    object_id = storage.add(body)
    assert server.objects[object_id].data == CIPHER.encrypt_bytes(dumps(body))
    assert storage.get(object_id) == body
    post, get = server.requests
    assert (post.method, post.path, get.path) == ("POST", "/maester/objects", f"/maester/objects/{object_id}")
    assert post.headers["authorization"] == f"Bearer {server.token}"
    assert post.headers["content-type"] == "application/json"
    assert post.headers["x-request-id"] == get.headers["x-request-id"] == "f:F;s:S;m:"


def test_given_5xx_then_retried_with_backoff_and_a_final_error(server: ObjectStorageServer) -> None:
    storage, sleeps = client(server, retries=2)
    object_id = server.put(CIPHER.encrypt_bytes(b"{}"))
    server.fail_next(5, 503)
    with pytest.raises(ObjectStorageError, match=r"GET /objects/.* answered 503") as info:
        storage.get(object_id)
    assert info.value.status == 503
    assert len(server.requests) == 3
    assert 0.1 <= sleeps[0] <= 0.12 and 0.2 <= sleeps[1] <= 0.24


def test_given_5xx_then_success_then_the_retry_returns_the_body(server: ObjectStorageServer) -> None:
    storage, sleeps = client(server, retries=2)
    object_id = server.put(CIPHER.encrypt_bytes(b'{"ok":1}'))
    server.fail_next(1, 500)
    assert storage.get(object_id) == {"ok": 1}
    assert len(server.requests) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_given_4xx_then_no_retry(server: ObjectStorageServer, status: int) -> None:
    storage, sleeps = client(server, retries=4)
    server.fail_next(1, status)
    with pytest.raises(ObjectStorageError, match=f"answered {status}"):
        storage.get("x")
    assert len(server.requests) == 1 and sleeps == []


def test_given_a_slow_server_then_each_request_times_out_and_is_retried(server: ObjectStorageServer) -> None:
    storage, _ = client(server, retries=1, timeout_ms=500)
    object_id = server.put(CIPHER.encrypt_bytes(b"{}"))
    server.slow_next(2, 2.0)
    with pytest.raises(ObjectStorageError, match="failed: .*timed out"):
        storage.get(object_id)
    assert len(server.requests) == 2


def test_given_a_dropped_connection_or_no_server_then_network_errors_are_retried(
    server: ObjectStorageServer,
) -> None:
    storage, _ = client(server, retries=1)
    server.drop_next(2)
    with pytest.raises(ObjectStorageError, match="failed"):
        storage.add({"a": 1})
    assert len(server.requests) == 2
    down = ObjectStorage("http://127.0.0.1:9", "t", CIPHER, retries=2, sleep=lambda s: None)
    with pytest.raises(ObjectStorageError, match="POST /objects failed"):
        down.add({"a": 1})


def test_given_a_stored_object_that_is_not_ours_then_a_clear_error(server: ObjectStorageServer) -> None:
    storage, _ = client(server)
    with pytest.raises(ObjectStorageError, match="cannot be decrypted"):
        storage.get(server.put(b"plain text, not ciphertext"))
    with pytest.raises(ObjectStorageError, match="not JSON"):
        storage.get(server.put(CIPHER.encrypt_bytes(b"not json")))


def test_given_the_token_then_it_is_a_secret_never_in_errors_and_masked_in_logs(
    server: ObjectStorageServer,
) -> None:
    storage, _ = client(server)
    errors = []
    server.fail_next(1, 401)
    for call in (lambda: storage.get("x"), lambda: storage.add({})):
        try:
            call()
        except ObjectStorageError as exc:
            errors.append(str(exc))
    server.fail_next(3, 500)
    try:
        storage.get("y")
    except ObjectStorageError as exc:
        errors.append(str(exc))
    assert len(errors) == 2 and all(server.token not in e for e in errors)
    env = {f"ELASTICIO_{k}": "x" for k in ("FLOW_ID", "EXEC_ID", "STEP_ID", "CONTAINER_ID", "WORKSPACE_ID",
                                           "USER_ID", "COMP_ID", "FUNCTION", "API_URI", "API_USERNAME",
                                           "API_KEY")}
    env["ELASTICIO_OBJECT_STORAGE_TOKEN"] = server.token
    settings = load_settings(env, amqp=False)
    redactor = Redactor()
    redactor.add(settings.secrets())
    assert server.token not in redactor(f"Authorization: Bearer {server.token}")


# ---------------------------------------------------------------------- answers that break mid-way


def scripted(srv: ScriptedServer, **kw: object) -> tuple[ObjectStorage, list[float]]:
    sleeps: list[float] = []
    opts: dict[str, object] = {"retries": 2, "sleep": sleeps.append}
    opts.update(kw)
    return ObjectStorage(srv.url + "/maester", "tok-secret-123", CIPHER, **opts), sleeps  # type: ignore[arg-type]


BROKEN: dict[str, Answer] = {
    "truncated body": truncated(),  # http.client.IncompleteRead from resp.read()
    "garbled status line": garbled,  # http.client.BadStatusLine, not an OSError
    "stalled 5xx body": stalled(503, 1.5),  # reading the error body times out: still a retried 503
}


@pytest.mark.parametrize("answer", list(BROKEN))
def test_given_a_broken_answer_when_fetching_then_retried_and_finally_a_fetch_error(answer: str) -> None:
    with ScriptedServer(BROKEN[answer]) as srv:
        storage, sleeps = scripted(srv, timeout_ms=500)
        with pytest.raises(FetchError, match="Failed to get message body with id=obj1") as info:
            fetch_body(storage, {"body": {}, "headers": {OBJECT_ID_HEADER: "obj1"}})
        assert len(srv.requests) == 3 and len(sleeps) == 2, "1 + REQUEST_MAX_RETRY attempts"
        assert isinstance(info.value.cause, ObjectStorageError)
        assert str(info.value.cause).startswith("GET /objects/obj1 ")
        assert "tok-secret-123" not in str(info.value.cause)


@pytest.mark.parametrize("answer", ["truncated body", "garbled status line"])
def test_given_a_broken_answer_when_uploading_then_retried_and_finally_an_upload_error(answer: str) -> None:
    with ScriptedServer(BROKEN[answer]) as srv:
        storage, _ = scripted(srv, retries=1)
        with pytest.raises(ObjectStorageError, match="POST /objects failed"):
            storage.add({"a": 1})
        assert len(srv.requests) == 2
        data = {"body": {"big": "x" * 50}, "headers": {}}
        with pytest.raises(UploadError):
            lighten(storage, data, {}, threshold=10)
        assert data["body"] == {"big": "x" * 50}, "nothing replaced when the upload failed"


def test_given_a_4xx_whose_body_cannot_be_read_then_the_status_still_fails_at_once() -> None:
    with ScriptedServer(stalled(404, 1.5)) as srv:
        storage, sleeps = scripted(srv, retries=4, timeout_ms=500)
        with pytest.raises(ObjectStorageError, match=r"^GET /objects/x answered 404$") as info:
            storage.get("x")
        assert info.value.status == 404 and len(srv.requests) == 1 and sleeps == []


# ---------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("where", ["another host", "the same origin"])
def test_given_a_redirect_then_not_followed_and_the_token_goes_nowhere_else(status: int, where: str) -> None:
    """maester-client sets ``maxRedirects: 0``: a 3xx answer fails at once, as a 4xx does."""
    with ScriptedServer(reply(200, b"stolen"), host="127.0.0.2") as other, \
            ScriptedServer(reply(200, CIPHER.encrypt_bytes(b"{}"))) as store:
        target = f"{other.url}/steal" if where == "another host" else f"{store.url}/maester/objects/elsewhere"
        store.answer = redirect(status, target)
        storage, sleeps = scripted(store, retries=4)
        for call in (lambda: storage.get("obj1"), lambda: storage.add({"a": 1})):
            with pytest.raises(ObjectStorageError, match=f"answered {status}: redirect refused$") as info:
                call()
            assert info.value.status == status
            assert "tok-secret-123" not in str(info.value) and "127.0.0.2" not in str(info.value)
        assert other.requests == [], "the other host never received a request (nor the bearer token)"
        assert [r.method for r in store.requests] == ["GET", "POST"], "not retried, not followed"
        assert sleeps == []
