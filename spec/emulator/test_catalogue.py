"""The operation catalogue (``metering_emulator.catalogue``) is what the rest of the emulator reads: its
entries are consistent with the Config, the faults and the fixtures that take operation names from it."""

from __future__ import annotations

import dataclasses

import pytest
from metering_emulator import catalogue
from metering_emulator.faults import FaultSpecError, parse_spec
from metering_emulator.fixtures import FixtureError, parse_fixtures
from metering_emulator.state import Config, ConfigError, State


def test_every_window_is_a_config_field_and_the_old_alias_sets_them_all() -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    assert set(catalogue.WINDOWS) == {"batch_meter_usage_window_hours", "meter_usage_window_hours"}
    assert set(catalogue.WINDOWS) <= fields
    config = Config()
    config.update({"timestampWindowHours": 3})
    assert all(getattr(config, window) == 3.0 for window in catalogue.WINDOWS)


def test_the_quota_of_each_entry_is_what_take_quota_enforces() -> None:
    state = State()
    clock = [1000.0]
    state.monotonic = lambda: clock[0]
    for op in catalogue.OPERATIONS.values():
        calls = (op.quota_per_second or 50) + 1
        taken = sum(state.take_quota("111122223333", op.name) for _ in range(calls))
        assert taken == (op.quota_per_second or calls), op.name


def test_faults_default_to_every_operation_and_unprocessed_to_the_batch_ones() -> None:
    assert parse_spec({"type": "throttle"}, 1).operations == catalogue.NAMES
    assert parse_spec({"type": "unprocessed"}, 1).operations == catalogue.UNPROCESSED == ("BatchMeterUsage",)
    with pytest.raises(FaultSpecError, match="applies to BatchMeterUsage only"):
        parse_spec({"type": "unprocessed", "operations": ["MeterUsage"]}, 1)
    with pytest.raises(FaultSpecError, match="drawn from"):
        parse_spec({"type": "throttle", "operations": ["GetEntitlements"]}, 1)


def test_denied_and_disabled_operations_are_drawn_from_the_catalogue() -> None:
    cred = {"accessKeyId": "AKIA1", "secretAccessKey": "s", "deniedOperations": list(catalogue.NAMES)}
    assert parse_fixtures({"credentials": [cred]}).credentials["AKIA1"].denied_operations == catalogue.NAMES
    with pytest.raises(FixtureError, match="deniedOperations"):
        parse_fixtures({"credentials": [{**cred, "deniedOperations": ["GetEntitlements"]}]})
    disableable = [n for n, op in catalogue.OPERATIONS.items() if "DisabledApiException" in op.errors]
    assert sorted(disableable) == ["BatchMeterUsage", "RegisterUsage", "ResolveCustomer"]  # the model's lists
    Config().update({"disabledOperations": disableable})
    with pytest.raises(ConfigError):
        Config().update({"disabledOperations": ["GetEntitlements"]})
    # MeterUsage's modeled errors have no DisabledApiException: the emulator must not answer it there
    with pytest.raises(ConfigError, match="not a modeled error of MeterUsage"):
        Config().update({"disabledOperations": ["MeterUsage"]})


def test_only_the_documented_operations_carry_the_special_rules() -> None:
    ops = catalogue.OPERATIONS
    assert [n for n, op in ops.items() if op.dry_run_member] == ["MeterUsage"]
    assert [n for n, op in ops.items() if op.long_term_key_refusal] == ["MeterUsage", "RegisterUsage"]
    assert ops["RegisterUsage"].platforms == ("ecs", "eks", "fargate")
    assert [n for n, op in ops.items() if op.month_end_cutoff] == ["BatchMeterUsage"]
    assert all(op.iam_action == f"aws-marketplace:{n}" for n, op in ops.items())
