"""The business semantics of the operations (the handlers ``catalogue.py`` names), run against State under
its lock.

Each handler takes the verified caller, the already shape-checked request body and its catalogue entry, and
returns the response body, or raises AwsError. Rejected requests leave the state unchanged: every check
runs before anything is recorded.
"""

from __future__ import annotations

import calendar
import json
import math
import time
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import model
from .errors import AwsError

if TYPE_CHECKING:  # the catalogue imports this module; these are for annotations only
    from .catalogue import Operation
    from .fixtures import Customer, Product
    from .sigv4 import Credential
    from .state import State


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


def month_start(epoch: float) -> int:
    """Start (00:00 UTC) of the calendar month containing ``epoch``."""
    t = time.gmtime(min(max(epoch, 0.0), 253402300799.0))
    return calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0))


def _check_window(state: State, timestamp: float, op: Operation) -> None:
    """The accepted range: back to exactly the hours of the operation's window (``op.window``, a Config
    attribute) before now, up to a little ahead (``futureToleranceSeconds``).

    The age limit is not hour-aligned. With ``op.window_inclusive`` (MeterUsage: "more than six hours after
    events occur, the records won't be accepted") a timestamp exactly the window's age is still accepted;
    without it (BatchMeterUsage: "Usage records aren't accepted 24 hours or more after an event") it is not.

    With ``op.month_end_cutoff`` (BatchMeterUsage: "We accept usage records for the previous billing month until
    06:00 UTC on the first day of the next month", botocore 1.44 model) a timestamp of an earlier calendar
    month is out of bounds once the grace period of the current month has passed, whatever its age.
    """
    if op.window is None:
        raise TypeError(f"the catalogue gives {op.name} no timestamp window")
    now = state.now()
    hours: float = getattr(state.config, op.window)
    lower = now - hours * 3600
    upper = now + state.config.future_tolerance_seconds
    in_window = lower <= timestamp if op.window_inclusive else lower < timestamp
    if not (in_window and timestamp <= upper):
        oldest = "at or after" if op.window_inclusive else "after"
        raise AwsError(
            "TimestampOutOfBoundsException",
            f"Timestamp {iso(timestamp)} is outside the accepted window: {op.name} takes timestamps {oldest} "
            f"{iso(lower)} ({hours:g} hours before now) and up to {iso(upper)}.",
        )
    if op.month_end_cutoff:
        start = month_start(now)
        cutoff = start + state.config.month_end_grace_hours * 3600
        if timestamp < start and now >= cutoff:
            raise AwsError(
                "TimestampOutOfBoundsException",
                f"Timestamp {iso(timestamp)} is in a previous billing month; usage records for it were accepted "
                f"until {iso(cutoff)}.",
            )


def canonical(value: Decimal) -> str:
    """The shortest plain decimal text of a quantity: ``17``, ``17.42``, ``0`` (never an exponent)."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def quantity_of(body: dict[str, Any], integer: str, decimal: str) -> tuple[Decimal, str | None]:
    """The quantity of a record or request by value, and the member that carried it (None: neither sent,
    which the model documents as 0). The shape check has already refused both members at once."""
    if body.get(decimal) is not None:
        return Decimal(body[decimal]), decimal
    if body.get(integer) is not None:
        return Decimal(int(body[integer])), integer
    return Decimal(0), None


_ALLOCATED = {"Quantity": "AllocatedUsageQuantity", "UsageQuantity": "AllocatedUsageQuantity",
              "QuantityAsDecimal": "AllocatedUsageQuantityAsDecimal",
              "UsageQuantityAsDecimal": "AllocatedUsageQuantityAsDecimal"}


def _check_allocations(allocations: list[dict[str, Any]] | None, quantity: Decimal, member: str | None,
                       where: str) -> None:
    """Allocations use the record's kind of quantity (whole number or decimal) and sum to it exactly."""
    if allocations is None:
        return
    kinds = {"AllocatedUsageQuantityAsDecimal" if a.get("AllocatedUsageQuantityAsDecimal") is not None
             else "AllocatedUsageQuantity" for a in allocations}
    expected = _ALLOCATED.get(member or "")
    if len(kinds) > 1 or (expected is not None and kinds != {expected}):
        wanted = (f"{expected} with {member}" if expected is not None
                  else "one type of quantity in every allocation")
        raise AwsError("InvalidUsageAllocationsException",
                       f"{where}: the allocations don't use the same type of quantity (whole number or decimal) "
                       f"as the usage quantity; use {wanted}.")
    total = sum((quantity_of(a, "AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal")[0]
                 for a in allocations), Decimal(0))
    if total != quantity:
        raise AwsError("InvalidUsageAllocationsException",
                       f"{where}: the sum of allocated usage quantities ({canonical(total)}) is not equal to the "
                       f"usage quantity ({canonical(quantity)}).")
    seen: set[frozenset[tuple[str, str]]] = set()
    for a in allocations:
        tag_set = frozenset((t["Key"], t["Value"]) for t in a.get("Tags") or [])
        if tag_set in seen:
            raise AwsError("InvalidUsageAllocationsException",
                           f"{where}: every allocation must have a unique tag set (at most one without tags).")
        seen.add(tag_set)


