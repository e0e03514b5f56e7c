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
def _checkboxes() -> frozenset[str]:
    """The fields drawn as a checkbox (boolean in schemas/config.json, ``CheckBoxView`` in component.json)."""
    props = load_ui_schema("config.json")["properties"]
    return frozenset(name for name, prop in props.items() if prop.get("type") == "boolean")


# A checkbox's value: JSON true/false, or the form values the platform may store ("on" when ticked).
_CHECKBOX_VALUES = {True: True, False: False, "on": True, "true": True, "off": False, "false": False}


def form_values(cfg: dict[str, Any]) -> dict[str, Any]:
    """A step's or a credential's fields as the code reads them: a field the user filled and then cleared
    (stored as ``""``) is the same as one left empty, and a checkbox's form value (``"on"``) is a boolean.
    Without this, a cleared optional field would fail its pattern (every message of the step refused)."""
    out = {name: value for name, value in cfg.items() if value != ""}
    for name in _checkboxes() & out.keys():
        value = out[name]
        if isinstance(value, (bool, str)) and value in _CHECKBOX_VALUES:
            out[name] = _CHECKBOX_VALUES[value]
    return out


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
        values = form_values(cfg)

        def pick(name: str) -> Any:
            value = values.get(name)
            return defaults.get(name) if value is None else value

        return cls(emit_per_record=pick("emitPerRecord") is True, out_of_window=str(pick("outOfWindow")),
                   window_hours=int(pick("timestampWindowHours")),
                   same_hour_records=str(pick("sameHourRecords")))
