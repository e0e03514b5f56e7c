"""The admin API under ``/_emulator/``: a table of (method, path) -> handler over State."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from . import sts
from .clock import ClockError, parse_clock
from .errors import AwsError
from .faults import FaultSpecError
from .fixtures import FixtureError, parse_customer, parse_fixtures
from .state import ConfigError, State

PREFIX = "/_emulator/"
# ``GET stats`` → ``audit``: records sent with ProductCode and a LicenseArn in one request, and records
# billed twice because one customer's hour and dimension was metered both by ProductCode and by LicenseArn.
AUDIT_COUNTERS = ("productCodeWithLicenseArn", "productCodeAndLicenseArnSameHour")
Handler = Callable[[State, Any, dict[str, str]], tuple[int, Any]]


def _health(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        return 200, {"status": "ok", "region": state.config.region, "now": state.now(),
                     "records": len(state.records)}


def _get_clock(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        return 200, state.clock.as_json(state.emulator_now())


def _post_clock(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    try:
        clock = parse_clock(body)
    except ClockError as exc:
        raise AwsError("ValidationException", str(exc)) from exc
    with state.lock:
        state.clock = clock
        return 200, state.clock.as_json(state.emulator_now())


def _quantities(entry: dict[str, Any]) -> dict[str, Any]:
    """JSON form of a stored quantity: ``quantityDecimal`` the exact value as text (``"17.42"``, ``"3"``);
    ``quantity`` the same value as an integer when it is whole, else that same text (never a float)."""
    value = entry.get("quantity")
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        entry["quantityDecimal"] = text
        entry["quantity"] = int(value) if value == value.to_integral_value() else text
    return entry


def _get_fixtures(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        return 200, state.fixtures.redacted()


def _post_fixtures(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    try:
        fixtures = parse_fixtures(body)
    except FixtureError as exc:
        raise AwsError("ValidationException", str(exc)) from exc
    state.load(fixtures)
    return 200, {"loaded": True, "credentials": len(fixtures.credentials), "products": len(fixtures.products),
                 "registrationTokens": len(fixtures.tokens)}


def _mint(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    if not isinstance(body, dict):
        raise AwsError("ValidationException", "expected {\"productCode\", \"customer\": {...}, \"token\"?}")
    code = body.get("productCode")
    errors: list[str] = []
    customer = parse_customer(body.get("customer"), "customer", errors)
    token = body.get("token")
    if token is not None and (not isinstance(token, str) or not token):
        errors.append("token: must be a non-empty string")
    with state.lock:
        if not isinstance(code, str) or code not in state.fixtures.products:
            errors.append("productCode: must name a product in the fixtures")
        if errors or customer is None or not isinstance(code, str):
            raise AwsError("ValidationException", "; ".join(errors))
        minted = state.mint_token(code, customer, token)
        issued = state.tokens[minted].issued_at
    return 201, {"token": minted, "productCode": code, "customer": customer.as_json(), "issuedAt": issued}


def _records(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    keys = ("productCode", "dimension", "operation", "customer", "licenseArn")
    filters = {k: v for k, v in query.items() if k in keys}
    with state.lock:
        records = [_quantities(dict(r)) for r in state.records]
        summary = [_quantities(s) for s in state.summary()]
    def keep(r: dict[str, Any]) -> bool:
        for k, v in filters.items():
            value = (r.get("customerIdentifier") or r.get("customerAWSAccountId")) if k == "customer" else r.get(k)
            if value != v:
                return False
        return True
    records = [r for r in records if keep(r)]
    summary = [s for s in summary if all(s.get(k) == v for k, v in filters.items() if k != "operation")]
    return 200, {"records": records, "summary": summary}


def _stats(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        return 200, {"operations": {op: s.as_json() for op, s in state.stats.items()},
                     "audit": {name: state.audit[name] for name in AUDIT_COUNTERS}}


def _get_faults(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    return 200, {"faults": state.faults.list()}


def _post_faults(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    try:
        return 201, state.faults.add(body).as_json()
    except FaultSpecError as exc:
        raise AwsError("ValidationException", str(exc)) from exc


def _delete_faults(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    fault_id = query.get("id")
    if fault_id is None:
        state.faults.clear()
        return 200, {"cleared": True}
    if not fault_id.isdigit() or not state.faults.remove(int(fault_id)):
        raise AwsError("ResourceNotFoundException", f"no armed fault with id {fault_id!r}", 404)
    return 200, {"cleared": True, "id": int(fault_id)}


def _get_config(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        return 200, state.config.as_json()


def _post_config(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        try:
            state.config.update(body)
        except ConfigError as exc:
            raise AwsError("ValidationException", str(exc)) from exc
        return 200, state.config.as_json()


def _reset(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    state.reset()
    return 200, {"reset": True}


def _public_key(state: State, body: Any, query: dict[str, str]) -> tuple[int, Any]:
    with state.lock:
        version = state.config.public_key_version
    return 200, {"publicKeyVersion": version, "algorithm": "PS256", "pem": state.signer.public_key_pem()}


ROUTES: dict[str, dict[str, Handler]] = {
    "health": {"GET": _health},
    "clock": {"GET": _get_clock, "POST": _post_clock},
    "fixtures": {"GET": _get_fixtures, "POST": _post_fixtures},
    "registration-tokens": {"POST": _mint},
    "records": {"GET": _records},
    "stats": {"GET": _stats},
    "faults": {"GET": _get_faults, "POST": _post_faults, "DELETE": _delete_faults},
    "config": {"GET": _get_config, "POST": _post_config},
    "reset": {"POST": _reset},
    "public-key": {"GET": _public_key},
    **sts.ADMIN_ROUTES,  # sts/sessions, sts/expire, sts/revoke
}


def handle(state: State, method: str, path: str, query: str, raw: bytes) -> tuple[int, Any]:
    """Answer one admin request; raise AwsError for a bad one (unknown route, bad JSON, bad values)."""
    name = path[len(PREFIX):].strip("/")
    route = ROUTES.get(name)
    if route is None:
        raise AwsError("ResourceNotFoundException", f"no admin endpoint {PREFIX}{name}", 404)
    handler = route.get(method)
    if handler is None:
        raise AwsError("MethodNotAllowedException",
                       f"{method} is not allowed on {PREFIX}{name}; use {', '.join(sorted(route))}", 405)
    body: Any = None
    if method in ("POST", "PUT") and raw.strip():
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise AwsError("SerializationException", "the admin request body is not valid JSON") from exc
    elif method == "POST" and name not in ("reset",):
        body = {}
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return handler(state, body, params)