def _by_value(body: dict[str, Any], integer: str, decimal: str) -> dict[str, Any]:
    """``body`` with its quantities replaced by their values, for idempotency fingerprints ("Quantities
    are compared by value when checking for duplicate or retried requests", the model's doc)."""
    out = {k: v for k, v in body.items() if k not in (integer, decimal, "UsageAllocations")}
    out["quantity"] = canonical(quantity_of(body, integer, decimal)[0])
    if body.get("UsageAllocations") is not None:
        out["UsageAllocations"] = [
            {"quantity": canonical(quantity_of(a, "AllocatedUsageQuantity", "AllocatedUsageQuantityAsDecimal")[0]),
             "Tags": a.get("Tags")} for a in body["UsageAllocations"]]
    return out


def _other_form(text: str) -> str:
    """Another text of the same decimal value, as a normalising service might echo it."""
    whole, dot, fraction = text.partition(".")
    if not dot:
        return f"{whole}.0"
    if len(fraction) < 6:
        return f"{whole}.{fraction.ljust(6, '0')}"
    return text.rstrip("0").rstrip(".") if fraction.endswith("0") else text


def echo(state: State, record: dict[str, Any]) -> dict[str, Any]:
    """A UsageRecord as the reply carries it: as sent (the default), or normalised (config ``echo``):
    decimal quantities in another text of the same value, members sent as "" left out, ``Quantity: 0``
    added when no quantity was sent, Timestamp as whole epoch seconds, keys sorted. Either way only what AWS
    parsed: members the model does not declare, and members sent as null, are not echoed."""
    record = model.parsed(model.USAGE_RECORD, record)
    if state.config.echo != "normalised":
        return record
    out: dict[str, Any] = {k: v for k, v in record.items() if v != ""}
    if out.get("QuantityAsDecimal") is not None:
        out["QuantityAsDecimal"] = _other_form(out["QuantityAsDecimal"])
    elif out.get("Quantity") is None:
        out["Quantity"] = 0
    if isinstance(out.get("Timestamp"), float):
        out["Timestamp"] = math.floor(out["Timestamp"])
    if out.get("UsageAllocations") is not None:
        allocations = []
        for a in out["UsageAllocations"]:
            a = {k: v for k, v in a.items() if v is not None}
            if a.get("AllocatedUsageQuantityAsDecimal") is not None:
                a["AllocatedUsageQuantityAsDecimal"] = _other_form(a["AllocatedUsageQuantityAsDecimal"])
            allocations.append(dict(sorted(a.items())))
        out["UsageAllocations"] = allocations
    return dict(sorted(out.items()))


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


