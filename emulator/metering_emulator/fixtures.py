"""Fixtures: the documented default set and the parser that turns a fixtures document into typed data."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import model
from .catalogue import NAMES
from .parsing import parsed, string
from .sigv4 import Credential
from .sts import IDENTITY_KEYS, PLATFORMS, Identity, parse_identity, redact

DEFAULT_FIXTURES: dict[str, Any] = {
    "credentials": [
        {
            "accessKeyId": "AKIAEMULATOR0000TEST",
            "secretAccessKey": "emulator/Secret+Key/DoNotUseInProduction00",
            "accountId": "111122223333",
        },
        {
            "accessKeyId": "ASIAEMULATOR0000TEMP",
            "secretAccessKey": "emulator/Temp+Secret/DoNotUseInProduction0",
            "sessionToken": "emulator-session-token-0000000000000000",
            "accountId": "444455556666",
        },
    ],
    "products": [
        {
            "productCode": "emu-demo-product-0001",
            "dimensions": ["users", "api_calls", "storage_gb"],
            "customers": [
                # legacy customers: AWS still resolves their registration tokens to their account too
                {"customerIdentifier": "cust-demo-0001", "customerAWSAccountId": "210987654321",
                 "agreementId": "agmt-demo-cust-0001"},
                {"customerIdentifier": "cust-demo-0002", "customerAWSAccountId": "210987654322",
                 "agreementId": "agmt-demo-cust-0002"},
                {
                    "customerAWSAccountId": "111122223333",
                    "licenseArn": "arn:aws:license-manager::111122223333:license:"
                    "l-0123456789abcdef0123456789abcdef",
                    "agreementId": "agmt-demo-license-0001",
                },
                {  # a second, concurrent agreement of the same buyer account
                    "customerAWSAccountId": "111122223333",
                    "licenseArn": "arn:aws:license-manager::111122223333:license:"
                    "l-fedcba9876543210fedcba9876543210",
                    "agreementId": "agmt-demo-license-0002",
                },
            ],
        },
        {
            "productCode": "emu-demo-newsaas-0001",
            "integration": "new",
            "dimensions": ["users", "api_calls", "storage_gb"],
            "customers": [
                {
                    "customerAWSAccountId": "111122223333",
                    "licenseArn": "arn:aws:license-manager::111122223333:license:"
                    "l-00000000000000000000000000000new",
                    "agreementId": "agmt-demo-newsaas-0001",
                },
            ],
        },
    ],
    "registrationTokens": [
        {
            "token": "emu-demo-registration-token-0001",
            "productCode": "emu-demo-product-0001",
            "customer": {"customerIdentifier": "cust-demo-0001", "customerAWSAccountId": "210987654321"},
        },
        {
            "token": "emu-demo-registration-token-0002",
            "productCode": "emu-demo-newsaas-0001",
            "customer": {"customerAWSAccountId": "111122223333",
                         "licenseArn": "arn:aws:license-manager::111122223333:license:"
                         "l-00000000000000000000000000000new"},
        },
    ],
}

SECRET_FIELDS = ("secretAccessKey", "sessionToken")
INTEGRATIONS = ("legacy", "new")


# The fixture key of every Customer field.
_CUSTOMER_KEYS = {"customer_identifier": "customerIdentifier", "account_id": "customerAWSAccountId",
                  "license_arn": "licenseArn", "subscribed": "subscribed", "subscribed_at": "subscribedAt",
                  "unsubscribed_at": "unsubscribedAt", "agreement_id": "agreementId",
                  "license_start": "licenseStart", "license_end": "licenseEnd"}


class FixtureError(ValueError):
    """A fixtures document that does not follow the documented format (all problems listed)."""


@dataclass(frozen=True)
class Customer:
    """A customer of one product (one agreement); ``subscribed`` false models an unsubscribed buyer.

    ``subscribed_at`` / ``unsubscribed_at`` (epoch seconds) bound when its usage is honoured: from the
    subscribe-success time until one hour after the unsubscribe. ``license_start`` / ``license_end`` bound
    the license's activation period: a LicenseArn record timestamped outside it is InvalidLicenseException.
    """

    customer_identifier: str | None = None
    account_id: str | None = None
    license_arn: str | None = None
    subscribed: bool = True
    subscribed_at: float | None = None
    unsubscribed_at: float | None = None
    agreement_id: str | None = None
    license_start: float | None = None
    license_end: float | None = None

    def key(self) -> str:
        """Who this customer is for dedupe: identifier, account and license (one agreement each)."""
        return f"{self.customer_identifier or ''}|{self.account_id or ''}|{self.license_arn or ''}"

    def licensed_at(self, timestamp: float) -> bool:
        """Whether ``timestamp`` lies within the license's activation period."""
        if self.license_start is not None and timestamp < self.license_start:
            return False
        return self.license_end is None or timestamp < self.license_end

    def active(self, now: float) -> bool:
        """Whether usage sent at ``now`` is honoured for this customer."""
        if not self.subscribed:
            return False
        if self.subscribed_at is not None and now < self.subscribed_at:
            return False
        return self.unsubscribed_at is None or now <= self.unsubscribed_at + 3600

    def as_json(self) -> dict[str, Any]:
        """The fixture form (camelCase keys; members with their default value left out)."""
        return {_CUSTOMER_KEYS[f.name]: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != f.default}


