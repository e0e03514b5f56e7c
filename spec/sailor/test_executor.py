"""Outcome → events: returned value, None, raise, Rebound, explicit emits, end once.

Node lib/executor.js; docs/platform-contract.md §6.10.
"""

from __future__ import annotations

import logging
import types
from typing import Any

import pytest
from elasticio_sailor import Rebound
from elasticio_sailor.component import ComponentError, ComponentReader, component_root
from elasticio_sailor.executor import TaskContext, run_function

from spec.sailor.helpers import STEPS


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_event(self, ctx: TaskContext, event: str, payload: Any) -> None:
        self.events.append((event, payload))


def run(process: Any, msg: dict[str, Any] | None = None) -> tuple[Recorder, TaskContext]:
    module = types.ModuleType("m")
    if process is not None:
        module.process = process  # type: ignore[attr-defined]
    rec = Recorder()
    ctx = TaskContext(rec, message_id="mid-1", variables={"v": 1})
    run_function(module, ctx, msg or {"body": {}}, {"c": 1}, {"s": 1})
    return rec, ctx


def names(rec: Recorder) -> list[str]:
    return [e[0] for e in rec.events]


def test_given_truthy_return_when_running_then_data_then_end() -> None:
    rec, ctx = run(lambda self, msg, cfg, snap: {"body": {"x": 1}})
    assert rec.events == [("data", {"body": {"x": 1}}), ("end", None)]
    assert ctx.error_count == 0


@pytest.mark.parametrize("value", [None, {}, 0, ""])
def test_given_falsy_return_when_running_then_only_end(value: Any) -> None:
    rec, _ = run(lambda self, msg, cfg, snap: value)
    assert names(rec) == ["end"]


def test_given_an_async_process_when_running_then_its_explicit_emits_and_result_are_emitted() -> None:
    """``async def process`` (a Node component may return a promise): run to completion, then its value."""
    import asyncio

    async def process(self: Any, msg: Any, cfg: Any, snap: Any) -> dict[str, Any]:
        await asyncio.sleep(0)
        self.emit("data", {"body": {"early": True}})
        await asyncio.sleep(0)
        return {"body": {"x": msg["body"]["n"] + cfg["c"]}}

    rec, ctx = run(process, {"body": {"n": 1}})
    assert rec.events == [("data", {"body": {"early": True}}), ("data", {"body": {"x": 2}}), ("end", None)]
    assert ctx.error_count == 0


@pytest.mark.parametrize("raised", [KeyError("k"), Rebound("later")])
def test_given_an_async_process_that_raises_when_running_then_error_or_rebound_then_end(raised: Exception) -> None:
    async def process(self: Any, msg: Any, cfg: Any, snap: Any) -> None:
        raise raised

    rec, _ = run(process)
    assert names(rec) == ["rebound" if isinstance(raised, Rebound) else "error", "end"]
    assert rec.events[0][1] is raised


def test_given_exception_when_running_then_error_then_end_and_counted() -> None:
    def process(self: Any, msg: Any, cfg: Any, snap: Any) -> None:
        raise KeyError("k")

    rec, ctx = run(process)
    assert names(rec) == ["error", "end"]
    assert isinstance(rec.events[0][1], KeyError)
    assert ctx.error_count == 1


def test_given_rebound_when_running_then_rebound_then_end_without_error() -> None:
    def process(self: Any, msg: Any, cfg: Any, snap: Any) -> None:
        raise Rebound("later")

    rec, ctx = run(process)
    assert names(rec) == ["rebound", "end"]
    assert ctx.error_count == 0


def test_given_explicit_emits_and_end_when_running_then_end_only_once() -> None:
    def process(self: Any, msg: Any, cfg: Any, snap: Any) -> None:
        self.emit("data", {"body": 1})
        self.emit("snapshot", {"a": 1})
        self.emit("end")
        self.emit("end")

    rec, _ = run(process)
    assert names(rec) == ["data", "snapshot", "end"]


def test_given_unknown_event_when_emitting_then_ignored() -> None:
    rec, _ = run(lambda self, msg, cfg, snap: self.emit("bogus", 1))
    assert names(rec) == ["end"]


def test_given_no_process_function_when_running_then_error_process_not_found() -> None:
    rec, ctx = run(None)
    assert names(rec) == ["error", "end"]
    assert rec.events[0][1]["message"] == "Process function is not found"
    assert ctx.error_count == 1


def test_given_context_when_reading_then_message_id_and_copied_flow_variables() -> None:
    seen: dict[str, Any] = {}

    def process(self: Any, msg: Any, cfg: Any, snap: Any) -> None:
        seen["mid"] = self.message_id
        seen["vars"] = self.get_flow_variables()
        seen["vars"]["v"] = 2
        seen["again"] = self.get_flow_variables()

    run(process)
    assert seen == {"mid": "mid-1", "vars": {"v": 2}, "again": {"v": 1}}


def test_given_component_json_when_finding_functions_then_trigger_and_action_modules_load() -> None:
    reader = ComponentReader(STEPS)
    assert reader.load("tick").process is reader.load("tick").process
    assert reader.find("echo")["main"] == "./actions/echo.py"


@pytest.mark.parametrize(
    "name, message",
    [("nope", 'Trigger or action "nope" is not found in component.json!'),
     ("missing_file", "Failed to load file './actions/does_not_exist.py'")],
)
def test_given_bad_function_when_loading_then_node_worded_error(name: str, message: str) -> None:
    with pytest.raises(ComponentError) as info:
        ComponentReader(STEPS).load(name)
    assert str(info.value).startswith(message)


def test_given_directory_without_component_json_when_reading_then_error(tmp_path: Any) -> None:
    with pytest.raises(ComponentError, match="Failed to load component.json"):
        ComponentReader(tmp_path)


def test_given_context_when_logging_then_logger_is_a_logging_logger_with_message_context() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    component = logging.getLogger("component")
    handler = Keep()
    component.addHandler(handler)
    old_level = component.level
    component.setLevel(logging.INFO)
    try:
        ctx = TaskContext(Recorder(), log_context={"messageId": "m-9", "threadId": "t-9"})
        assert isinstance(ctx.logger, logging.Logger)
        ctx.logger.info("hello %s", "there")
        ctx.logger.debug("not shown")
    finally:
        component.removeHandler(handler)
        component.setLevel(old_level)
    [record] = records
    assert record.getMessage() == "hello there"
    assert (record.messageId, record.threadId) == ("m-9", "t-9")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "component_path, expected",
    [("", "/work/x"), ("spec/component", "/work/x/spec/component"), ("/spec/component", "/work/x/spec/component")],
)
def test_given_component_path_when_resolving_then_joined_onto_cwd_like_node(component_path: str, expected: str) -> None:
    assert str(component_root(component_path, cwd="/work/x")) == expected