def meter_usage(state: State, caller: Credential, body: dict[str, Any], op: Operation) -> dict[str, Any]:
    """MeterUsage: hourly dedupe per caller (the task or instance), ClientToken idempotency, DryRun."""
    product = _product(state, body["ProductCode"])
    if caller.resource_region is not None and caller.resource_region != state.config.region:
        raise AwsError("InvalidEndpointRegionException",
                       f"The endpoint region {state.config.region} does not match the region of the resource "
                       f"({caller.resource_region}).")
    dimension: str = body["UsageDimension"]
    _check_dimension(product, dimension)
    quantity, member = quantity_of(body, "UsageQuantity", "UsageQuantityAsDecimal")
    _check_allocations(body.get("UsageAllocations"), quantity, member, "usageAllocations")
    timestamp = body["Timestamp"]
    _check_window(state, timestamp, op)
    if not _entitled(product, caller, state.now()):
        raise AwsError("CustomerNotEntitledException",
                       f"The customer is not entitled to product {product.code}.")
    if op.dry_run_member is not None and body.get(op.dry_run_member):
        raise AwsError("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
    token = body.get("ClientToken")
    # DryRun "Defaults to false if not specified" (model): false, null and absent are one request (true never
    # gets here). Members sent as null are members not sent.
    fingerprint = json.dumps(_by_value({k: v for k, v in body.items()
                                        if k not in ("ClientToken", "DryRun") and v is not None},
                                       "UsageQuantity", "UsageQuantityAsDecimal"), sort_keys=True)
    if token is not None:
        known = state.client_tokens.get((caller.caller_id, token))
        if known is not None:
            if known[0] != fingerprint:
                raise AwsError("IdempotencyConflictException",
                               "The ClientToken was already used with different request parameters.")
            return dict(known[1])
    key = ("MeterUsage", product.code, caller.caller_id, dimension, str(floor_hour(timestamp)))
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
            "quantityMember": member, "timestamp": timestamp, "hour": iso(floor_hour(timestamp)),
        }
        if body.get("UsageAllocations") is not None:
            record["usageAllocations"] = body["UsageAllocations"]
        if token is not None:
            record["clientToken"] = token
        response = {"MeteringRecordId": _store(state, key, record)["meteringRecordId"]}
    if token is not None:
        state.client_tokens[(caller.caller_id, token)] = (fingerprint, dict(response))
    return response


def _find_customer(product: Product, record: dict[str, Any]) -> Customer | None:
    """The product's customer (agreement) a record names: by LicenseArn when it has one, so two licenses
    of one account are two customers; else by CustomerIdentifier or CustomerAWSAccountId."""
    arn = record.get("LicenseArn")
    if arn is not None:
        return product.by_license.get(arn)
    ident = record.get("CustomerIdentifier")
    if ident:
        return product.by_identifier.get(ident)
    account = record.get("CustomerAWSAccountId")
    return product.by_account.get(account) if account is not None else None


def _license_product(state: State, arn: str) -> Product | None:
    return state.fixtures.license_products.get(arn)


def _check_license(product: Product, r: dict[str, Any], i: int) -> None:
    """InvalidLicenseException: "Ensure the LicenseArn is valid, matches the customer, and usage is within
    the license activation period." (botocore 1.44 model)."""
    arn = r.get("LicenseArn")
    if arn is None:
        if not product.legacy:
            raise AwsError("InvalidLicenseException",
                           f"Usage record {i} has no LicenseArn; product {product.code} is a new SaaS integration "
                           "and identifies customers by CustomerAWSAccountId and LicenseArn.")
        return
    customer = product.by_license.get(arn)
    ident, account = r.get("CustomerIdentifier"), r.get("CustomerAWSAccountId")
    if (customer is None or (account is not None and customer.account_id != account)
            or (ident and customer.customer_identifier != ident)):
        raise AwsError("InvalidLicenseException",
                       f"License {arn} does not match the customer of usage record {i}.")
    if not customer.licensed_at(r["Timestamp"]):
        raise AwsError("InvalidLicenseException",
                       f"Usage record {i} ({iso(r['Timestamp'])}) is not within the activation period of license "
                       f"{arn}.")


def _batch_products(state: State, records: list[dict[str, Any]], code: str | None) -> list[Product]:
    """The product of every record: the request's ProductCode, or each record's LicenseArn."""
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
            if r.get("CustomerIdentifier"):  # model: "ProductCode is required ... for ... CustomerIdentifier"
                raise AwsError("ValidationException",
                               f"1 validation error detected: {where}.customerIdentifier requires the request's "
                               "ProductCode; a record without it names the customer by CustomerAWSAccountId.")
            licensed = _license_product(state, arn)
            if licensed is None:
                raise AwsError("InvalidLicenseException", f"License {arn} is not valid.")
            if products and licensed is not products[0]:
                # model: "Each BatchMeterUsage request is for only one product." (the error is not documented)
                raise AwsError("ValidationException",
                               f"Each BatchMeterUsage request is for only one product: the license of {where} is "
                               f"for {licensed.code}, an earlier record's for {products[0].code}.")
            products.append(licensed)
        else:
            if top_product.concurrent_agreements:
                raise AwsError("ValidationException",
                               f"Product {top_product.code} uses concurrent agreements: send LicenseArn on every "
                               "record and no ProductCode.")
            products.append(top_product)
    return products