@dataclass
class Product:
    """A product with its dimensions and subscribed customers.

    ``integration`` ``legacy`` (the default) or ``new``: a SaaS product integrated after the Concurrent
    Agreements change (botocore 1.44 model, BatchMeterUsage and ResolveCustomer docs) gets no
    CustomerIdentifier from ResolveCustomer and may not meter by CustomerIdentifier.
    """

    code: str
    dimensions: list[str]
    customers: list[Customer]
    seller_account_id: str | None = None
    concurrent_agreements: bool = False
    integration: str = "legacy"
    by_identifier: dict[str, Customer] = field(default_factory=dict, repr=False)
    by_account: dict[str, Customer] = field(default_factory=dict, repr=False)
    by_license: dict[str, Customer] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for c in reversed(self.customers):  # the first declaration wins
            if c.customer_identifier is not None:
                self.by_identifier[c.customer_identifier] = c
            if c.account_id is not None:
                self.by_account[c.account_id] = c
            if c.license_arn is not None:
                self.by_license[c.license_arn] = c

    @property
    def legacy(self) -> bool:
        """A product of the legacy (CustomerIdentifier) integration."""
        return self.integration == "legacy"

    def agreement_of(self, customer: Customer) -> str:
        """The AgreementId of ``customer``: its fixture's ``agreementId``, that of the product's customer
        it names, or one derived from product and customer (stable across runs)."""
        if customer.agreement_id is not None:
            return customer.agreement_id
        known = None
        if customer.license_arn is not None:
            known = self.by_license.get(customer.license_arn)
        if known is None and customer.customer_identifier is not None:
            known = self.by_identifier.get(customer.customer_identifier)
        if known is None and customer.account_id is not None:
            known = self.by_account.get(customer.account_id)
        if known is not None and known.agreement_id is not None:
            return known.agreement_id
        digest = hashlib.sha256(f"{self.code}|{customer.key()}".encode()).hexdigest()
        return "agmt-" + digest[:25]


@dataclass
class TokenSpec:
    """A registration token declared in the fixtures."""

    token: str
    product_code: str
    customer: Customer


@dataclass
class Fixtures:
    """The parsed fixtures plus the original document (kept for ``GET fixtures``)."""

    credentials: dict[str, Credential]
    products: dict[str, Product]
    tokens: list[TokenSpec]
    document: dict[str, Any] = field(default_factory=dict)
    license_products: dict[str, Product] = field(default_factory=dict, repr=False)
    identity: Identity = field(default_factory=Identity, repr=False)  # roles etc. (sts.py)

    def __post_init__(self) -> None:
        for product in reversed(list(self.products.values())):
            for c in product.customers:
                if c.license_arn is not None:
                    self.license_products[c.license_arn] = product

    def redacted(self) -> dict[str, Any]:
        """The document with every secret replaced by ``"***"``."""
        doc = copy.deepcopy(self.document)
        for cred in doc.get("credentials", []):
            for name in SECRET_FIELDS:
                if name in cred:
                    cred[name] = "***"
        redact(doc)
        return doc


def parse_customer(obj: Any, where: str, errors: list[str]) -> Customer | None:
    """Parse one customer object; it needs a customerIdentifier or a customerAWSAccountId."""
    if not isinstance(obj, dict):
        errors.append(f"{where}: must be an object")
        return None
    ident = string(obj, "customerIdentifier", where, errors, required=False)
    account = string(obj, "customerAWSAccountId", where, errors, required=False)
    arn = string(obj, "licenseArn", where, errors, required=False)
    subscribed = obj.get("subscribed", True)
    if not isinstance(subscribed, bool):
        errors.append(f"{where}.subscribed: must be a boolean")
        subscribed = True
    times: dict[str, float | None] = {}
    for key in ("subscribedAt", "unsubscribedAt", "licenseStart", "licenseEnd"):
        value = obj.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value < 1e11):
            errors.append(f"{where}.{key}: must be epoch seconds")
            value = None
        times[key] = value
    agreement = string(obj, "agreementId", where, errors, required=False)
    if agreement is not None and re.fullmatch(r"[A-Za-z0-9_/-]{1,64}", agreement) is None:
        errors.append(f"{where}.agreementId: must be 1-64 of A-Z a-z 0-9 _ / - (the model's AgreementId)")
    for key, value, shape in (("customerIdentifier", ident, model.CUSTOMER_IDENTIFIER),
                              ("customerAWSAccountId", account, model.ACCOUNT_ID),
                              ("licenseArn", arn, model.LICENSE_ARN)):
        rule = None if value is None else model.broken_rule(shape, value)
        if rule is not None:  # ResolveCustomer would answer it, breaking the model's reply shape
            errors.append(f"{where}.{key}: {rule} (the model's {key[0].upper()}{key[1:]})")
    if ident is None and account is None:
        errors.append(f"{where}: needs customerIdentifier or customerAWSAccountId")
        return None
    return Customer(ident, account, arn, subscribed, times["subscribedAt"], times["unsubscribedAt"], agreement,
                    times["licenseStart"], times["licenseEnd"])


