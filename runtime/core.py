"""The scheduler core: acking, replay, timeouts, backpressure and the finish order.

One core serves every mode; modes differ only in where tasks run and how tuples travel.
In single mode the core runs each delivery itself, in order, on one thread.

The life of a spout tuple (reliability "confirm", "track" and "replay"):

    spout.next_tuple() -> emit -> Record appended to the log (spout_driver.py), and after the
        spout's calls its position() ... up to COMMIT_BATCH records or COMMIT_INTERVAL seconds,
        or until a round of calls emits nothing -> one log commit (group commit)
    start_all (trees.py): a tree per record; fused subscribers run it here, in the generated
        chains (chains.py); others get a delivery with a fresh 64-bit id, queued (a commit's
        records from one origin: one generated loop, or one record group for a worker)
    a task's chain -> process/function -> children emitted (ids XORed into the input's ack)
        -> returned: ack(roots, id ^ children)  | raised: fail(roots, error)
    acker: XOR of a tree back to 0 -> the completion (epochs.py): record released (at once, or
        with its epoch's checkpoint), spout.ack(msg_id)
    fail or message_timeout -> Retries (retries.py): replayed after a backoff (attempts + 1)
        -> past max_retries (or at once for confirm/track): dead letter, spout.fail, and a
           tuple on the failure stream
    on start: lock the state directory, check the topology's fingerprint, seek each spout to
        its stored position, replay every pending record before asking spouts for new tuples
        (after a crash, as suspects in bisected trials: recovery.py)
    every spout exhausted, the queue empty, no tree pending -> bolts' finish() in topological
        order, each followed by the same wait (finish.py) -> cleanup() and close() -> RunResult

With reliability "none" nothing is logged or tracked: tuples carry no id and an error in a
bolt is logged, counted and sent to the failure stream, the input is not replayed.
"""
import collections
import gc
import threading
import time
from random import getrandbits

from consecution.acker import Acker
from consecution.storage import MemoryLog
from consecution.topology import check_task_timeout

from .build import REMOTE, build_tasks, check_mode, make_executor, settings_for
from .chains import Chains
from .collector import young_gc
from .epochs import Epochs, Release
from .errors import Aborted, SpoutInterrupted, UserCodeError
from .finish import FinishPhase
from .groups import Groups
from .logs import logger
from .meter import Meter
from .named_outputs import NamedOutputs
from .observe import Observers
from .recovery import Recovery
from .result import RunResult
from .retries import Backoff, NoRetry, Retries
from .spout_driver import COMMIT_INTERVAL
from .state_dir import close_state, load_state, open_state, resumed_from
from .tasks import BoltTask
from .timers import Timers
from .commits import Unlogged
from .trees import TreeLifecycle
from .watchdog import Watchdog, abandon

STATEFUL_MAX_PENDING = 1000  # max_pending when stateful bolts need the trees in flight to end
IDLE_SLEEP = 0.001       # a spout that emitted nothing is asked again after this long
EXPIRE_EVERY = 0.1       # how often trees are checked against message_timeout


