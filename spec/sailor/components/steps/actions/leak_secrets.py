"""Quotes every secret it can reach — the cfg values and the platform's secret variables — in every form
(verbatim, percent-encoded in a URL, ``repr``) in its logs at every level, in an exception with a chained
cause, in a rebound reason and, with ``cfg["failInit"]``, in a failing init hook. The sailor must mask
them all before anything leaves the process."""

import logging
import os
import urllib.parse
from typing import Any

from elasticio_sailor import Rebound

log = logging.getLogger(__name__)


def leaks(cfg: dict[str, Any]) -> dict[str, str]:
    env = os.environ
    amqp_password = urllib.parse.urlsplit(env["ELASTICIO_AMQP_URI"]).password or ""
    return {
        "pwd": cfg["pwd"], "token": cfg["token"],
        "iv": env["ELASTICIO_MESSAGE_CRYPTO_IV"], "crypto": env["ELASTICIO_MESSAGE_CRYPTO_PASSWORD"],
        "apiKey": env["ELASTICIO_API_KEY"],
        "amqp": amqp_password, "amqpDecoded": urllib.parse.unquote(amqp_password),
    }


def url(cfg: dict[str, Any]) -> str:
    return "https://api.example.com/v1/items?" + urllib.parse.urlencode(leaks(cfg))


def init(cfg: dict[str, Any]) -> None:
    if cfg.get("failInit"):
        try:
            raise ConnectionError(f"refused for {leaks(cfg)!r}")
        except ConnectionError as cause:
            raise RuntimeError(f"cannot init: GET {url(cfg)}") from cause


def process(self: Any, msg: dict[str, Any], cfg: dict[str, Any], snapshot: dict[str, Any]) -> None:
    found = leaks(cfg)
    self.logger.info("cfg is %s", cfg)
    log.debug("Starting new HTTPS connection: GET %s", url(cfg))  # as urllib3 logs it
    log.warning("leaks %s", found)
    logging.error("root logger: %r", list(found.values()))  # noqa: LOG015 - the root logger on purpose
    for name, value in found.items():
        log.info("%s verbatim %s quoted %s", name, value, urllib.parse.quote(value, safe=""))
    if msg["body"].get("mode") == "rebound":
        raise Rebound(f"busy: {url(cfg)} {found}")
    try:
        raise ConnectionError(f"HTTP 401 for {url(cfg)}")
    except ConnectionError as cause:
        raise RuntimeError(f"request failed with {found!r}") from cause
