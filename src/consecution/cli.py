"""The command line: `consecution run | status | dead-letters | validate | show`.

Exit status: 0 complete (or stopped by a signal), 1 an error in the runtime or in user code
outside tuple processing, 2 bad usage or an invalid topology, 3 completed with tuples given up,
4 abandoned: user code had not returned `--grace` + 5 s after a stop signal, or held the
scheduler thread or a worker thread past `--task-timeout` (ended as a kill would end it: what
the log committed is kept; the next run isolates the records that were in flight).

Fields resolved late (an `Output` spout without `fields=`) are looked for by `validate` and
`show`, which say when they are not known yet (exit 0), and waited for by `run` before it
starts (`output.waiting`; a signal then stops it with exit 0).
"""
import argparse
import difflib
import json
import os
import signal
import stat
import sys
import threading
import time
import traceback

import lmdb
import structlog

from consecution import show as show_module
from consecution.errors import ConsecutionError
from consecution.loading import UsageError, load
from consecution.runtime import (EXIT_ERROR, EXIT_OK, EXIT_USAGE, MODES, ModeNotAvailable, Scheduler, SetupError,
                                 UserCodeError, wait_for_fields)
from consecution.runtime.logs import configure
from consecution.runtime.live import LiveProgress
from consecution.runtime.metrics import parse_address
from consecution.runtime.observe import PROGRESS_EVERY, ProgressLog, SystemdNotify
from consecution.runtime.watchdog import abandon
from consecution.storage import DURABILITY, DamagedLog, DurableLog, StorageError, holder
from consecution.topology import RELIABILITY_LEVELS, TopologyError

