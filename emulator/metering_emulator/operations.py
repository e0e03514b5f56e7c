"""The business semantics of the four operations, run against State under its lock.

Each operation takes the verified caller and the already shape-checked request body and returns the
response body, or raises AwsError. Rejected requests leave the state unchanged: every check runs
before anything is recorded.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from .errors import AwsError
from .fixtures import SUPPORTED_REGISTER_PLATFORMS, Customer, Product
from .sigv4 import Credential
from .state import State

Operation = Callable[[State, Credential, dict[str, Any]], dict[str, Any]]


def floor_hour(epoch: float) -> int:
    """Start of the UTC hour containing ``epoch``."""
    return int(epoch // 3600 * 3600)


def iso(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for an epoch (clamped to the representable range)."""
    epoch = min(max(epoch, 0.0), 253402300799.0)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _product(state: State, code: str) -> Product:
    product = state.fixtures.products.get(code)
    if product is None:
        raise AwsError("InvalidProductCodeException", f"Product code {code} is not valid.")
    return product


def _check_dimension(product: Product, dimension: str) -> None:
    if dimension not in product.dimensions:
        raise AwsError("InvalidUsageDimensionException",
                       f"Usage dimension {dimension} is not defined for product {product.code}.")


def _check_window(state: State, timestamp: float) -> None:
    now = state.now()
    lower = floor_hour(now) - state.config.timestamp_window_hours * 3600
    upper = now + state.config.future_tolerance_seconds
    if not lower <= timestamp <= upper:
        raise AwsError(
            "TimestampOutOfBoundsException",
            f"Timestamp {iso(timestamp)} is outside the accepted window {iso(lower)} to {iso(upper)}.",
        )


def _check_allocations(allocations: list[dict[str, Any]] | None, quantity: int, where: str) -> None:
    if allocations is None:
        return
    total = sum(a["AllocatedUsageQuantity"] for a in allocations)
    if total != quantity:
        raise AwsError("InvalidUsageAllocationsException",
                       f"{where}: the sum of AllocatedUsageQuantity ({total}) must equal the usage quantity "
                       f"({quantity}).")
    seen: set[frozenset[tuple[str, str]]] = set()
    for a in allocations:
        tag_set = frozenset((t["Key"], t["Value"]) for t in a.get("Tags") or [])
        if tag_set in seen:
            raise AwsError("InvalidUsageAllocationsException",
                           f"{where}: every allocation must have a unique tag set (at most one without tags).")
        seen.add(tag_set)


def _entitled(product: Product, caller: Credential, now: float) -> bool:
    """A caller is entitled when its account is a subscribed customer, or the seller (preview mode)."""
    if caller.account_id is None:
        return False
    if product.seller_account_id == caller.account_id:
        return True
    customer = product.by_account.get(caller.account_id)
    return customer is not None and customer.active(now)


def _store(state: State, key: tuple[str, ...], record: dict[str, Any]) -> dict[str, Any]:
    record["meteringRecordId"] = str(uuid.uuid4())
    record["receivedAt"] = state.now()
    record["submissions"] = 1
    record["duplicatesRejected"] = 0
    state.records.append(record)
    state.record_index[key] = record
    return record


def meter_usage(state: State, caller: Credential, body: dict[str, Any]) -> dict[str, Any]:
    """MeterUsage: hourly dedupe per caller (the task or instance), ClientToken idempotency, DryRun."""
    product = _product(state, body["ProductCode"])
    if caller.resource_region is not None and caller.resource_region != state.config.region:
        raise AwsError("InvalidEndpointRegionException",
                       f"The endpoint region {state.config.region} does not match the region of the resource "
                       f"({caller.resource_region}).")
    dimension: str = body["UsageDimension"]
    _check_dimension(product, dimension)
    quantity: int = body.get("UsageQuantity") or 0
    _check_allocations(body.get("UsageAllocations"), quantity, "UsageAllocations")
    timestamp = body["Timestamp"]
    _check_window(state, timestamp)
    if not _entitled(product, caller, state.now()):
        raise AwsError("CustomerNotEntitledException",
                       f"The customer is not entitled to product {product.code}.")
    if body.get("DryRun"):
        raise AwsError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    token = body.get("ClientToken")
    fingerprint = json.dumps({k: v for k, v in body.items() if k != "ClientToken"}, sort_keys=True)
    if token is not None:
        known = state.client_tokens.get((caller.access_key_id, token))
        if known is not None:
            if known[0] != fingerprint:
                raise AwsError("IdempotencyConflictException",
                               "The ClientToken was already used with different request parameters.")
            return dict(known[1])
    key = ("MeterUsage", product.code, caller.access_key_id, dimension, str(floor_hour(timestamp)))
    existing = state.record_index.get(key)
    if existing is not None:
        if existing["quantity"] != quantity:
            existing["duplicatesRejected"] += 1
            raise AwsError("DuplicateRequestException",
                           "A metering record for this dimension and hour already exists with a different "
                           "quantity.")
        existing["submissions"] += 1
        response = {"MeteringRecordId": existing["meteringRecordId"]}
    else:
        record: dict[str, Any] = {
            "operation": "MeterUsage", "productCode": product.code, "customerAWSAccountId": caller.account_id,
            "accessKeyId": caller.access_key_id, "dimension": dimension, "quantity": quantity,
            "timestamp": timestamp, "hour": iso(floor_hour(timestamp)),
        }
        if body.get("UsageAllocations") is not None:
            record["usageAllocations"] = body["UsageAllocations"]
        if token is not None:
            record["clientToken"] = token
        response = {"MeteringRecordId": _store(state, key, record)["meteringRecordId"]}
    if token is not None:
        state.client_tokens[(caller.access_key_id, token)] = (fingerprint, dict(response))
    return response


