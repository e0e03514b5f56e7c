"""Batch Meter Usage: meter any number of SaaS usage records (sent in calls of at most 25)."""

from __future__ import annotations

from typing import Any

from lib.operations import OPERATIONS
from lib.options import StepOptions
from lib.runner import run
from lib.schema import load_ui_schema

OPERATION = OPERATIONS["batchMeterUsage"]


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any] | None:
    """Called by the sailor once per message; returns the outgoing message or raises."""
    return run(OPERATION, self, msg, cfg)


def getMetaModel(cfg: dict[str, Any]) -> dict[str, Any]:  # noqa: N802 - the name the platform calls
    """The step's metadata for the platform's mapping UI (component.json ``dynamicMetadata``): with "One
    message per record" the next step receives one message per record (its own schema), else the summary."""
    out = "batchMeterUsage.record.out.json" if StepOptions.from_cfg(cfg).emit_per_record else OPERATION.out_schema
    return {"in": load_ui_schema(OPERATION.in_schema), "out": load_ui_schema(out)}
