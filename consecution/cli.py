"""The command line: `consecution run | validate | show`.

Exit status: 0 complete (or stopped by a signal), 1 an error in the runtime or in user code
outside tuple processing, 2 bad usage or an invalid topology, 3 completed with tuples given up.
"""
import argparse
import os
import signal
import sys
import traceback

import structlog

from consecution import show as show_module
from consecution.errors import ConsecutionError
from consecution.loading import UsageError, load
from consecution.runtime import (EXIT_ERROR, EXIT_OK, EXIT_USAGE, MODES, ModeNotAvailable, Scheduler,
                                 UserCodeError)
from consecution.runtime.logs import configure
from consecution.topology import RELIABILITY_LEVELS, TopologyError


def default_state_dir(name):
    """`$STATE_DIRECTORY/<name>` when systemd sets it (the first entry), else
    `./.consecution/<name>`."""
    base = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return os.path.join(base or ".consecution", name)


def _parser():
    p = argparse.ArgumentParser(prog="consecution",
                                description="Run Storm-style topologies with guaranteed processing.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a topology")
    r.add_argument("topology", help="file.py (its `topology`) or file.py:name")
    r.add_argument("--mode", default="single", choices=MODES)
    r.add_argument("--workers", type=_positive_int, default=None,
                   help="threads or processes for --mode thread/process")
    r.add_argument("--state-dir", default=None,
                   help="default: $STATE_DIRECTORY/<name> under systemd, else ./.consecution/<name>")
    r.add_argument("--reliability", choices=RELIABILITY_LEVELS, default=None)
    r.add_argument("--max-retries", type=_non_negative_int, default=None)
    r.add_argument("--message-timeout", type=_positive_float, default=None, metavar="SECONDS")
    r.add_argument("--max-pending", type=_positive_int, default=None)
    r.add_argument("--retry-backoff", type=_non_negative_float, default=None, metavar="SECONDS")
    r.add_argument("--grace", type=_non_negative_float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, how long in-flight tuples may drain (default 30)")
    r.add_argument("--log-format", choices=("auto", "console", "json"), default="auto",
                   help="console on a terminal, JSON otherwise (default: auto)")

    v = sub.add_parser("validate", help="check a topology without running it")
    v.add_argument("topology")

    s = sub.add_parser("show", help="print a topology's graph")
    s.add_argument("topology")
    s.add_argument("--format", choices=("text", "dot"), default="text")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "validate": _validate, "show": _show}[args.command](args)
    except (UsageError, TopologyError, ModeNotAvailable) as exc:
        print(f"consecution: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _validate(args):
    topology = load(args.topology).validate()
    print(f"{args.topology}: topology {topology.name!r} is valid: {len(topology.spouts)} spouts, "
          f"{len(topology.bolts)} bolts, fingerprint {topology.fingerprint()}")
    return EXIT_OK


def _show(args):
    topology = load(args.topology).validate()
    print(show_module.dot(topology) if args.format == "dot" else show_module.text(topology))
    return EXIT_OK


def _run(args):
    configure(args.log_format)
    log = structlog.get_logger("consecution")
    try:
        topology = load(args.topology)
    except (UsageError, TopologyError):
        raise
    except Exception:
        print(f"consecution: importing {args.topology} failed:\n{traceback.format_exc()}", file=sys.stderr)
        return EXIT_ERROR
    if args.mode != "single":
        raise ModeNotAvailable(
            f"--mode {args.mode} is not available in this version: only --mode single runs today "
            "(thread and process modes are planned)")
    if args.workers is not None:
        raise UsageError("--workers applies to --mode thread and --mode process only")
    state_dir = args.state_dir or default_state_dir(topology.name)
    scheduler = Scheduler(topology, mode=args.mode, state_dir=state_dir, grace=args.grace,
                          reliability=args.reliability, max_retries=args.max_retries,
                          message_timeout=args.message_timeout, max_pending=args.max_pending,
                          retry_backoff=args.retry_backoff)
    previous = {sig: signal.signal(sig, lambda *_: scheduler.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = scheduler.run()
    except UserCodeError as exc:
        log.error("run.failed", topology=topology.name, component=exc.component, phase=exc.phase,
                  error=str(exc), traceback=exc.traceback)
        return EXIT_ERROR
    except ConsecutionError as exc:
        log.error("run.failed", topology=topology.name, error=str(exc))
        return EXIT_ERROR
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result.exit_code


def _number(kind, minimum, strict):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if strict else '>='} {minimum}")
        return value
    return parse


_positive_int = _number(int, 0, strict=True)
_non_negative_int = _number(int, 0, strict=False)
_positive_float = _number(float, 0, strict=True)
_non_negative_float = _number(float, 0, strict=False)