def _find_customer(product: Product, record: dict[str, Any]) -> Customer | None:
    ident = record.get("CustomerIdentifier")
    if ident:
        return product.by_identifier.get(ident)
    account = record.get("CustomerAWSAccountId")
    return product.by_account.get(account) if account is not None else None


def _license_product(state: State, arn: str) -> Product | None:
    return state.fixtures.license_products.get(arn)


def batch_meter_usage(state: State, caller: Credential, body: dict[str, Any]) -> dict[str, Any]:
    """BatchMeterUsage: whole-request checks first, then per-record status with hourly dedupe."""
    del caller  # any valid credential may meter (the seller); entitlement is per customer here
    records: list[dict[str, Any]] = body["UsageRecords"]
    code = body.get("ProductCode")
    top_product = _product(state, code) if code is not None else None
    products: list[Product] = []
    for i, r in enumerate(records, start=1):
        where = f"usageRecords.{i}.member"
        if bool(r.get("CustomerIdentifier")) == (r.get("CustomerAWSAccountId") is not None):
            raise AwsError("ValidationException",
                           f"1 validation error detected: {where} must have either CustomerIdentifier or "
                           "CustomerAWSAccountId, but not both.")
        arn = r.get("LicenseArn")
        if top_product is None:
            if arn is None:
                raise AwsError("ValidationException",
                               f"1 validation error detected: {where}.licenseArn is required when the request "
                               "has no ProductCode.")
            licensed = _license_product(state, arn)
            if licensed is None:
                raise AwsError("InvalidLicenseException", f"License {arn} is not valid.")
            products.append(licensed)
        else:
            if top_product.concurrent_agreements:
                raise AwsError("ValidationException",
                               f"Product {top_product.code} uses concurrent agreements: send LicenseArn on every "
                               "record and no ProductCode.")
            products.append(top_product)
    for i, (r, product) in enumerate(zip(records, products), start=1):
        _check_dimension(product, r["Dimension"])
        _check_allocations(r.get("UsageAllocations"), r.get("Quantity") or 0,
                           f"usageRecords.{i}.member.usageAllocations")
        arn = r.get("LicenseArn")
        customer = _find_customer(product, r)
        if arn is not None and (customer is None or customer.license_arn != arn):
            raise AwsError("InvalidLicenseException",
                           f"License {arn} does not match the customer of usage record {i}.")
        if customer is None and state.config.strict_customers:
            raise AwsError("InvalidCustomerIdentifierException",
                           f"The customer of usage record {i} does not exist for product {product.code}.")
    for r in records:
        _check_window(state, r["Timestamp"])
    results: list[dict[str, Any]] = []
    unprocessed: list[dict[str, Any]] = []
    for r, product in zip(records, products):
        if state.faults.fire("unprocessed", "BatchMeterUsage") is not None:
            unprocessed.append(r)
            continue
        customer = _find_customer(product, r)
        if customer is None or not customer.active(state.now()):
            results.append({"UsageRecord": r, "Status": "CustomerNotSubscribed"})
            continue
        # dedupe per fixture customer, however the record names it (identifier or account id)
        who = f"{customer.customer_identifier or ''}|{customer.account_id or ''}"
        quantity = r.get("Quantity") or 0
        key = ("BatchMeterUsage", product.code, who, r["Dimension"], str(floor_hour(r["Timestamp"])))
        existing = state.record_index.get(key)
        if existing is not None:
            if existing["quantity"] == quantity:
                existing["submissions"] += 1
                results.append({"UsageRecord": r, "MeteringRecordId": existing["meteringRecordId"],
                                "Status": "Success"})
            else:
                existing["duplicatesRejected"] += 1
                results.append({"UsageRecord": r, "MeteringRecordId": existing["meteringRecordId"],
                                "Status": "DuplicateRecord"})
            continue
        stored: dict[str, Any] = {"operation": "BatchMeterUsage", "productCode": product.code}
        for src, dst in (("CustomerIdentifier", "customerIdentifier"),
                         ("CustomerAWSAccountId", "customerAWSAccountId"), ("LicenseArn", "licenseArn")):
            if r.get(src):
                stored[dst] = r[src]
        stored.update({"dimension": r["Dimension"], "quantity": quantity, "timestamp": r["Timestamp"],
                       "hour": iso(floor_hour(r["Timestamp"]))})
        if r.get("UsageAllocations") is not None:
            stored["usageAllocations"] = r["UsageAllocations"]
        rec = _store(state, key, stored)
        results.append({"UsageRecord": r, "MeteringRecordId": rec["meteringRecordId"], "Status": "Success"})
    return {"Results": results, "UnprocessedRecords": unprocessed}