ABANDON_AFTER = 5.0  # seconds after the grace period for close and cleanup, before the watchdog ends the run


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
                   help="threads (--mode thread, default 4), processes (--mode process, default: "
                        "the number of cores) or actors (--mode ray, default: the cluster's CPUs); "
                        "single mode ignores it")
    r.add_argument("--start-method", choices=("fork", "spawn"), default=None,
                   help="how --mode process starts its workers (default fork)")
    r.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="--mode ray: the cluster, as ray.init takes it (auto, HOST:PORT); default "
                        "$RAY_ADDRESS, else a local Ray started for the run")
    r.add_argument("--state-dir", default=None,
                   help="default: $STATE_DIRECTORY/<name> under systemd, else ./.consecution/<name>")
    r.add_argument("--reliability", choices=RELIABILITY_LEVELS, default=None)
    r.add_argument("--max-retries", type=_non_negative_int, default=None)
    r.add_argument("--message-timeout", type=_positive_float, default=None, metavar="SECONDS")
    r.add_argument("--max-pending", type=_positive_int, default=None)
    r.add_argument("--retry-backoff", type=_non_negative_float, default=None, metavar="SECONDS")
    r.add_argument("--checkpoint-interval", type=_positive_float, default=None, metavar="SECONDS",
                   help="stateful bolts: the most seconds between two checkpoints (default 0.2)")
    r.add_argument("--task-timeout", type=_positive_float, default=None, metavar="SECONDS",
                   help="the most seconds user code may hold a task while tuples are processed; past "
                        "it the task is ended as a crash (a worker process is killed, else the run "
                        "exits 4) and the record that hangs it is isolated and charged (default: none; "
                        "less than the message timeout)")
    r.add_argument("--durability", choices=DURABILITY, default="kill",
                   help="kill: the log survives SIGKILL of the process (default); "
                        "power: also power loss (fsync on every commit, slower)")
    r.add_argument("--grace", type=_non_negative_float, default=30.0, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, how long in-flight tuples may drain (default 30)")
    r.add_argument("--log-format", choices=("auto", "console", "json"), default="auto",
                   help="console on a terminal, JSON otherwise (default: auto)")
    r.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no live progress display on a terminal (run.progress log events instead)")
    r.add_argument("--progress-interval", type=_non_negative_float, default=PROGRESS_EVERY, metavar="SECONDS",
                   help=f"seconds between run.progress log events when there is no live display "
                        f"(default {PROGRESS_EVERY:g}; 0: none)")
    r.add_argument("--metrics-port", default=None, metavar="[HOST:]PORT", type=_metrics_address,
                   help="serve Prometheus metrics at http://HOST:PORT/metrics (HOST: 127.0.0.1 unless given; "
                        "0.0.0.0 for every interface)")
    r.add_argument("--fresh", action="store_true",
                   help="start over: delete the state directory's log first (spout positions, pending records, "
                        "state, named outputs and dead letters: save dead letters first with "
                        "`consecution dead-letters --json`); refused while another run holds it")

    st = sub.add_parser("status", help="what a state directory holds (works while a run holds it)")
    st.add_argument("--state-dir", required=True)
    st.add_argument("--json", action="store_true")

    d = sub.add_parser("dead-letters", help="list, requeue or purge the records given up")
    d.add_argument("--state-dir", required=True)
    d.add_argument("--json", action="store_true", help="one JSON object per line (the default "
                   "when stdout is not a terminal)")
    action = d.add_mutually_exclusive_group()
    action.add_argument("--requeue", action="store_true",
                        help="move them back to the log: the next run replays them with a fresh attempt count")
    action.add_argument("--purge", action="store_true", help="delete them")
    d.add_argument("--seq", "--root", dest="seq", type=int, default=None,
                   help="act on the dead letter of this sequence number only (--root: its older name)")

    v = sub.add_parser("validate", help="check a topology without running it")
    v.add_argument("topology")

    s = sub.add_parser("show", help="print a topology's graph, or draw it (svg, png: Graphviz's dot)")
    s.add_argument("topology")
    s.add_argument("--format", choices=("text", "dot", "svg", "png"), default="text")
    s.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="write to FILE (needed for svg and png) instead of stdout")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "validate": _validate, "show": _show, "status": _status,
                "dead-letters": _dead_letters}[args.command](args)
    except (UsageError, TopologyError, ModeNotAvailable, StorageError, SetupError) as exc:
        print(f"consecution: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except lmdb.Error as exc:  # garbled pages: LMDB's CorruptedError, PageNotFoundError, ...
        where = os.path.join(getattr(args, "state_dir", None) or "the state directory", "log")
        print(f"consecution: {DamagedLog(where, f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `consecution show t.py | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _validate(args):
    """Valid, or valid as far as it is known: fields not known yet are no error (a run waits
    for them and checks what depends on them then); each is named with the reason."""
    topology = load(args.topology).validate(allow_unknown=True)
    counts = f"{len(topology.spouts)} spouts, {len(topology.bolts)} bolts"
    unknown = topology.unknown_fields()
    if not unknown:
        print(f"{args.topology}: topology {topology.name!r} is valid: {counts}, fingerprint {topology.fingerprint()}")
        return EXIT_OK
    print(f"{args.topology}: topology {topology.name!r} is valid as far as it is known: {counts}, "
          f"fingerprint not known yet (fields not known yet: {', '.join(sorted(unknown))})")
    for exc in unknown.values():
        print(f"  {exc}; `consecution run` waits for them, then checks what depends on them")
    return EXIT_OK


def _show(args):
    # an open topology is drawn, not run; fields not known yet are drawn as such
    if args.format in ("svg", "png") and args.output is None:
        raise UsageError(f"--format {args.format} writes a picture: name its file with -o FILE")
    topology = load(args.topology).validate(allow_open=True, allow_unknown=True)
    if args.format in ("svg", "png"):
        show_module.draw(topology, args.format, args.output)
        print(f"{args.output}: topology {topology.name!r} drawn as {args.format}", file=sys.stderr)
        return EXIT_OK
    text = show_module.dot(topology) if args.format == "dot" else show_module.text(topology)
    if args.output is None:
        print(text)
        return EXIT_OK
    try:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    return EXIT_OK


def _run(args):
    log_format = configure(args.log_format)
    log = structlog.get_logger("consecution")
    try:
        topology = load(args.topology, spawn=args.start_method == "spawn")
    except (UsageError, TopologyError):
        raise
    except Exception as exc:
        print(f"consecution: importing {args.topology} failed:\n{_from_user_code(exc, args.topology)}",
              file=sys.stderr)
        return EXIT_ERROR
    state_dir = args.state_dir or default_state_dir(topology.name)
    notify = SystemdNotify.from_environ()
    if not _wait_for_fields(topology, log, notify):
        return EXIT_OK
    observers = [notify] if notify is not None else []
    if args.progress and sys.stderr.isatty():
        observers.append(LiveProgress())
    elif args.progress_interval:
        observers.append(ProgressLog(args.progress_interval))
    scheduler = Scheduler(topology, mode=args.mode, workers=args.workers, start_method=args.start_method,
                          ray_address=args.ray_address, fresh=args.fresh,
                          state_dir=state_dir, grace=args.grace,
                          durability=args.durability,
                          reliability=args.reliability, max_retries=args.max_retries,
                          message_timeout=args.message_timeout, max_pending=args.max_pending,
                          retry_backoff=args.retry_backoff, checkpoint_interval=args.checkpoint_interval,
                          task_timeout=args.task_timeout, observers=observers, metrics_port=args.metrics_port)
    watchdog = []

    def on_signal(*_):
        if not watchdog:  # the first signal: the run has grace + ABANDON_AFTER seconds to end
            waited = args.grace + ABANDON_AFTER
            watchdog.append(threading.Timer(waited, abandon, (scheduler, "run.abandoned"), {
                "waited": waited, "reason": "user code did not return within the grace period after a stop signal"}))
            watchdog[0].daemon = True
            watchdog[0].start()
        scheduler.signalled()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = scheduler.run()
    except StorageError as exc:
        print(f"consecution: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UserCodeError as exc:
        if log_format == "json":
            log.error("run.failed", topology=topology.name, component=exc.component, phase=exc.phase,
                      error=str(exc), traceback=exc.traceback)
        else:  # on a terminal: the event, then the traceback as Python prints it
            log.error("run.failed", topology=topology.name, component=exc.component, phase=exc.phase,
                      error=str(exc))
            print(exc.traceback, file=sys.stderr, end="")
        return EXIT_ERROR
    except ConsecutionError as exc:
        log.error("run.failed", topology=topology.name, error=str(exc))
        return EXIT_ERROR
    finally:
        if watchdog:
            watchdog[0].cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return result.exit_code


def _wait_for_fields(topology, log, notify):
    """Wait until the topology's late fields are known (`output.waiting` meanwhile; under
    systemd, still starting); False if SIGTERM or SIGINT came first (logged as `run.stopped`:
    the run never started)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    waiting = None
    if notify is not None:
        waiting = lambda: notify.waiting("waiting for the fields of " + ", ".join(sorted(topology.unknown_fields())))
    try:
        if wait_for_fields(topology, stop, waiting) and not stop.is_set():  # a signal during the last look stops too
            return True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("run.stopped", topology=topology.name, reason="stopped while waiting for fields not known yet",
             components=sorted(topology.unknown_fields()))
    return False


def _open_log(path):
    try:
        found = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such state directory") from None
    except OSError as exc:  # there may be one: it cannot be looked at
        raise UsageError(f"cannot read the state in {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(found.st_mode):
        raise UsageError(f"{path}: not a state directory (a file)")
    return DurableLog(path, readonly=True)


def _status(args):
    log = _open_log(args.state_dir)
    try:
        oldest = log.oldest_pending()
        info = {
            "state_dir": args.state_dir,
            "topology": log.get_meta("name"),
            "fingerprint": log.get_meta("fingerprint"),
            "pending": log.pending_count(),
            "oldest_pending_age": round(time.time() - oldest.first_seen, 3) if oldest else None,
            "dead_letters": log.dead_count(),
            "positions": log.positions(),
            "state_entries": {f"{c}/{t}": n for (c, t), n in sorted(log.states().items())},
            "outputs": _outputs(log),
            "running_pid": holder(args.state_dir),
            # "open" while a run runs, or after one crashed; its records in flight are then suspects
            "last_run": log.get_meta("run"),
            "suspects": len((log.get_meta("isolation") or [[]])[0]),
        }
    finally:
        log.close()
    if args.json:
        print(json.dumps(info))
        return EXIT_OK
    for key, value in info.items():
        if key == "outputs" and value:  # one line per output: each carries its consumers
            print("outputs:")
            for name, output in value.items():
                print(f"  {name + ':':<18}{json.dumps(output)}")
            continue
        print(f"{key + ':':<20}{json.dumps(value) if isinstance(value, dict) else value}")
    return EXIT_OK


def _outputs(log):
    """Each named output the log holds, with its registered consumers and how far each lags
    behind the output's last entry. {} for a log written before outputs existed."""
    out = {}
    for name, info in sorted(log.outputs().items()):
        last = info["next"] - 1
        consumers = {consumer: {"position": position, "lag": last - position}
                     for consumer, position in sorted(log.consumers(name).items())}
        out[name] = {"id": info.get("id"), "fields": info["fields"], "length": info["length"], "last": last,
                     "trimmed": info["trimmed"], "closed": info["closed"], "consumers": consumers}
    return out


def _dead_letters(args):
    if args.requeue or args.purge:
        _open_log(args.state_dir).close()  # refuses a path that holds no state: never creates one
        pid = holder(args.state_dir)
        if pid is not None:
            raise UsageError(f"state directory {args.state_dir} is in use by a running topology (pid {pid}); "
                             "stop it before --requeue or --purge")
        from consecution.storage import StateLock
        with StateLock(args.state_dir):
            log = DurableLog(args.state_dir)
            try:
                n = log.requeue(args.seq) if args.requeue else log.purge(args.seq)
            finally:
                log.close()
        print(f"{'requeued' if args.requeue else 'purged'} {n} dead letters", file=sys.stderr)
        return EXIT_OK
    log = _open_log(args.state_dir)
    try:  # streamed: 50,000 letters are printed as they are read, not loaded first
        letters = log.dead_letters(args.seq) if args.seq is not None else log.iter_dead_letters()
        as_json = args.json or not sys.stdout.isatty()
        for letter in letters:
            row = letter.as_dict()
            if as_json:
                print(json.dumps(row, default=repr))
                continue
            print(f"seq {row['seq']} from {row['spout']}: {row['values']!r}\n"
                  f"  failed in {row['component']} (task {row['task']}) after {row['attempts']} attempts: "
                  f"{row['error']}")
            for line in (row["traceback"] or "").rstrip().splitlines():
                print(f"    {line}")
    finally:
        log.close()
    return EXIT_OK


def _from_user_code(exc, spec):
    """The traceback of an exception raised while importing a topology file, from the file's
    own first frame on (the loader's and importlib's frames say nothing to its author)."""
    path = os.path.abspath(spec.partition(":")[0])
    tb = exc.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    if isinstance(exc, AttributeError) and getattr(exc, "name", None) and getattr(exc, "obj", None) is not None:
        close = difflib.get_close_matches(exc.name, [n for n in dir(exc.obj) if not n.startswith("_")], n=1)
        if close:  # Python 3.11 prints this itself only for uncaught exceptions
            text += f"Did you mean: {close[0]!r}?\n"
    return text


def _metrics_address(text):
    try:
        parse_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port or HOST:PORT") from None
    return text


def _number(kind, minimum, strict):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value != value:  # nan compares false with everything: it would pass every check below
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text} must be {'>' if strict else '>='} {minimum}")
        return value
    return parse


_positive_int = _number(int, 0, strict=True)
_non_negative_int = _number(int, 0, strict=False)
_positive_float = _number(float, 0, strict=True)
_non_negative_float = _number(float, 0, strict=False)
