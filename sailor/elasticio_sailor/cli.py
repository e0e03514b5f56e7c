"""Command line: flow-step mode (no arguments), ``service <method>``, ``local …``."""

from __future__ import annotations

import logging
import sys

from .logs import setup_logging

USAGE = (
    "usage: elasticio-sailor                      run the flow step described by ELASTICIO_* variables\n"
    "       elasticio-sailor service <verifyCredentials|getMetaModel|selectModel>\n"
    "       elasticio-sailor local --component DIR --function NAME --cfg FILE "
    "[--message FILE|-] [--snapshot FILE]\n"
)


def main(argv: list[str] | None = None) -> int:
    """Dispatch on the first argument; returns the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "local":
        # stdout carries the event lines; logs go to stderr
        setup_logging(stream=sys.stderr)
        from .local import main as local_main

        return local_main(args[1:])
    setup_logging()
    log = logging.getLogger("sailor")
    if args and args[0] == "service":
        if len(args) < 2:
            sys.stderr.write(USAGE)
            return 2
        from .service import run_service

        return run_service(args[1])
    if args:
        sys.stderr.write(USAGE)
        return 2
    from .settings import SettingsError, load_settings
    from .step import run_flow_step

    try:
        settings = load_settings()
    except SettingsError as exc:
        log.critical("Invalid environment: %s", "; ".join(exc.problems), extra={"missing": exc.problems})
        return 1
    return run_flow_step(settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
