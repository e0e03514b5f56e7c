"""The README documents every admin endpoint, config key, fault type, fixture key and CLI option."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from metering_emulator import admin, cli
from metering_emulator.faults import FAULT_TYPES
from metering_emulator.state import Config

README = (Path(__file__).resolve().parents[2] / "emulator" / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("name", "method"), [(n, m) for n, route in admin.ROUTES.items() for m in route])
def test_every_admin_endpoint_is_documented(name: str, method: str) -> None:
    assert re.search(rf"`{method}[^`]* {re.escape(name)}`", README), f"{method} {name} missing from the README"


@pytest.mark.parametrize("key", list(Config.NAMES))
def test_every_config_key_is_documented(key: str) -> None:
    assert f"| `{key}` |" in README


@pytest.mark.parametrize("kind", FAULT_TYPES)
def test_every_fault_type_is_documented(kind: str) -> None:
    assert f"| `{kind}` |" in README


@pytest.mark.parametrize("option", [a.option_strings[0] for a in cli.build_parser()._actions
                                    if a.option_strings and a.option_strings[0] != "-h"])
def test_every_cli_option_is_documented(option: str) -> None:
    assert f"`{option}" in README


@pytest.mark.parametrize("key", ["sessionToken", "accountId", "resourceRegion", "platform", "deniedOperations",
                                 "sellerAccountId", "concurrentAgreements", "subscribed", "registrationTokens",
                                 "expired",
                                 "subscribedAt", "unsubscribedAt", "integration", "agreementId", "licenseStart",
                                 "licenseEnd"])
def test_every_fixture_key_is_documented(key: str) -> None:
    assert re.search(rf"\| `[^`|]*\b{key}\b[^`|]*` \|", README), f"no fixtures-table row for {key}"
