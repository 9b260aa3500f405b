"""How a `Scheduler` is made from a topology: its settings, its tasks, its executor.

The core (core.py) calls these once, in its constructor; what they make is the core's for the
run: `core.tasks` (by task id), `core.spout_tasks`, `core.bolt_tasks_in_order` (topological),
`core.driver` (the spout driver, the spouts' sink), `core.failure_routing` and `core.executor`.
"""
import collections
import copy

from consecution.topology import FAILURE_FIELDS, FAILURES, Component

from .errors import ModeNotAvailable
from .events import EventSink
from .executors import SingleExecutor, ThreadExecutor
from .routing import Routing
from .spout_driver import SpoutDriver
from .tasks import assign_tasks, build_task

MODES = ("single", "thread", "process", "ray")
REMOTE = ("process", "ray")  # modes whose bolt tasks run in other processes (workers, actors)
START_METHODS = ("fork", "spawn")  # how process mode starts its workers
SETTINGS = ("max_retries", "message_timeout", "max_pending", "retry_backoff", "reliability", "track_last",
            "checkpoint_interval", "task_timeout")


def settings_for(topology, overrides):
    """The topology's reliability settings, with the `overrides` that are not None instead;
    TypeError for a name that is none of them."""
    settings = {k: getattr(topology, k) for k in SETTINGS}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    return settings


def build_tasks(core):
    """Every task of the core's topology, in topological order: a spout's sink is the spout
    driver; a bolt's the core itself in single mode, else an `EventSink` whose events the
    core applies. A component used once with parallelism 1 keeps its object, every other
    task gets a copy; in process and ray mode a bolt task here has no object (it runs in a
    worker), only its routing."""
    topology = core.topology
    tasks_by_component = core.tasks_by_component = assign_tasks(topology)
    core.origins = {}  # (component, task index) -> task, for records
    uses = collections.Counter(id(c.obj) for c in topology.components.values())
    core.tasks = [None] * sum(len(ids) for ids in tasks_by_component.values())
    core.driver = SpoutDriver(core)
    core.spout_tasks, core.bolt_tasks_in_order = [], []
    for name in topology.topological_order():
        component = topology.components[name]
        for index, task_id in enumerate(tasks_by_component[name]):
            shared = component.parallelism == 1 and uses[id(component.obj)] == 1
            if component.kind == "bolt" and core.mode in REMOTE:
                obj = None  # the task runs in a worker process; the core keeps its routing
            else:
                obj = component.obj if shared else copy.deepcopy(component.obj)
            if component.kind == "spout":
                sink = core.driver
            else:
                sink = core if core.mode == "single" else EventSink(_to_the_core)
            task = build_task(topology, name, index, task_id, tasks_by_component, core.spec, obj, sink)
            (core.spout_tasks if component.kind == "spout" else core.bolt_tasks_in_order).append(task)
            core.tasks[task_id] = task
    for component in topology.components.values():  # round robin routes start afresh
        for grouping in component.inputs:
            if grouping.kind == "route":
                for router, _ in grouping.fn:
                    router._turn = 0
    failures = Component(FAILURES, "spout", None, 1, {"default": FAILURE_FIELDS})
    core.failure_routing = Routing(topology, failures, tasks_by_component)
    core.driver.active = list(core.spout_tasks)


def check_mode(mode, start_method):
    """ModeNotAvailable for a mode or a start method that does not exist, naming the choices."""
    if mode not in MODES:
        raise ModeNotAvailable(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if start_method is not None and start_method not in START_METHODS:
        raise ModeNotAvailable(f"unknown start_method {start_method!r} (how process mode starts its workers): "
                               f"choose one of {', '.join(START_METHODS)}")


def make_executor(core, workers, start_method, ray_address):
    """The executor of the core's mode (executors.py). In process and ray mode no task runs
    here: a shuffle's tuples wait for the worker that asks (`executor.shared`)."""
    if core.mode == "single":
        return SingleExecutor(core)
    if core.mode == "thread":
        return ThreadExecutor(core, workers or 4)
    if core.mode == "ray":
        from .ray_mode import RayExecutor
        executor = RayExecutor(core, workers, ray_address)
    else:
        from .process import ProcessExecutor
        executor = ProcessExecutor(core, workers, start_method)
    for task in core.tasks:
        task.routing.localize((), executor.shared)
    core.failure_routing.localize((), executor.shared)
    return executor


def _to_the_core(task_id):
    """Thread mode: every delivery a task makes goes back to the core (one destination)."""
    return 0
