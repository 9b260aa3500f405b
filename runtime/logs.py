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


class _Stderr:
    """Whatever sys.stderr is when an event is written: the progress display (live.py) swaps in
    its console's, which prints events above the display."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def isatty(self):
        return sys.stderr.isatty()


def configure(fmt="auto", level="info", stream=None):
    stream = stream or _Stderr()
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


def logger():
    """The logger of a run: structlog's, as the application configured it; when nothing
    configured structlog, a console logger on stderr, so library use never writes to stdout."""
    if structlog.is_configured():
        return structlog.get_logger("consecution")
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S"),
                    structlog.dev.ConsoleRenderer(colors=False)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
