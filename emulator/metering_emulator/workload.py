"""The workload's own identity, served on the emulator's port: an EC2 instance metadata service (IMDSv2)
and an ECS container-credentials endpoint, each handing out session credentials of a fixture role.

Paths and shapes as botocore 1.44.8 reads them (``botocore/utils.py``):
- IMDSv2 (``InstanceMetadataFetcher``): ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds``
  answers a token; ``GET /latest/meta-data/iam/security-credentials/`` with ``X-aws-ec2-metadata-token``
  lists the role name, ``GET …/security-credentials/<role>`` answers ``{Code, LastUpdated, Type,
  AccessKeyId, SecretAccessKey, Token, Expiration}``. Point botocore at it with
  ``AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:<port>/``.
- ECS (``ContainerMetadataFetcher``): ``GET /v2/credentials/<any id>`` answers ``{RoleArn, AccessKeyId,
  SecretAccessKey, Token, Expiration}``; botocore accepts ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` on a
  loopback address. With ``containerCredentials.authorizationToken`` in the fixtures the request must carry
  that ``Authorization`` header (``AWS_CONTAINER_AUTHORIZATION_TOKEN``), as on EKS Pod Identity / Greengrass.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING

from .sts import identity_of, sessions_of

if TYPE_CHECKING:
    from .state import State

IMDS_TOKEN_PATH = "/latest/api/token"
IMDS_CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"
ECS_PREFIX = "/v2/credentials/"
MAX_IMDS_TTL = 21600


def handles(path: str) -> bool:
    """Whether ``path`` is one of the workload endpoints."""
    return path.startswith(("/latest/", ECS_PREFIX))


def endpoint_of(path: str) -> str:
    """The name faults use for the endpoint serving ``path`` (catalogue.py ``WORKLOAD_ENDPOINTS``)."""
    return "ContainerCredentials" if path.startswith(ECS_PREFIX) else "InstanceMetadata"


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _json(status: int, obj: object) -> tuple[int, bytes, str]:
    return status, json.dumps(obj).encode("utf-8"), "application/json"


def _text(status: int, text: str) -> tuple[int, bytes, str]:
    return status, text.encode("utf-8"), "text/plain"


def _duration(state: State, role_max: float) -> float:
    return min(float(getattr(state.config, "sts_default_duration_seconds", 3600.0)), role_max)


def _imds(state: State, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    store = sessions_of(state)
    now = state.now()
    if path == IMDS_TOKEN_PATH:
        if method != "PUT":
            return _text(405, "Method Not Allowed")
        try:
            ttl = int(headers.get("x-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= MAX_IMDS_TTL:
            return _text(400, "Bad Request")
        token = secrets.token_urlsafe(40)
        store.imds_tokens[token] = now + ttl
        return _text(200, token)
    if method != "GET":
        return _text(405, "Method Not Allowed")
    expires = store.imds_tokens.get(headers.get("x-aws-ec2-metadata-token", ""))
    if expires is None or now >= expires:  # IMDSv2 only: IMDSv1 (no token) is refused
        return _text(401, "Unauthorized")
    identity = identity_of(state)
    role = identity.roles.get(identity.instance_role or "")
    if not path.startswith(IMDS_CREDENTIALS_PATH) or role is None:
        return _text(404, "Not Found")
    name = path[len(IMDS_CREDENTIALS_PATH):]
    if not name:
        return _text(200, role.name)
    if name != role.name:
        return _text(404, "Not Found")
    duration = _duration(state, role.max_session_duration)
    session = store.issue(role, "i-0emulator000000000", "InstanceMetadata", now, duration)
    cred = session.credential
    return _json(200, {"Code": "Success", "LastUpdated": _iso(now), "Type": "AWS-HMAC",
                       "AccessKeyId": cred.access_key_id, "SecretAccessKey": cred.secret_access_key,
                       "Token": cred.session_token, "Expiration": _iso(session.expires_at)})


def _ecs(state: State, method: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    identity = identity_of(state)
    role = identity.roles.get(identity.container_role or "")
    if method != "GET":
        return _json(405, {"code": "MethodNotAllowed", "message": "use GET"})
    if role is None:
        return _json(404, {"code": "NotFound", "message": "no task role: the fixtures declare no "
                           "containerCredentials"})
    required = identity.container_authorization
    if required is not None and headers.get("authorization") != required:
        return _json(401, {"code": "Unauthorized", "message": "the Authorization header is missing or wrong"})
    now = state.now()
    session = sessions_of(state).issue(role, "ecs-task-emulator", "ContainerCredentials", now,
                                       _duration(state, role.max_session_duration))
    cred = session.credential
    return _json(200, {"RoleArn": role.arn, "AccessKeyId": cred.access_key_id,
                       "SecretAccessKey": cred.secret_access_key, "Token": cred.session_token,
                       "Expiration": _iso(session.expires_at)})


def handle(state: State, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes, str]:
    """Serve one workload-endpoint request: (status, body, content type)."""
    with state.lock:
        if path.startswith(ECS_PREFIX):
            return _ecs(state, method, headers)
        return _imds(state, method, path, headers)
