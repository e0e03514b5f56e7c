"""Which metering operations each region offers, so verifyCredentials probes only with what exists there.

Source: AWS Marketplace Metering Service API reference, "Metering Service Regions"
(https://docs.aws.amazon.com/marketplace/latest/APIReference/metering-regions.html), summarised in
README.md (Credentials, "Verify credentials"): BatchMeterUsage and ResolveCustomer run in the commercial
regions and cn-northwest-1 (no GovCloud); MeterUsage runs in the commercial regions and the two GovCloud
regions (not in China); RegisterUsage (ECS/EKS containers) runs in the commercial regions only. Every other
region of schemas/config.json is a commercial region that offers all four.
"""

from __future__ import annotations

ALL_OPERATIONS = ("resolveCustomer", "batchMeterUsage", "meterUsage", "registerUsage")

# Regions that offer only some operations (action names as in lib/operations.py).
PARTIAL_REGIONS: dict[str, tuple[str, ...]] = {
    "us-gov-west-1": ("meterUsage",),
    "us-gov-east-1": ("meterUsage",),
    "cn-northwest-1": ("batchMeterUsage", "resolveCustomer"),
}


def operations_in(region: str) -> tuple[str, ...]:
    """The actions ``region`` offers, in the order verifyCredentials probes them."""
    offered = PARTIAL_REGIONS.get(region)
    if offered is None:
        return ALL_OPERATIONS
    return tuple(action for action in ALL_OPERATIONS if action in offered)