def _batch_quantities(state: State, records: list[dict[str, Any]], products: list[Product],
                      op: Operation) -> list[tuple[Decimal, str | None]]:
    """Check every record against its product (dimension, quantity, allocations, customer, license) and give
    each record's quantity with the member it came from; the first failure refuses the whole request."""
    quantities: list[tuple[Decimal, str | None]] = []
    for i, (r, product) in enumerate(zip(records, products, strict=True), start=1):
        _check_dimension(product, r["Dimension"])
        quantity, member = quantity_of(r, "Quantity", "QuantityAsDecimal")
        quantities.append((quantity, member))
        _check_allocations(r.get("UsageAllocations"), quantity, member, f"usageRecords.{i}.member.usageAllocations")
        if r.get("CustomerIdentifier") and not product.legacy:
            raise AwsError("InvalidCustomerIdentifierException",
                           f"Usage record {i}: CustomerIdentifier is not supported for product {product.code} "
                           "(a new SaaS integration); use CustomerAWSAccountId and LicenseArn.")
        _check_license(product, r, i)
        if _find_customer(product, r) is None and state.config.strict_customers:
            raise AwsError("InvalidCustomerIdentifierException",
                           f"The customer of usage record {i} does not exist for product {product.code}.")
    for r in records:  # "if any of the records are outside of the allowed range, the entire batch is not processed"
        _check_window(state, r["Timestamp"], op)
    return quantities


def _batch_record(state: State, r: dict[str, Any], product: Product, quantity: Decimal, member: str | None,
                  both: bool) -> dict[str, Any]:
    """One processed record's result: hourly dedupe per fixture customer (one agreement), however the record
    names it, and per billing basis; the same quantity again is Success with the first MeteringRecordId,
    another is DuplicateRecord.

    The basis is ``license`` for a record with a LicenseArn, else ``product``. The two are billed apart:
    "Sending metering records with both ProductCode and LicenseArn for the same customer within the same hour
    will result in duplicate billing" (model, BatchMeterUsageRequest.ProductCode). A record billed in an hour
    in which the same customer (account) and dimension already has a record of the other basis is marked
    ``doubleBilledWith`` and counted in ``audit.productCodeAndLicenseArnSameHour``.
    """
    customer = _find_customer(product, r)
    if customer is None or not customer.active(state.now()):
        return {"UsageRecord": echo(state, r), "Status": "CustomerNotSubscribed"}
    basis = "license" if r.get("LicenseArn") is not None else "product"
    hour = str(floor_hour(r["Timestamp"]))
    key = ("BatchMeterUsage", product.code, customer.key(), basis, r["Dimension"], hour)
    existing = state.record_index.get(key)
    if existing is not None:
        if existing["quantity"] == quantity:
            existing["submissions"] += 1
            status = "Success"
        else:
            existing["duplicatesRejected"] += 1
            status = "DuplicateRecord"
        return {"UsageRecord": echo(state, r), "MeteringRecordId": existing["meteringRecordId"], "Status": status}
    stored: dict[str, Any] = {"operation": "BatchMeterUsage", "productCode": product.code}
    for src, dst in (("CustomerIdentifier", "customerIdentifier"),
                     ("CustomerAWSAccountId", "customerAWSAccountId"), ("LicenseArn", "licenseArn")):
        if r.get(src):
            stored[dst] = r[src]
    stored.update({"dimension": r["Dimension"], "quantity": quantity, "quantityMember": member,
                   "timestamp": r["Timestamp"], "hour": iso(floor_hour(r["Timestamp"]))})
    if r.get("UsageAllocations") is not None:
        stored["usageAllocations"] = r["UsageAllocations"]
    if both:  # AWS documents duplicate billing for this mix; it does not refuse it
        stored["productCodeWithLicenseArn"] = True
    buyer = ("BatchMeterUsage", product.code, customer.account_id or customer.key(), r["Dimension"], hour)
    bases = state.billing_bases.setdefault(buyer, {})
    other = bases.get("product" if basis == "license" else "license")
    if other is not None:
        stored["doubleBilledWith"] = other
        state.audit["productCodeAndLicenseArnSameHour"] += 1
    rec = _store(state, key, stored)
    bases.setdefault(basis, rec["meteringRecordId"])
    return {"UsageRecord": echo(state, r), "MeteringRecordId": rec["meteringRecordId"], "Status": "Success"}