def register_usage(state: State, caller: Credential, body: dict[str, Any]) -> dict[str, Any]:
    """RegisterUsage: a PS256 JWT; entitlement is checked only on a caller's first successful call."""
    product = _product(state, body["ProductCode"])
    version: int = body["PublicKeyVersion"]
    current = state.config.public_key_version
    if version > current:
        raise AwsError("InvalidPublicKeyVersionException", f"Public key version {version} is not valid.")
    first = (caller.access_key_id, product.code) not in state.registered
    if first:
        if caller.platform is not None and caller.platform not in SUPPORTED_REGISTER_PLATFORMS:
            raise AwsError("PlatformNotSupportedException",
                           "This operation can only be called from within an ECS task or an EKS pod.")
        if caller.resource_region is not None and caller.resource_region != state.config.region:
            raise AwsError("InvalidRegionException",
                           f"RegisterUsage must be called in the region of the task ({caller.resource_region}).")
        if not _entitled(product, caller, state.now()):
            raise AwsError("CustomerNotEntitledException",
                           f"The customer is not entitled to product {product.code}.")
    state.registered.add((caller.access_key_id, product.code))
    now = int(state.now())
    claims: dict[str, Any] = {"productCode": product.code, "publicKeyVersion": version, "iat": now,
                              "ProductCode": product.code, "PublicKeyVersion": version}
    if body.get("Nonce") is not None:
        claims["nonce"] = claims["Nonce"] = body["Nonce"]
    if caller.account_id is not None:
        claims["customerAccountId"] = caller.account_id
    response: dict[str, Any] = {"Signature": state.signer.sign(claims, version)}
    if version < current:
        response["PublicKeyRotationTimestamp"] = int(state.started_at)
    return response


def resolve_customer(state: State, caller: Credential, body: dict[str, Any]) -> dict[str, Any]:
    """ResolveCustomer: idempotent within the token lifetime, then ExpiredTokenException."""
    issued = state.tokens.get(body["RegistrationToken"])
    if issued is None:
        raise AwsError("InvalidTokenException", "Registration token is invalid")
    product = state.fixtures.products.get(issued.product_code)
    if product is not None and product.seller_account_id not in (None, caller.account_id):
        raise AwsError("InvalidTokenException", "Registration token is invalid")
    if state.now() - issued.issued_at >= state.config.token_lifetime_seconds:
        raise AwsError("ExpiredTokenException", "Registration token has expired")
    out: dict[str, Any] = {"ProductCode": issued.product_code}
    c = issued.customer
    if c.customer_identifier is not None:
        out["CustomerIdentifier"] = c.customer_identifier
    if c.account_id is not None:
        out["CustomerAWSAccountId"] = c.account_id
    if c.license_arn is not None:
        out["LicenseArn"] = c.license_arn
    return out


OPERATIONS: dict[str, Operation] = {
    "BatchMeterUsage": batch_meter_usage,
    "MeterUsage": meter_usage,
    "RegisterUsage": register_usage,
    "ResolveCustomer": resolve_customer,
}
