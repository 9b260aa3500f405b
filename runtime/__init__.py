"""The runtime: runs a topology with guaranteed processing (ARCHITECTURE.md tells it whole).

    spouts --emit--> spout driver --> [log commit] --> start_all: a tree per record
        --> fused steps run here, in generated chains; other tasks get deliveries with ids
        --> executor (single | thread | process) --> acks and failures back to the core
    tree complete: the completion releases the record (at once, or with an epoch's checkpoint)
    failed: Retries replays it after a backoff, or gives it up (dead letter, spout.fail)

`core` is the loop; `spout_driver` asks the spouts and logs their records; `trees` starts and
ends trees (`commits`: a commit's records and their roots); `chains` generates what each task runs per tuple; `epochs` decides when a
completed tree's record is released (exactly-once state); `retries` replays or gives up;
`named_outputs` and `finish` are the named outputs and the finish phase; `state_dir` opens
and closes the run's state directory; `executors` runs tasks in single and thread mode,
`process` and `worker` in worker processes, with `events` the one set of what tasks did;
`tasks` builds tasks, `routing` turns groupings into task ids, `result` is what a run
returns, `logs` sets up structlog, `waiting` waits for fields resolved late.
"""

from .build import MODES, check_mode
from .core import Aborted, Scheduler, UserCodeError
from .errors import ModeNotAvailable, SetupError
from .result import EXIT_ERROR, EXIT_GIVEN_UP, EXIT_OK, EXIT_USAGE, RunResult
from .routing import RoutingError, stable_hash
from .tasks import TopologyContext
from .waiting import wait_for_fields


def run(topology, mode="single", **options):
    """Run `topology` to the end (finite spouts) or until stopped; return a `RunResult`.

    `mode`: "single", "thread", "process" or "ray". `options`: workers, start_method ("fork" or
    "spawn", process mode), ray_address (ray mode: what `ray.init` takes), state_dir, durability, collect, grace, and overrides of the topology's reliability settings
    (max_retries, message_timeout, max_pending, retry_backoff, reliability).

    Fields resolved late (an `Output` spout without `fields=` whose producer has not declared
    the output yet) are waited for first, as `consecution run` does (`wait_for_fields`, logging
    `output.waiting`; KeyboardInterrupt ends the wait). `Scheduler(topology)` never waits: it
    raises `FieldsNotKnown` instead.
    """
    check_mode(mode, options.get("start_method"))  # before waiting for any fields
    wait_for_fields(topology)
    return Scheduler(topology, mode=mode, **options).run()


__all__ = ["Aborted", "EXIT_ERROR", "EXIT_GIVEN_UP", "EXIT_OK", "EXIT_USAGE", "MODES",
           "ModeNotAvailable", "SetupError", "RoutingError", "RunResult", "Scheduler", "TopologyContext",
           "UserCodeError", "run", "stable_hash", "wait_for_fields"]