def _parse_credential(c: dict[str, Any], where: str, errors: list[str]) -> Credential | None:
    akid = string(c, "accessKeyId", where, errors)
    secret = string(c, "secretAccessKey", where, errors)
    token = string(c, "sessionToken", where, errors, required=False)
    account = string(c, "accountId", where, errors, required=False)
    resource_region = string(c, "resourceRegion", where, errors, required=False)
    platform = string(c, "platform", where, errors, required=False)
    if platform is not None and platform not in PLATFORMS:
        errors.append(f"{where}.platform: must be one of {list(PLATFORMS)}")
    expired = c.get("expired", False)
    if not isinstance(expired, bool):
        errors.append(f"{where}.expired: must be a boolean")
        expired = False
    denied = c.get("deniedOperations", [])
    if not isinstance(denied, list) or any(d not in NAMES for d in denied):
        errors.append(f"{where}.deniedOperations: must be a list drawn from {list(NAMES)}")
        denied = []
    if akid is None or secret is None:
        return None
    return Credential(akid, secret, token, account, resource_region, platform, tuple(denied), expired)


def _parse_product(p: dict[str, Any], where: str, errors: list[str]) -> Product | None:
    code = string(p, "productCode", where, errors)
    rule = None if code is None else model.broken_rule(model.PRODUCT_CODE, code)
    if rule is not None:
        errors.append(f"{where}.productCode: {rule} (the model's ProductCode)")
    dims = p.get("dimensions", [])
    if not isinstance(dims, list) or not all(isinstance(d, str) and d for d in dims):
        errors.append(f"{where}.dimensions: must be an array of non-empty strings")
        dims = []
    for d in dims:
        rule = model.broken_rule(model.DIMENSION, d)
        if rule is not None:
            errors.append(f"{where}.dimensions: '{d[:40]}': {rule} (the model's UsageDimension)")
    custs = p.get("customers", [])
    if not isinstance(custs, list):
        errors.append(f"{where}.customers: must be an array")
        custs = []
    parsed = [parse_customer(c, f"{where}.customers[{j}]", errors) for j, c in enumerate(custs)]
    seller = string(p, "sellerAccountId", where, errors, required=False)
    concurrent = p.get("concurrentAgreements", False)
    if not isinstance(concurrent, bool):
        errors.append(f"{where}.concurrentAgreements: must be a boolean")
        concurrent = False
    integration = p.get("integration", "legacy")
    if integration not in INTEGRATIONS:
        errors.append(f"{where}.integration: must be one of {list(INTEGRATIONS)}")
        integration = "legacy"
    if code is None:
        return None
    return Product(code, list(dims), [c for c in parsed if c is not None], seller, concurrent, integration)


def _parse_token(t: dict[str, Any], where: str, products: dict[str, Product], errors: list[str]) -> TokenSpec | None:
    token = string(t, "token", where, errors)
    code = string(t, "productCode", where, errors)
    customer = parse_customer(t.get("customer"), f"{where}.customer", errors)
    if code is not None and code not in products:
        errors.append(f"{where}.productCode: no product '{code}' in the fixtures")
    if token is None or code is None or customer is None:
        return None
    return TokenSpec(token, code, customer)


def parse_fixtures(doc: Any) -> Fixtures:
    """Parse and check a fixtures document; raise FixtureError listing every problem."""
    errors: list[str] = []
    if not isinstance(doc, dict):
        raise FixtureError("fixtures: must be a JSON object")
    unknown = set(doc) - {"credentials", "products", "registrationTokens", *IDENTITY_KEYS}
    if unknown:
        errors.append(f"fixtures: unknown keys {sorted(unknown)}")
    credentials = {c.access_key_id: c for c in parsed(doc, "credentials", errors, _parse_credential)}
    products = {p.code: p for p in parsed(doc, "products", errors, _parse_product)}
    tokens = parsed(doc, "registrationTokens", errors, lambda t, where, errs: _parse_token(t, where, products, errs))
    identity = parse_identity(doc, errors)
    if errors:
        raise FixtureError("invalid fixtures: " + "; ".join(errors))
    return Fixtures(credentials, products, tokens, copy.deepcopy(doc), identity=identity)


def load_fixtures(source: str | Path | dict[str, Any] | None) -> Fixtures:
    """Fixtures from a file path, a document, or the defaults when ``source`` is None."""
    if source is None:
        return parse_fixtures(DEFAULT_FIXTURES)
    if isinstance(source, dict):
        return parse_fixtures(source)
    try:
        doc = json.loads(Path(source).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FixtureError(f"cannot read fixtures file {source}: {exc}") from exc
    return parse_fixtures(doc)
