"""Changes what process() got in msg["passthrough"] (body["change"]: "edit" one entry in place, or "drop"
the whole passthrough), then returns the body: the outgoing passthrough must not show either change."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    if msg["body"]["change"] == "edit":
        msg["passthrough"]["step_1"]["body"]["first"] = "changed by step_2"
    else:
        msg.pop("passthrough")
    return {"body": msg["body"]}