def batch_meter_usage(state: State, caller: Credential, body: dict[str, Any], op: Operation) -> dict[str, Any]:
    """BatchMeterUsage: whole-request checks first, then per-record status with hourly dedupe per
    (product, customer and license, dimension, hour) and quantities compared by value."""
    del caller  # any valid credential may meter (the seller); entitlement is per customer here
    records: list[dict[str, Any]] = body["UsageRecords"]
    code = body.get("ProductCode")
    products = _batch_products(state, records, code)
    quantities = _batch_quantities(state, records, products, op)
    results: list[dict[str, Any]] = []
    unprocessed: list[dict[str, Any]] = []
    for r, product, (quantity, member) in zip(records, products, quantities, strict=True):
        both = code is not None and r.get("LicenseArn") is not None
        if both:
            state.audit["productCodeWithLicenseArn"] += 1
        if state.faults.fire("unprocessed", op.name) is not None:
            unprocessed.append(echo(state, r))
            continue
        results.append(_batch_record(state, r, product, quantity, member, both))
    return {"Results": results, "UnprocessedRecords": unprocessed}


def register_usage(state: State, caller: Credential, body: dict[str, Any], op: Operation) -> dict[str, Any]:
    """RegisterUsage: a PS256 JWT; entitlement is checked only on a caller's first successful call."""
    product = _product(state, body["ProductCode"])
    version: int = body["PublicKeyVersion"]
    current = state.config.public_key_version
    if version > current:
        raise AwsError("InvalidPublicKeyVersionException", f"Public key version {version} is not valid.")
    first = (caller.caller_id, product.code) not in state.registered
    if first:
        if op.platforms is not None and caller.platform is not None and caller.platform not in op.platforms:
            raise AwsError("PlatformNotSupportedException",
                           "This operation can only be called from within an ECS task or an EKS pod.")
        if caller.resource_region is not None and caller.resource_region != state.config.region:
            raise AwsError("InvalidRegionException",
                           f"RegisterUsage must be called in the region of the task ({caller.resource_region}).")
        if not _entitled(product, caller, state.now()):
            raise AwsError("CustomerNotEntitledException",
                           f"The customer is not entitled to product {product.code}.")
    state.registered.add((caller.caller_id, product.code))
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


def resolve_customer(state: State, caller: Credential, body: dict[str, Any], op: Operation) -> dict[str, Any]:
    """ResolveCustomer: idempotent within the token lifetime, then ExpiredTokenException (with
    ``singleUseRegistrationTokens``: from the second submission on)."""
    del op  # nothing of the entry changes what ResolveCustomer does
    issued = state.tokens.get(body["RegistrationToken"])
    if issued is None:
        raise AwsError("InvalidTokenException", "Registration token is invalid")
    product = state.fixtures.products.get(issued.product_code)
    if product is not None and product.seller_account_id not in (None, caller.account_id):
        raise AwsError("InvalidTokenException", "Registration token is invalid")
    if state.now() - issued.issued_at >= state.config.token_lifetime_seconds:
        raise AwsError("ExpiredTokenException", "Registration token has expired")
    if issued.resolved and state.config.single_use_registration_tokens:  # "resubmitted" (model)
        raise AwsError("ExpiredTokenException", "Registration token has expired")
    issued.resolved = True
    out: dict[str, Any] = {"ProductCode": issued.product_code}
    c = issued.customer
    # "For new SaaS product integrations, the CustomerIdentifier field is not populated" (botocore 1.44 model)
    if c.customer_identifier is not None and (product is None or product.legacy):
        out["CustomerIdentifier"] = c.customer_identifier
    if c.account_id is not None:
        out["CustomerAWSAccountId"] = c.account_id
    if c.license_arn is not None:
        out["LicenseArn"] = c.license_arn
    if product is not None:
        out["Metadata"] = {"AgreementId": product.agreement_of(c)}
    return out

