"""Structured JSON log lines; secrets (crypto password, API key, cfg credentials) are redacted."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest
from elasticio_sailor.logs import REDACTOR, Redactor, config_secrets, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging takes over the root logger and warnings; give them back to pytest afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def test_given_config_when_collecting_secrets_then_secret_keys_and_long_values() -> None:
    cfg = {"apiKey": "k1", "accessKeyId": "AKIA0000", "region": "us-east-1", "nested": {"password": "pw1"},
           "n": 3, "short": "abc"}
    secrets = config_secrets(cfg)
    assert {"k1", "AKIA0000", "us-east-1", "pw1"} <= set(secrets)
    assert "abc" not in secrets


def test_given_registered_secret_when_redacting_then_every_occurrence_masked() -> None:
    r = Redactor()
    r.add(["s3cr3t-value", "ab"])
    assert r("x s3cr3t-value y s3cr3t-value ab") == "x *** y *** ab"


def test_given_component_logs_cfg_when_formatted_then_json_line_without_the_secret() -> None:
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "info", "ELASTICIO_FLOW_ID": "flow1", "ELASTICIO_STEP_ID": "s2"}, stream=out)
    REDACTOR.add_config({"secretAccessKey": "wJalr/Secret+Key-123"})
    logging.getLogger("component").info("cfg is %s", {"secretAccessKey": "wJalr/Secret+Key-123"},
                                        extra={"messageId": "m1"})
    line = json.loads(out.getvalue().strip())
    assert "wJalr/Secret+Key-123" not in out.getvalue()
    assert "***" in line["msg"]
    assert line["name"] == "component"
    assert line["level"] == 30
    assert line["v"] == 0
    assert line["messageId"] == "m1"
    assert line["flow_id"] == "flow1"
    assert line["time"].endswith("Z")


def test_given_warn_level_when_logging_info_then_nothing_written() -> None:
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "warn"}, stream=out)
    logging.getLogger("sailor").info("quiet")
    logging.getLogger("sailor").warning("loud")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["loud"]
    assert lines[0]["level"] == 40


def test_given_module_and_root_loggers_when_logging_then_json_lines_at_the_level_redacted() -> None:
    out = io.StringIO()
    setup_logging({"LOG_LEVEL": "info"}, stream=out)
    REDACTOR.add(["module-logger-secret-5"])
    logging.getLogger("some_component.client").info("retrying with module-logger-secret-5")
    logging.getLogger("some_component.client").debug("too detailed")
    logging.warning("from the root logger")  # noqa: LOG015 - the root logger on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["name"], x["logger"], x["level"]) for x in lines] == [
        ("component", "some_component.client", 30), ("component", "root", 40), ("component", "py.warnings", 40)]
    assert lines[0]["msg"] == "retrying with ***"
    assert "deprecated thing" in lines[2]["msg"]
