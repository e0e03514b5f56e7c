"""Transport edges found by reviews: an attempt that never left is not "may have been processed", the
signer is shared safely across threads at midnight UTC, a busy EC2 instance metadata service during an
advisory refresh keeps the credentials that are still valid, and a reply that trickles in cannot hold a call
beyond the attempt's total time limit, directly or through a TLS tunnel of a forward proxy."""

from __future__ import annotations

import datetime as real
import json
import socket
import ssl
import threading
import time
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests_aws4auth.aws4auth as a4
from metering_emulator.testing import EmulatorServer

import lib.credentials
import verifyCredentials
from lib.client import MeteringClient, Settings
from lib.errors import MeteringError
from lib.operations import OPERATIONS
from lib.resilience import Backoff, Pacer
from spec.connector.builders import REG_TOKEN
from spec.connector.scripted import Canned, ScriptedServer
from spec.support.identity import WORKLOAD_ENV_NAMES, identity_fixtures, workload_env
from spec.support.ports import free_port
from spec.support.sockets import LoopbackServer, relay
from spec.support.tls import self_signed, server_context

KEYS = ("AKIAEXAMPLE000000000", "secret/Example+Key0000000000000000000000")
EXPIRED = b'{"__type":"ExpiredTokenException","message":"Registration token is expired"}'


def test_given_an_attempt_refused_at_connect_then_the_error_does_not_say_aws_may_have_processed_it() -> None:
    """Nothing was sent (connection refused): the retry's ExpiredTokenException is not blamed on it."""
    port = free_port()
    started: list[ScriptedServer] = []

    def sleep(_seconds: float) -> None:  # the endpoint comes up during the backoff after attempt 1
        if not started:
            server = ScriptedServer([Canned(400, EXPIRED, {"x-amzn-RequestId": "rid-expired"})], port=port)
            started.append(server.__enter__())

    client = MeteringClient(Settings.create(*KEYS, endpoint_url=f"http://127.0.0.1:{port}"),
                            backoff=Backoff(max_attempts=3), pacer_for=lambda op: Pacer(1000), sleep=sleep)
    try:
        with pytest.raises(MeteringError) as raised:
            client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": "tok"})
    finally:
        for server in started:
            server.__exit__(None, None, None)
    err = raised.value
    assert err.code == "ExpiredTokenException" and len(started[0].requests) == 1
    assert err.unanswered == [] and "got no answer" not in str(err)
    assert "unansweredAttempts" not in err.error_details


DAY1 = real.datetime(2026, 5, 31, 23, 59, 59, 999000, tzinfo=real.UTC)
DAY2 = real.datetime(2026, 6, 1, 0, 0, 0, 1000, tzinfo=real.UTC)


