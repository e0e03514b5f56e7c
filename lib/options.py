"""The step options of the actions (fields of component.json), typed and read once.

Their defaults live in one place, schemas/config.json (which also drives the UI's notes and the
validation); this module reads them from there, so code never restates a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .schema import load_ui_schema


@cache
def _defaults() -> dict[str, Any]:
    props = load_ui_schema("config.json")["properties"]
    return {name: prop["default"] for name, prop in props.items() if "default" in prop}


@dataclass(frozen=True)
class StepOptions:
    """What a Batch Meter Usage step was configured to do (the other actions have no step options)."""

    emit_per_record: bool
    out_of_window: str  # "skip" | "fail"
    window_hours: int
    same_hour_records: str  # "send" | "sum"

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> StepOptions:
        """Options of a step ``cfg`` already validated against schemas/config.json; absent → defaults."""
        defaults = _defaults()

        def pick(name: str) -> Any:
            value = cfg.get(name)
            return defaults.get(name) if value in (None, "") else value

        return cls(emit_per_record=bool(pick("emitPerRecord")), out_of_window=str(pick("outOfWindow")),
                   window_hours=int(pick("timestampWindowHours")),
                   same_hour_records=str(pick("sameHourRecords")))
