"""The runtime: runs a topology with guaranteed processing.

    spouts --emit--> [log] --> acker.init --> queue --> bolt tasks --emit--> queue --> ...
                                  ^                        |
                                  +------ ack / fail ------+
    tree complete: release the log entry, spout.ack     failed: replay after backoff,
                                                         or dead letter + spout.fail

`core.Scheduler` holds the whole path (read its module docstring first), with `trees` for
what happens to a record (started, completed, replayed, given up); `executors` runs
bolt tasks in single and thread mode and `process` on worker processes (the one thing modes
change); `tasks` binds components to the run, `routing` turns groupings into task ids,
`retry` decides replays, `result` is what a run returns, `logs` sets up structlog, `waiting`
waits for fields resolved late (an `Output` spout's) before a run.
"""
from consecution.errors import ConsecutionError

from .core import Aborted, Scheduler, UserCodeError
from .result import EXIT_ERROR, EXIT_GIVEN_UP, EXIT_OK, EXIT_USAGE, RunResult
from .routing import RoutingError, stable_hash
from .tasks import TopologyContext
from .waiting import wait_for_fields

MODES = ("single", "thread", "process")


class ModeNotAvailable(ConsecutionError):
    """The mode asked for is not implemented yet."""


def run(topology, mode="single", **options):
    """Run `topology` to the end (finite spouts) or until stopped; return a `RunResult`.

    `mode`: "single", "thread" or "process". `options`: workers, start_method ("fork" or
    "spawn", process mode), state_dir, durability, collect, grace, and overrides of the topology's reliability settings
    (max_retries, message_timeout, max_pending, retry_backoff, reliability).

    Fields resolved late (an `Output` spout without `fields=` whose producer has not declared
    the output yet) are waited for first, as `consecution run` does (`wait_for_fields`, logging
    `output.waiting`; KeyboardInterrupt ends the wait). `Scheduler(topology)` never waits: it
    raises `FieldsNotKnown` instead.
    """
    if mode not in MODES:
        raise ModeNotAvailable(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    wait_for_fields(topology)
    return Scheduler(topology, mode=mode, **options).run()


__all__ = ["Aborted", "EXIT_ERROR", "EXIT_GIVEN_UP", "EXIT_OK", "EXIT_USAGE", "MODES",
           "ModeNotAvailable", "RoutingError", "RunResult", "Scheduler", "TopologyContext",
           "UserCodeError", "run", "stable_hash", "wait_for_fields"]
