"""Logs its whole cfg and a message body; the sailor's redaction must mask the secrets."""

from typing import Any


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    self.logger.info("cfg is %s", cfg)
    self.logger.info("token %s", cfg.get("token"))
    return {"body": {"ok": True}}