class Scheduler(TreeLifecycle):
    """Runs one topology to the end (finite spouts) or until stopped.

    `overrides` replace the topology's reliability settings (max_retries, message_timeout,
    max_pending, retry_backoff, reliability, track_last, checkpoint_interval, task_timeout).
    `observers` watch the run without steering it (observe.py: progress, systemd, metrics);
    `metrics_port` (else the topology's) serves Prometheus metrics (metrics.py).
    A call of user code past `task_timeout` ends what runs it as a crash would (watchdog.py):
    a worker process ends, else the whole process (exit status 4). `collect=True` keeps every
    tuple the bolts emit, by (component, stream), in the result (for tests and
    `consecution.testing`).

    In single mode a task emitting to a task with `auto_ack` calls it directly (`fuse=True`):
    processing is depth first, and such tuples need no id of their own (DESIGN.md, "fused").
    With a `state_dir`, the run locks it; reliability "replay" keeps its log there (LMDB,
    `durability` "kill" or "power") and "track" its last `track_last` failures; without one,
    both are in memory. `fresh=True` deletes that log first (spout positions, pending records,
    state, named outputs and dead letters), once the lock is held: the run starts over.
    """

    def __init__(self, topology, *, mode="single", workers=None, start_method=None, state_dir=None,
                 collect=False, grace=30.0, durability="kill", fuse=True, clock=time.monotonic,
                 wall=time.time, ray_address=None, fresh=False, observers=(), metrics_port=None, **overrides):
        topology.validate()
        check_mode(mode, start_method)
        self.topology = topology
        self.mode = mode
        self.workers = workers
        self.start_method = start_method
        self.state_dir = state_dir
        self.fresh = fresh  # start over: the state directory's log is deleted first (state_dir.py)
        self.grace = grace
        self.clock, self.wall = clock, wall
        self.logger = logger()
        self.settings = settings = settings_for(topology, overrides)
        self.reliability = settings["reliability"]
        self.tracking = self.reliability != "none"
        self.message_timeout = settings["message_timeout"]
        self.max_pending = settings["max_pending"]
        self.checkpoint_interval = settings["checkpoint_interval"]
        self.task_timeout = settings["task_timeout"]
        check_task_timeout(self.task_timeout, self.message_timeout, f"topology {topology.name!r}")
        self.core_thread = None  # the thread that runs the core (watchdog.py)
        # stateful bolts: trees complete in epochs, checkpointed or rolled back (epochs.py)
        self.epochs = self.tracking and any(c.stateful for c in topology.components.values())
        if self.epochs and self.max_pending is None:
            self.max_pending = STATEFUL_MAX_PENDING
        keep = {"replay": None, "track": settings["track_last"]}.get(self.reliability, 0)
        self.durable = self.reliability in ("replay", "track") and state_dir is not None
        self.durability = durability
        self.log = MemoryLog(keep=keep)  # the durable log replaces it in run()
        self.lock = None
        self.acker = Acker()
        self.groups = Groups(self.acker)  # record groups in flight (process and ray mode: groups.py)
        self.unlogged = Unlogged()     # records appended, waiting for the commit that starts them
        self.held_back = collections.Counter()  # spout task id -> records in `unlogged`
        self.recovery = Recovery(self)  # the records an earlier run or a dead worker left in flight
        self.last_commit = clock()
        self.trees = {}                # root -> Record or Run; a RunGroup's id -> it (groups.py)
        self.starts = getrandbits(24)  # trees started, the low bits of their roots (trees.py)
        policy = Backoff(settings["max_retries"], settings["retry_backoff"]) if self.reliability == "replay" \
            else NoRetry()
        self.retries = Retries(self, policy)
        self.collected = {} if collect else None  # (component, stream) -> values emitted (collect=True)
        self.result = RunResult(topology.name, self.reliability, mode)
        self.stopping = False
        self.started = None            # clock() when run() began
        self.dead_letters_before = 0   # dead letters the log held when the run began
        self.executor_started = False  # close() the executor only if start() was tried
        self.stop_deadline = None
        self.signals = 0
        self.now = clock()
        # what every task is built with, here and in worker processes (tasks.build_task)
        metrics_port = metrics_port if metrics_port is not None else topology.metrics_port
        self.spec = {"state_dir": state_dir, "mode": mode, "max_pending": self.max_pending,
                     "reliability": self.reliability, "tracking": self.tracking, "collect": collect,
                     "meter": metrics_port is not None or any(getattr(o, "counts", False) for o in observers)}
        build_tasks(self)
        # per-task counts, kept when an observer shows them (meter.py); worker processes keep theirs
        self.meter = Meter(len(self.tasks)) if self.spec["meter"] else None
        self.stateful = {t.task_id: t for t in self.bolt_tasks_in_order
                         if topology.components[t.component].stateful}
        # the hidden writers of named outputs: task id -> output name (their state is the entries)
        self.named_outputs = NamedOutputs(self, {
            t.task_id: topology.components[t.component].obj.name for t in self.stateful.values()
            if getattr(topology.components[t.component].obj, "writes_output", False)})
        self.completion = Epochs(self, self.stateful, self.named_outputs) if self.epochs else Release(self)
        self.initial_state = {}        # process mode: task id -> the state a worker starts from
        self.finish = FinishPhase(self)
        self.timers = Timers(self)      # ticks and idle flushes of bolts (timers.py)
        self.start_plans = {}  # (spout, task index, stream) -> how its records start (trees.py)
        self.target_runs = {}  # (task id, stream, targets) -> [(target, run or None)] (trees.py, `_runs`)
        self.fused = None   # task id -> the task it calls directly (single mode), else None
        if mode == "single" and fuse:
            self.fused = [t if isinstance(t, BoltTask) and t.auto_ack else None for t in self.tasks]
        if mode not in REMOTE:
            # loops mark their inputs only for what reads the marks (runtime/watchdog.py)
            marks = self.task_timeout is not None or any(getattr(o, "reads_inputs", False) for o in observers)
            self.chains = Chains.bind({t.task_id: t for t in self.bolt_tasks_in_order}, self.fused, topology,
                                      self.tracking, self.collected is not None, meter=self.meter, marks=marks)
        self.executor = make_executor(self, workers, start_method, ray_address)
        if metrics_port is not None:  # last: it listens at once (a port in use fails here)
            from .metrics import Metrics
            observers = [*observers, Metrics(metrics_port)]
        self.observers = Observers(self, observers)  # progress, systemd, metrics (observe.py)

    # -- the sink: what tasks call -----------------------------------------------------------

    def send(self, task_id, values, stream, source, source_task, tid, roots, fields):
        self.executor.send(task_id, values, stream, source, source_task, tid, roots, fields)

    def emit_root(self, task, stream, values):
        """A bolt emitted with no input to anchor to (from finish, flush or prepare): the tuple
        starts a tree of its own, logged and replayed like a spout tuple."""
        self.new_root(task.component, task.context.task_index, stream, values)

    def collect(self, component, stream, values):
        self.collected.setdefault((component, stream), []).append(values)

    # -- running -----------------------------------------------------------------------------

    def run(self):
        """Run to the end; return the `RunResult`. Raises `UserCodeError` when user code fails
        outside tuple processing.

        While it runs, the objects that existed before it are kept out of the cyclic garbage
        collector's scans (`gc.freeze`; measured: 5-8% of W's time went to those scans), and
        its youngest generation is collected every YOUNG_GC allocations instead of 700
        (`young_gc`); both are undone when it returns."""
        gc.freeze()
        thresholds = young_gc()
        try:
            return self._run()
        finally:
            gc.set_threshold(*thresholds)
            gc.unfreeze()
            self.observers.finished(self.result)  # also when the run could not start

    def _run(self):
        started = self.started = self.clock()
        open_state(self)
        load_state(self)
        self.driver.opened()
        self.finish.load()
        self.named_outputs.opened()
        resumed = resumed_from(self)
        self.logger.info("run.started", topology=self.topology.name, mode=self.mode, reliability=self.reliability,
                         components=len(self.topology.components), tasks=len(self.tasks),
                         state_dir=self.state_dir, durable=self.durable, resumed=resumed or None)
        opened = []
        clean = True  # the run closes its log as a clean stop (recovery.py), unless user code exits it
        self.core_thread = threading.get_ident()
        watchdog = None
        if self.task_timeout is not None:  # worker processes watch themselves (worker.py)
            watchdog = Watchdog(self.task_timeout, self._watched, self._stuck, self.clock).start()
        try:
            self.observers.opening()
            self.executor_started = True
            self.executor.start()
            for task in self.spout_tasks:
                self.call_user(task, "open", task.context)
                opened.append(task)
                position = self.log.get_position(task.component, task.context.task_index)
                if position is not None:
                    self.call_user(task, "seek", position)
            self.recovery.opened()
            self.dead_letters_before = self.log.dead_count()
            self.timers.started(self.clock())
            self.observers.started()
            self._loop(pull=True)
            if not self.stopping:
                self.finish.run()
            if not self.stopping:
                self.named_outputs.close()
            self.result.status = "stopped" if self.stopping else "complete"
        except Aborted:
            self.result.status = "aborted"
        except Exception:
            raise
        except BaseException:  # SystemExit, KeyboardInterrupt out of user code: a crash
            clean = False
            raise
        finally:
            if watchdog is not None:
                watchdog.stop()
            try:
                self._close(opened)
            finally:
                close_state(self, clean)
            self.result.elapsed = self.clock() - started
            self.result.collected = self.collected
        self.logger.info("run.finished", topology=self.topology.name, **self.result.summary())
        if resumed.get("positions") and self.result.status == "complete" and not self.result.roots:
            self.logger.warning("run.nothing_new", topology=self.topology.name, state_dir=self.state_dir,
                                last_run=resumed.get("last_run"), reason=(
                                    f"nothing new since the last run at {resumed.get('last_run') or 'an earlier time'}: "
                                    "every spout resumed at the end of its input; --fresh to start over"))
        return self.result

    def stop(self):
        """Stop gracefully: no new spout tuples; in-flight trees drain for `grace` seconds.
        A second call aborts at once."""
        self.signals += 1
        if self.signals > 1:
            raise Aborted()
        self.stopping = True
        self.stop_deadline = self.clock() + self.grace
        self.observers.stopping()
        self.logger.info("run.stopping", topology=self.topology.name, grace=self.grace, pending=self.trees_in_flight())

    def signalled(self):
        """A stop signal, from a handler on the main thread: `stop()`; and if a spout's
        `next_tuple` runs (it may block on a socket or a sleep), it is interrupted, so that
        the first signal stops a run whose spout waits for input."""
        self.stop()
        if self.driver.asking is not None:
            raise SpoutInterrupted()

    def _watched(self):
        """{thread ident: name} of the threads here that run user code (watchdog.py)."""
        threads = {self.core_thread: "the scheduler thread"}
        threads.update({t.ident: t.name for t in getattr(self.executor, "threads", ())})
        return threads

    def _stuck(self, where, stack):
        abandon(self, "task.stuck", where=where, task_timeout=self.task_timeout, stack=stack,
                reason="a call of user code ran longer than task_timeout: the process ends as a crash would, "
                       "and the next run isolates the records that were in flight")

    def kill_workers(self):
        """Kill what runs user code in other processes (the watchdog's last act: cli.py)."""
        for proc in getattr(self.executor, "procs", ()):
            try:
                proc.kill()
            except (OSError, ValueError, AttributeError):
                pass

    def _close(self, opened):
        errors = []
        for task in opened:
            try:
                self.call_user(task, "close")
            except UserCodeError as exc:
                errors.append(exc)
        if self.executor_started:
            errors += self.executor.close()
        if errors and self.result.status is not None:  # else an error is already on its way
            raise errors[0]

    def call_user(self, task, method, *args):
        try:
            return getattr(task.obj, method)(*args)
        except StopIteration:
            raise
        except Exception as exc:
            raise UserCodeError(task.component, method, exc) from exc

    def _loop(self, pull):
        """Run deliveries, replays and spouts until quiet: (no spout to ask,) nothing queued,
        no tree pending and no replay waiting; or until a stop's grace period is over."""
        executor, clock, completion, retries = self.executor, self.clock, self.completion, self.retries
        recovery, observers, timers = self.recovery, self.observers, self.timers
        concurrent = executor.concurrent
        next_expire = clock() + EXPIRE_EVERY
        flushed = False
        while True:
            now = self.now = clock()
            if completion.tick(now):
                continue
            if self.unlogged:
                self._commit()
            if self.stopping and now >= self.stop_deadline:  # before waiting on busy workers
                if self.trees or retries or executor.busy():
                    self.logger.warning("run.grace_over", topology=self.topology.name, pending=self.trees_in_flight(),
                                        waiting=len(retries))
                return
            due = retries.next_due()
            if due is not None and due <= now and completion.admits() and not recovery.isolating:
                retries.replay_due(now)
            if now >= next_expire:
                self._expire(now)
                next_expire = now + EXPIRE_EVERY
                observers.tick(now)
                if timers and timers.due(now):
                    continue
            if executor.busy():
                executor.run_some()
                flushed = False
                if not concurrent:
                    continue
                if not executor.has_room():
                    executor.wait(0.005)
                    continue
            if self.log.buffered and now - self.last_commit >= COMMIT_INTERVAL:
                self._commit()
            recovering = recovery.active and not self.stopping
            if recovering and recovery.step():
                continue
            asking = pull and not recovering and not self.stopping and self.driver.active and completion.admits()
            if asking and self.driver.pull():
                continue
            if self.unlogged:
                continue
            if executor.busy():
                executor.wait(IDLE_SLEEP if asking else 0.05)
                continue
            if self.trees and timers.flush_idle(now):
                continue  # sinks write a partial batch while the input pauses
            if completion.quiet():
                continue
            # a stop during an isolation ends it here: the replays it holds back stay in the log
            waiting = retries and not (self.stopping and recovery.isolating)
            if not self.trees and not waiting and not asking and not recovering:
                return
            if self.trees and not retries and not asking and not self.driver.active and not flushed:
                flushed = True
                if self.finish.flush_holders():
                    continue
            if completion.flushing() and self.finish.flush_holders():
                continue  # only held inputs keep the epoch open: emit them
            wake = next_expire
            due = retries.next_due()
            if due is not None and not recovery.isolating:
                wake = min(wake, due)
            if asking:
                wake = min(wake, now + IDLE_SLEEP)
            if wake > now:
                time.sleep(wake - now)

