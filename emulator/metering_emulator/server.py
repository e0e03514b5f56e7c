"""HTTP: a threaded HTTP/1.1 (keep-alive) server that speaks AWS JSON 1.1 on ``POST /`` and the admin
API under ``/_emulator/``. Request flow for the service: route -> target -> content type -> size ->
SigV4 -> faults -> quota -> JSON -> shape -> operation (under the state lock)."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import admin, model, sigv4, sts, workload
from .catalogue import OPERATIONS, Operation
from .errors import AwsError, serialization_error
from .state import State

log = logging.getLogger("metering_emulator")

TARGET_PREFIX = "AWSMPMeteringService."
CONTENT_TYPE = "application/x-amz-json-1.1"
# The model: "each request must be less than 1 MB in size". Read as 1,000,000 bytes, the stricter reading, so
# a request this emulator takes is under AWS's limit however AWS counts a megabyte.
MAX_BODY = 1_000_000
MAX_READ = 8 * MAX_BODY  # larger bodies are refused without being read (connection closed)


_HTML_503 = (b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
             b"<h1>503 Service Temporarily Unavailable</h1></center></body></html>")

# Non-JSON answers (fault type, status, body, content type): a load balancer's, in front of the service
_GATEWAY_ERRORS = (("html503", 503, _HTML_503, "text/html"), ("empty502", 502, b"", ""))
# and a busy workload endpoint's: plain HTTP answers, no AWS error shape
_WORKLOAD_BUSY = (("throttle", 429, b"Too Many Requests", "text/plain"),
                  ("error500", 500, b"Internal Server Error", "text/plain"), *_GATEWAY_ERRORS)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the emulator State; daemon threads so shutdown never hangs."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: State) -> None:
        self.state = state
        super().__init__(address, RequestHandler)


class RequestHandler(BaseHTTPRequestHandler):
    """One connection; handles any number of keep-alive requests."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "metering-emulator/0.1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120

    # -- plumbing -------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet stdlib access logging; our own log line (without headers) is written per request."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP (bad request line, unsupported method, huge headers) also gets an AWS error."""
        error_type = "UnknownOperationException" if code in (404, 405, 501) else "SerializationException"
        self.close_connection = True
        self._reply(code, {"__type": error_type, "message": message or "Bad request"}, str(uuid.uuid4()),
                    error_type)

    def _reply(self, status: int, payload: Any, request_id: str, error_type: str | None = None,
               content_type: str = CONTENT_TYPE) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('Error',))[0]}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"x-amzn-RequestId: {request_id}",
            f"Date: {self.date_time_string()}",
        ]
        if error_type is not None:
            lines.append(f"x-amzn-ErrorType: {error_type}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        send_body = getattr(self, "command", None) != "HEAD"
        try:
            self.wfile.write(head + body if send_body else head)
        except OSError:
            self.close_connection = True
        log.info('%s "%s %s" %s %s %s', self.client_address[0], getattr(self, "command", "-"),
                 getattr(self, "path", "-"), status, error_type or "-", request_id)

    def _reply_raw(self, status: int, body: bytes, request_id: str, content_type: str) -> None:
        """A non-JSON reply, as a load balancer in front of the service would send it."""
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('Error',))[0]}", f"Content-Length: {len(body)}",
                 f"x-amzn-RequestId: {request_id}", f"Date: {self.date_time_string()}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True
        log.info('%s "%s %s" %s (injected) %s', self.client_address[0], self.command, self.path.partition("?")[0],
                 status, request_id)

    def _reply_plain(self, status: int, body: bytes, request_id: str, content_type: str) -> None:
        """A non-JSON reply of the STS and workload endpoints (XML, text or JSON already encoded)."""
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('Error',))[0]}", f"Content-Length: {len(body)}",
                 f"x-amzn-RequestId: {request_id}", f"Date: {self.date_time_string()}",
                 f"Content-Type: {content_type}"]
        try:
            self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True
        log.info('%s "%s %s" %s %s', self.client_address[0], self.command, self.path.partition("?")[0], status,
                 request_id)

    def _read_body(self) -> bytes:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise AwsError("SerializationException", "chunked request bodies are not supported; send "
                               "Content-Length", 411)
            return b""
        try:
            length = int(raw_length.strip())
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise serialization_error("Content-Length is not a valid length")
        if length > MAX_READ:
            self.close_connection = True
            raise AwsError("ValidationException", "Request size exceeds the 1 MB limit.", 413)
        return self.rfile.read(length)

    def _headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            out[key] = f"{out[key]},{value}" if key in out else value
        return out

    # -- dispatch -------------------------------------------------------------------------------

    def _handle(self) -> None:
        request_id = str(uuid.uuid4())
        path, _, query = self.path.partition("?")
        try:
            body = self._read_body()
        except AwsError as err:
            self._reply(err.status, err.body(), request_id, err.error_type)
            return
        if path == "/_emulator" or path.startswith(admin.PREFIX):
            self._admin(path, query, body, request_id)
        elif workload.handles(path):  # IMDSv2 and the ECS container-credentials endpoint (workload.py)
            self._workload(path, request_id)
        elif sts.is_sts_request(self.command, path, self._headers()):  # STS Query protocol (sts.py)
            status, payload = sts.handle(self.server.state, self._headers(), body, request_id, path, query)
            self._reply_plain(status, payload, request_id, "text/xml")
        else:
            self._service(path, query, body, request_id)

    def _workload(self, path: str, request_id: str) -> None:
        """A workload-identity endpoint, busy when a fault names it (catalogue.py ``WORKLOAD_FAULTS``)."""
        state = self.server.state
        endpoint = workload.endpoint_of(path)
        if self._dropped_or_delayed(state, endpoint, request_id):
            return
        for kind, status, raw, media in _WORKLOAD_BUSY:
            if state.faults.fire(kind, endpoint) is not None:
                self._reply_raw(status, raw, request_id, media)
                return
        status, payload, media = workload.handle(state, self.command, path, self._headers())
        self._reply_plain(status, payload, request_id, media)

    def _admin(self, path: str, query: str, body: bytes, request_id: str) -> None:
        try:
            status, payload = admin.handle(self.server.state, self.command, path, query, body)
        except AwsError as err:
            self._reply(err.status, err.body(), request_id, err.error_type)
            return
        except Exception:  # a bug must still produce a well-formed reply
            log.exception("admin request failed")
            bug = AwsError("InternalServiceErrorException", "internal error in the emulator admin API")
            self._reply(bug.status, bug.body(), request_id, bug.error_type)
            return
        self._reply(status, payload, request_id, content_type="application/json")

    def _service(self, path: str, query: str, body: bytes, request_id: str) -> None:
        state = self.server.state
        operation = "(unknown)"
        try:
            if path != "/" or self.command != "POST":
                raise AwsError("UnknownOperationException",
                               f"No operation at {self.command} {path}; the service accepts POST /.",
                               404 if path != "/" else 405)
            target = self.headers.get("X-Amz-Target", "")
            name = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
            if name not in OPERATIONS:
                raise AwsError("UnknownOperationException", "Unknown operation: the X-Amz-Target header must be "
                               f"{TARGET_PREFIX}<{'|'.join(OPERATIONS)}>.")
            operation = name
            with state.lock:
                state.stats_for(operation).calls += 1
            self._serve_operation(state, OPERATIONS[operation], path, query, body, request_id)
        except AwsError as err:
            self._count_error(state, operation, err)
            self._reply(err.status, err.body(), request_id, err.error_type)
        except Exception:
            log.exception("request failed")
            bug = AwsError("InternalServiceErrorException", "internal error in the emulator")
            self._count_error(state, operation, bug)
            self._reply(bug.status, bug.body(), request_id, bug.error_type)

    def _serve_operation(self, state: State, op: Operation, path: str, query: str, body: bytes,
                         request_id: str) -> None:
        operation = op.name
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != CONTENT_TYPE:
            raise serialization_error(f"Content-Type must be {CONTENT_TYPE}.")
        if len(body) >= MAX_BODY:
            raise AwsError("ValidationException", "Request size must be less than 1 MB (1,000,000 bytes).")
        with state.lock:
            now = state.emulator_now()  # wall time (+ clockOffsetSeconds), not the usage clock
            region = state.config.region
            lookup = sts.credential_lookup(state)  # fixture keys and the sessions STS issued
        # The request's own path and query string are signed parts: a query added after signing fails.
        caller = sigv4.verify(self.command, path, self._headers(), body, lookup, region, now, query=query)
        sts.refuse_long_term_keys(state, op, caller)
        if self._dropped_or_delayed(state, operation, request_id):
            return
        if state.faults.fire("throttle", operation) is not None or not state.take_quota(
            caller.account_id or caller.access_key_id, operation
        ):
            raise AwsError("ThrottlingException", "Rate exceeded")
        if state.faults.fire("error500", operation) is not None:
            raise AwsError("InternalServiceErrorException", "An internal error occurred (injected fault).")
        if state.faults.fire("requestTimeout", operation) is not None:
            raise AwsError("RequestTimeoutException", "Request timed out (injected fault).", 408)
        for kind, status, raw, media in _GATEWAY_ERRORS:
            if state.faults.fire(kind, operation) is not None:
                with state.lock:
                    state.stats_for(operation).errors[str(status)] += 1
                self._reply_raw(status, raw, request_id, media)
                return
        try:
            request = json.loads(body.decode("utf-8") or "{}", parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise serialization_error("The request body is not valid JSON.") from exc
        with state.lock:
            modeled = state.config.modeled_constraint_errors
        model.check_request(op.input_shape, request, modeled)
        if operation in caller.denied_operations:
            if op.dry_run_member is not None and request.get(op.dry_run_member):
                raise AwsError("UnauthorizedException", "You are not authorized to perform this operation.")
            raise AwsError("AccessDeniedException",
                           f"User: arn:aws:iam::{caller.account_id or '000000000000'}:user/emulator is not authorized "
                           f"to perform: {op.iam_action}")
        with state.lock:
            if operation in state.config.disabled_operations:
                raise AwsError("DisabledApiException", f"The {operation} API is disabled in this Region.")
            response = op.handler(state, caller, request, op)
            state.stats_for(operation).succeeded += 1
        if state.faults.fire("lostReply", operation) is not None:  # processed (billed), the answer never arrives
            self._hang_up(operation, request_id, "processed, reply lost")
            return
        self._reply(200, response, request_id)

    def _dropped_or_delayed(self, state: State, operation: str, request_id: str) -> bool:
        """The ``drop`` fault (the connection closed unanswered: True) and the ``latency`` one (a wait)."""
        if state.faults.fire("drop", operation) is not None:
            self._hang_up(operation, request_id, "dropped")
            return True
        latency = state.faults.fire("latency", operation)
        if latency is not None:
            time.sleep(latency.latency_ms / 1000.0)
        return False

    def _hang_up(self, operation: str, request_id: str, what: str) -> None:
        """Close the connection without a reply (the ``drop`` and ``lostReply`` faults)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:  # the client hung up first: the connection is gone either way
            pass
        log.info('%s "%s %s" %s %s %s', self.client_address[0], self.command, self.path.partition("?")[0], operation,
                 what, request_id)

    def _count_error(self, state: State, operation: str, err: AwsError) -> None:
        with state.lock:
            bucket = state.stats_for(operation)
            if operation == "(unknown)":
                bucket.calls += 1
            bucket.errors[err.error_type] += 1
            if err.error_type == "ThrottlingException":
                bucket.throttled += 1

    do_POST = _handle
    do_GET = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle
    do_HEAD = _handle
    do_OPTIONS = _handle
