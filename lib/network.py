"""Where the connector's HTTP goes and what it trusts, the same for its two clients: requests for the metering
calls (lib/client.py) and botocore for STS (lib/credentials.py)."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from .errors import ErrorClass, Kind, MeteringError


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a URL's host name, an IPv6 address possibly in brackets) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_url(url: str | None) -> bool:
    """Whether ``url`` points at this machine: such an endpoint (an emulator, a local forwarder) is never
    reached through the environment's proxy."""
    return bool(url) and is_loopback(urlsplit(url or "").hostname or "")


# The variables that name a TLS certificate bundle to trust instead of requests' own (certifi), in the order
# they are read: botocore's, then requests' (a proxy that re-signs TLS, a VPC endpoint with a private CA).
CA_BUNDLE_VARIABLES = ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def ca_bundle() -> str | bool:
    """The certificate bundle to verify the endpoint with: the file (or directory) the first variable of
    :data:`CA_BUNDLE_VARIABLES` names, else True (requests' own). Verification is never switched off."""
    for name in CA_BUNDLE_VARIABLES:
        path = os.environ.get(name, "").strip()
        if path:
            if not os.path.exists(path):
                raise MeteringError("InvalidCABundle", f"{name} names {path}, which does not exist",
                                    operation="configuration",
                                    classification=ErrorClass(False, Kind.REGION, f"set {name} to the path of a "
                                                              "PEM certificate bundle, or unset it"))
            return path
    return True