def test_given_two_threads_signing_across_midnight_utc_then_each_signature_scope_matches_its_date(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The signer swaps its key in place when the date changes: a thread that read 23:59:59 must not sign
    with the key another thread switched to the next day (AWS refuses it: InvalidSignatureException)."""
    now_of: dict[int, real.datetime] = {}

    class Clock(real.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
            return now_of.get(threading.get_ident(), DAY1)

    monkeypatch.setattr(a4, "datetime", types.SimpleNamespace(datetime=Clock, timezone=real.timezone,
                                                              date=real.date))
    client = MeteringClient(Settings.create(*KEYS, endpoint_url="http://127.0.0.1:9"),
                            backoff=Backoff(max_attempts=1), pacer_for=lambda op: Pacer(1000))
    client._prepare(b"{}", {"X-Amz-Target": "x"})  # the key is on day 1
    a_paused, b_started = threading.Event(), threading.Event()
    original = a4.AWS4Auth.get_canonical_headers

    def slow(cls: Any, req: Any, include: Any = None) -> Any:  # A is descheduled between its date and its signature
        if threading.current_thread().name == "A":
            a_paused.set()
            b_started.wait(1)
        return original(req, include)

    monkeypatch.setattr(a4.AWS4Auth, "get_canonical_headers", classmethod(slow))
    signed: dict[str, dict[str, str]] = {}

    def sign(name: str, when: real.datetime) -> None:
        now_of[threading.get_ident()] = when
        if name == "B":
            a_paused.wait(5)
            b_started.set()
        signed[name] = client._prepare(b"{}", {"X-Amz-Target": "x"}).headers

    threads = [threading.Thread(target=sign, args=("A", DAY1), name="A"),
               threading.Thread(target=sign, args=("B", DAY2), name="B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    for name in ("A", "B"):
        headers = signed[name]
        scope_day = headers["Authorization"].split("Credential=")[1].split("/")[1]
        assert scope_day == headers["x-amz-date"][:8], (name, headers["x-amz-date"], scope_day)


def _workload_client(endpoint_url: str, attempts: int = 2) -> MeteringClient:
    """A client in the Workload identity mode, retrying at once (no sleep), unpaced."""
    settings = Settings.from_cfg({"authMode": "workloadIdentity", "region": "us-east-1",
                                  "endpointUrl": endpoint_url})
    return MeteringClient(settings, backoff=Backoff(max_attempts=attempts), sleep=lambda _s: None,
                          pacer_for=lambda op: Pacer(1000))


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, metering_emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    """A container on EC2: the emulator's instance metadata service hands out the instance role's sessions."""
    metering_emulator.admin.load_fixtures(identity_fixtures())
    metering_emulator.admin.set_config(quotas=False)
    for name in WORKLOAD_ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    for name, value in workload_env("ec2", metering_emulator.url, tmp_path).items():
        monkeypatch.setenv(name, value)
    lib.credentials.clear_cache()
    yield metering_emulator
    lib.credentials.clear_cache()


def test_given_a_busy_instance_metadata_service_in_the_advisory_window_then_the_valid_credentials_are_kept(
        ec2: EmulatorServer) -> None:
    client = _workload_client(ec2.url)
    op = OPERATIONS["resolveCustomer"]
    client.call(op, {"RegistrationToken": REG_TOKEN})
    assert ec2.admin.call("GET", "sts/sessions")["issued"] == {"InstanceMetadata": 1}
    creds = client._credentials._current  # type: ignore[union-attr]
    creds._advisory_refresh_timeout = 10 * 3600  # the 1-hour session is now in its advisory window
    creds._mandatory_refresh_timeout = 60  # and far from the mandatory one
    ec2.admin.add_fault(type="html503", operations=["InstanceMetadata"])
    assert client.call(op, {"RegistrationToken": REG_TOKEN}).request_id  # signed with the kept ones
    assert ec2.admin.faults()[0]["fired"] >= 1  # the refresh was tried, and found the service busy
    creds._mandatory_refresh_timeout = 10 * 3600  # now a mandatory refresh: retryable, not dropped
    with pytest.raises(MeteringError) as raised:
        client.call(op, {"RegistrationToken": REG_TOKEN})
    assert raised.value.retryable and "instance metadata service" in raised.value.aws_message
    ec2.admin.clear_faults()
    assert client.call(op, {"RegistrationToken": REG_TOKEN}).request_id
    assert ec2.admin.call("GET", "sts/sessions")["issued"] == {"InstanceMetadata": 2}  # refreshed once it could


class _TricklingServer(LoopbackServer):
    """Reads one request, then answers a 200 status line and one byte every ``every`` seconds until closed
    (each read returns well within the read timeout): of a header line that never ends (``phase="headers"``)
    or, after complete headers, of a body announced as 100,000 bytes (``phase="body"``). ``phase="none"``
    answers at once and completely. With a ``context``, the connection is TLS."""

    def __init__(self, phase: str, every: float = 0.1, context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.phase, self.every, self.context = phase, every, context
        self.stop = threading.Event()
        self.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        if self.context is not None:
            conn = self.context.wrap_socket(conn, server_side=True)
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            if self.phase == "none":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                             b"x-amzn-RequestId: rid-whole\r\nContent-Length: 26\r\n\r\n"
                             b'{"MeteringRecordId":"r-1"}')
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nx-amzn-Padding: " if self.phase == "headers" else
                         b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\n"
                         b"x-amzn-RequestId: rid-slow\r\nContent-Length: 100000\r\n\r\n")
            sent = 0
            try:
                while sent < 600 and not self.stop.wait(self.every):  # bounded: 60 s at most
                    conn.sendall(b"a" if self.phase == "headers" else b" ")
                    sent += 1
            except OSError:
                pass  # the client hung up: what the test expects

    def close(self) -> None:
        self.stop.set()
        super().close()


def _call_bounded(client: MeteringClient, wait: float) -> Any:
    """One Meter Usage call on a worker thread: its reply or its MeteringError; fails if it is still running
    after ``wait`` seconds (the thread is a daemon: a hung read cannot hold the test run)."""
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(client.call(OPERATIONS["meterUsage"], {"ProductCode": "p"}))
        except MeteringError as err:
            outcome.append(err)

    worker = threading.Thread(target=call, daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(wait)
    assert not worker.is_alive(), f"still reading the reply after {time.monotonic() - started:.1f} s"
    return outcome[0]


def _call_with_a_short_limit(endpoint_url: str, *servers: LoopbackServer) -> tuple[Any, float]:
    """One attempt of a call with a 1.5 s limit in all (connect 1 s + read 0.5 s): its reply or MeteringError,
    and the seconds it took; then the client and ``servers`` are closed."""
    client = MeteringClient(Settings.create(*KEYS, endpoint_url=endpoint_url), timeout=(1.0, 0.5),
                            backoff=Backoff(max_attempts=1), pacer_for=lambda op: Pacer(1000))
    started = time.monotonic()
    try:
        return _call_bounded(client, 8.0), time.monotonic() - started
    finally:
        for server in servers:
            server.close()
        client.close()


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_given_a_reply_that_trickles_in_then_the_attempt_ends_at_its_total_time_limit(phase: str) -> None:
    server = _TricklingServer(phase)
    err, took = _call_with_a_short_limit(server.url, server)
    assert isinstance(err, MeteringError) and err.retryable and err.code == "ConnectionError", err
    assert took < 5.0  # the 1.5 s limit (connect + read timeout), plus a read at most


class _TunnellingProxy(LoopbackServer):
    """A forward proxy that answers one ``CONNECT <host>:<port>`` by tunnelling to ``target`` on loopback
    (whatever the host named: the client never resolves it), then relays bytes both ways until either side
    closes (bounded: 60 s)."""

    def __init__(self, target: int) -> None:
        super().__init__()
        self.target = target
        self.requested: list[bytes] = []
        self.start()

    def _serve(self) -> None:
        self.listener.settimeout(10)
        client, _ = self.listener.accept()
        with client, socket.create_connection(("127.0.0.1", self.target), timeout=10) as upstream:
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            self.requested.append(head.split(b"\r\n", 1)[0])
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            relay(client, upstream)


@pytest.mark.parametrize("phase", ["none", "headers", "body"])
def test_given_tls_through_a_connect_proxy_then_the_reply_is_read_and_its_attempt_still_has_a_total_limit(
        phase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline's reader also wraps the replies of connections the proxy manager makes (a TLS tunnel):
    a whole reply arrives intact through the tunnel, and one that trickles in still ends at the limit."""
    host = "metering.proxied.test"
    cert_file, key_file = self_signed(tmp_path, (host,))
    server = _TricklingServer(phase, context=server_context(cert_file, key_file))
    proxy = _TunnellingProxy(int(server.url.rsplit(":", 1)[1]))
    for name in ("NO_PROXY", "no_proxy", "AWS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert_file))
    outcome, took = _call_with_a_short_limit(f"https://{host}", server, proxy)
    assert [line.rsplit(b" ", 1)[0] for line in proxy.requested] == [f"CONNECT {host}:443".encode()]
    if phase == "none":
        assert not isinstance(outcome, MeteringError), outcome
        assert (outcome.data, outcome.request_id) == ({"MeteringRecordId": "r-1"}, "rid-whole")
    else:
        assert isinstance(outcome, MeteringError) and outcome.retryable and outcome.code == "ConnectionError", outcome
        assert took < 5.0  # the 1.5 s limit (connect + read timeout), plus a read at most


def test_given_several_answers_on_one_pooled_connection_then_each_attempt_has_its_own_limit() -> None:
    answers = [Canned(200, b'{"MeteringRecordId":"r%d"}' % i, {"x-amzn-RequestId": f"rid-{i}"}) for i in range(3)]
    with ScriptedServer(answers) as aws:
        client = MeteringClient(Settings.create(*KEYS, endpoint_url=aws.url), timeout=(1.0, 0.5),
                                backoff=Backoff(max_attempts=1), pacer_for=lambda op: Pacer(1000))
        ids = []
        for _ in range(3):
            ids.append(client.call(OPERATIONS["meterUsage"], {"ProductCode": "p"}).data["MeteringRecordId"])
            time.sleep(0.8)  # more than half the limit between calls: a deadline kept across attempts would fire
        client.close()
    assert ids == ["r0", "r1", "r2"]


def test_given_a_busy_instance_metadata_service_at_the_first_lookup_then_it_is_retryable_not_no_identity(
        ec2: EmulatorServer) -> None:
    # botocore finds "no instance role" for a busy service as for a machine without one; failing the message
    # as a configuration error would lose it, where a retry (then a rebound) finds the role
    client = _workload_client(ec2.url)
    op = OPERATIONS["resolveCustomer"]
    ec2.admin.add_fault(type="throttle", operations=["InstanceMetadata"])
    with pytest.raises(MeteringError) as raised:
        client.call(op, {"RegistrationToken": REG_TOKEN})
    assert raised.value.code == "InstanceMetadataServiceBusy" and raised.value.retryable
    assert "answered HTTP 429" in str(raised.value)
    ec2.admin.clear_faults()
    assert client.call(op, {"RegistrationToken": REG_TOKEN}).request_id
    assert ec2.admin.call("GET", "sts/sessions")["issued"] == {"InstanceMetadata": 1}


def test_given_a_busy_instance_metadata_service_when_verifying_then_try_again_later_not_a_broken_identity(
        ec2: EmulatorServer) -> None:
    cfg = {"authMode": "workloadIdentity", "region": "us-east-1", "endpointUrl": ec2.url}
    ec2.admin.add_fault(type="throttle", operations=["InstanceMetadata"])
    busy = verifyCredentials.check(cfg, client=_workload_client(ec2.url, attempts=1))
    assert busy["verified"] is False
    assert busy["reason"].startswith("Could not verify now: InstanceMetadataServiceBusy"), busy
    assert busy["reason"].endswith("try again later."), busy
    ec2.admin.clear_faults()
    assert verifyCredentials.check(cfg, client=_workload_client(ec2.url, attempts=1)) == {"verified": True}


def test_given_an_instance_metadata_service_without_a_role_then_it_is_still_no_workload_identity(
        ec2: EmulatorServer) -> None:
    fixtures = identity_fixtures()
    del fixtures["instanceProfile"]
    ec2.admin.load_fixtures(fixtures)
    client = _workload_client(ec2.url)
    with pytest.raises(MeteringError) as raised:
        client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": REG_TOKEN})
    assert raised.value.code == "NoWorkloadIdentity" and not raised.value.retryable


class _PlainServer:
    """A loopback HTTP server answering every GET/PUT with ``answer(handler)`` = (status, body)."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], tuple[int, bytes]]) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self) -> None:
                outer.paths.append(self.path)
                status, body = answer(self)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = _reply  # noqa: N815

            def log_message(self, *_args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def no_workload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in WORKLOAD_ENV_NAMES + ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY",
                                      "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    lib.credentials.clear_cache()
    yield
    lib.credentials.clear_cache()


def _workload_call_error() -> MeteringError:
    client = _workload_client("http://127.0.0.1:9", attempts=1)
    try:
        with pytest.raises(MeteringError) as raised:
            client.call(OPERATIONS["resolveCustomer"], {"RegistrationToken": REG_TOKEN})
    finally:
        client.close()
    return raised.value


def test_given_an_instance_role_ec2_may_not_assume_then_it_is_no_workload_identity_not_a_busy_service(
        no_workload: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # IMDS answers 200 with an error document (botocore does not retry it): a configuration error
    def answer(handler: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        if handler.command == "PUT":
            return 200, b"imds-token-000000000000"
        if handler.path.rstrip("/").endswith("security-credentials"):
            return 200, b"broken-role"
        return 200, json.dumps({"Code": "AssumeRoleUnauthorizedAccess",
                                "Message": "EC2 cannot assume the role broken-role."}).encode()

    imds = _PlainServer(answer)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url)
    try:
        err = _workload_call_error()
    finally:
        imds.close()
    assert err.code == "NoWorkloadIdentity" and not err.retryable, str(err)


def test_given_a_forward_proxy_that_cannot_reach_the_metadata_service_then_it_is_no_workload_identity(
        no_workload: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's fetcher goes through HTTP_PROXY; the probe must not take the proxy's 503 for a busy service
    proxy = _PlainServer(lambda _h: (503, b"proxy: cannot connect to 169.254.169.254"))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")  # nothing listens there
    try:
        err = _workload_call_error()
    finally:
        proxy.close()
    assert proxy.paths  # botocore's lookups did go through the proxy
    assert err.code == "NoWorkloadIdentity" and not err.retryable, str(err)
