"""getMetaModel fails quoting the cfg (with a chained cause); verify=reason returns a reason quoting it."""

from typing import Any


def getMetaModel(cfg: dict[str, Any]) -> dict[str, Any]:  # name fixed by the platform
    try:
        raise ConnectionError(f"refused: {cfg!r}")
    except ConnectionError as cause:
        raise RuntimeError(f"no model for pin {cfg['pin']} and key {cfg['apiKey']}") from cause


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    return None
