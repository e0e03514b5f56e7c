"""startup returns data for the platform; init and shutdown record their arguments in files (shutdown after
HOOKS_SHUTDOWN_SLEEP seconds, if set: a clean-up that takes a while)."""

import json
import os
import time
from typing import Any


def _record(name: str, value: Any) -> None:
    with open(os.path.join(os.environ["HOOKS_RECORD_DIR"], name + ".json"), "w") as fh:
        json.dump(value, fh)


def startup(cfg: dict[str, Any]) -> dict[str, Any]:
    _record("startup", cfg)
    return {"subscription": "sub-" + cfg["apiKey"]}


def init(cfg: dict[str, Any]) -> None:
    _record("init", cfg)


def shutdown(cfg: dict[str, Any], startup_data: Any) -> None:
    time.sleep(float(os.environ.get("HOOKS_SHUTDOWN_SLEEP", "0")))
    _record("shutdown", {"cfg": cfg, "data": startup_data})


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    return {"body": msg["body"]}
