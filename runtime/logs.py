"""Logging: structlog key-value events, rendered for a terminal or as JSON lines.

`configure("console" | "json" | "auto")` sets structlog up for the command line: events go
to stderr (stdout stays free for data), "auto" picks console on a terminal and JSON
otherwise. Library use leaves structlog's configuration to the application.
"""
import logging
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def configure(fmt="auto", level="info", stream=None):
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if fmt not in ("console", "json"):
        raise ValueError(f"log format must be console or json, got {fmt!r}")
    renderer = (structlog.dev.ConsoleRenderer(colors=stream.isatty()) if fmt == "console"
                else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    return fmt
