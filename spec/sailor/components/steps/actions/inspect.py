"""Emits what process() received: msg, cfg, snapshot, flow variables and self.message_id."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    return {
        "body": {
            "msg": msg,
            "cfg": cfg,
            "snapshot": snapshot,
            "vars": self.get_flow_variables(),
            "messageId": self.message_id,
        }
    }
