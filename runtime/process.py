"""Process mode: bolt tasks on worker processes (`multiprocess`, so classes from the topology
module, closures and lambdas work under fork and spawn).

    supervisor (the core)                              worker k: task i of each bolt, i % N == k
    spouts -> log -> acker -> submit(task, tup)
        -> pending[k] --("t", [deliveries])--frame-->  for each: tasks[id].execute(tup)
                                                        emits, acks, fails -> one Outbox
        apply(events) <---------("r", n, [events])---   one reply per frame
    lifecycle: ("c", task, method) -> ("k", events, error);  stop: ("s",) -> ("bye", errors)
    state (only when nothing is in flight): ("p",) -> ("p", [[task, changes]]);  ("u",) -> ("u",)

Frames are msgpack; deliveries are [task, values, stream, source, source task, id, roots].
At most two frames per worker are in flight, so a slow worker holds back only its own
tasks. Spouts, acker and log stay in the supervisor. Workers never hold the state
directory's lock (closed after fork), ignore SIGINT/SIGTERM (the supervisor stops them),
and die with the supervisor (PR_SET_PDEATHSIG, and a check of their parent). A worker that
dies is started again, its tasks prepared again, and every pending tree is failed at once
and replayed (at least once: a tree that was not on the dead worker is replayed too).

Stateful bolt tasks keep their `State` in their worker. The supervisor keeps a copy of each one
as of the last checkpoint (the changes workers hand over at checkpoints), which a worker started
again begins from; the epoch is rolled back on every worker (see runtime/trees.py).
"""
import copy
import ctypes
import os
import pickle
import signal
import sys
import traceback as tb_module

import multiprocess
from multiprocess.connection import wait as wait_for
from multiprocess.reduction import ForkingPickler

from consecution.errors import ConsecutionError
from consecution.storage import decode, encode
from consecution.topology import FAILURE_FIELDS, FAILURES, Component, Tuple

from .chains import Chains
from .core import UserCodeError
from .executors import ACK, COLLECT, DELIVER, FAIL, ROOT, Concurrent, Outbox
from .routing import Routing
from .state import apply_changes, state_for, state_where
from .tasks import TopologyContext, assign_tasks, task_class

FRAME = 256       # deliveries per frame, at most
IN_FLIGHT = 2     # frames per worker sent and not yet answered


class WorkerDied(ConsecutionError):
    """A worker process ended while the supervisor waited for its answer."""


def bolts_only(topology):
    """A copy of the topology whose spout components carry no object: what a worker needs
    (routing and its bolts), without the supervisor's spouts (which may hold open files)."""
    view = copy.copy(topology)
    view.components = {}
    for name, c in topology.components.items():
        clone = Component(c.name, c.kind, c.obj if c.kind == "bolt" else None, c.parallelism, c.streams)
        clone.inputs = c.inputs
        view.components[name] = clone
    return view


class ProcessExecutor(Concurrent):

    def __init__(self, core, workers, start_method):
        self.core = core
        self.n = workers or os.cpu_count() or 1
        self.ctx = multiprocess.get_context(start_method or "fork")
        self.start_method = start_method or "fork"
        bolts = core.bolt_tasks_in_order
        self.n = max(1, min(self.n, max(t.context.parallelism for t in bolts)))
        # task i of every bolt on worker i mod n: tasks of equal index share a worker, so a chain
        # of components with equal parallelism runs inside one worker, by direct calls
        self.placement = {t.task_id: t.context.task_index % self.n for t in bolts}
        self.procs = [None] * self.n
        self.conns = [None] * self.n
        self.pending = [[] for _ in range(self.n)]
        self.sent = [[] for _ in range(self.n)]  # per worker: deliveries in each frame in flight
        self.outstanding = 0
        self.view = bolts_only(core.topology)
        self.restarts = 0
        self.committed = {}  # stateful task id -> its state at the last checkpoint

    # -- workers -----------------------------------------------------------------------------

    def _spawn(self, k):
        parent, child = self.ctx.Pipe(duplex=True)
        ids = [t for t, w in self.placement.items() if w == k]
        lock_fd = self.core.lock.fd if self.core.lock is not None else None
        settings = {"tracking": self.core.tracking, "max_pending": self.core.max_pending,
                    "reliability": self.core.reliability, "collect": self.core.outputs is not None,
                    "state_dir": self.core.state_dir, "lock_fd": lock_fd, "parent": os.getpid(),
                    "fork": self.start_method == "fork", "epochs": self.core.epochs,
                    "state": {t: self.committed[t] for t in ids if t in self.committed}}
        proc = self.ctx.Process(target=worker_main, args=(child, self.view, ids, settings),
                                name=f"consecution-worker-{k}", daemon=True)
        proc.start()
        child.close()
        self.procs[k], self.conns[k] = proc, parent
        reply = self._recv(k)
        if reply[0] == "e":
            self._stop_all()
            raise remote_error(reply[1])

    def start(self):
        self.committed = {t: dict(data) for t, data in self.core.initial_state.items()}
        for k in range(self.n):
            self._spawn(k)

    def _stateful_workers(self, stateful):
        return sorted({self.placement[t] for t in stateful})

    def checkpoint(self, stateful):
        out = []
        for k in self._stateful_workers(stateful):
            self.conns[k].send_bytes(encode(["p"]))
            for task_id, rows in self._recv(k)[1]:
                if task_id in self.core.output_writers:
                    out.append((task_id, rows))  # an output's values, not state changes
                    continue
                for row in rows:
                    row[0] = _as_key(row[0])
                apply_changes(self.committed[task_id], rows)
                out.append((task_id, rows))
        return out

    def rollback(self, stateful):
        for k in self._stateful_workers(stateful):
            self.conns[k].send_bytes(encode(["u"]))
            self._recv(k)

    def _recv(self, k):
        try:
            return decode(self.conns[k].recv_bytes())
        except (EOFError, OSError):
            raise WorkerDied(f"worker process {k} ended (exit code {self.procs[k].exitcode})") from None

    def _died(self, k):
        proc = self.procs[k]
        proc.join(timeout=1)
        code = proc.exitcode
        lost = sum(self.sent[k]) + len(self.pending[k])
        self.outstanding -= lost
        self.sent[k], self.pending[k] = [], []
        try:
            self.conns[k].close()
        except OSError:
            pass
        self.restarts += 1
        self.core.logger.error("worker.died", topology=self.core.topology.name, worker=k, exitcode=code,
                               deliveries_lost=lost)
        self.core.fail_all_pending(f"worker process {k} died (exit code {code})")
        self._spawn(k)

    # -- the executor protocol ---------------------------------------------------------------

    def submit(self, task_id, tup):
        self.pending[self.placement[task_id]].append(
            [task_id, list(tup.values), tup.stream, tup.source, tup.task, tup.id, list(tup.roots)])
        self.outstanding += 1

    def _send(self):
        for k in range(self.n):
            pending = self.pending[k]
            while pending and len(self.sent[k]) < IN_FLIGHT:
                batch, self.pending[k] = pending[:FRAME], pending[FRAME:]
                pending = self.pending[k]
                try:
                    self.conns[k].send_bytes(encode(["t", batch]))
                except (BrokenPipeError, OSError):
                    self.pending[k] = batch + pending
                    break
                self.sent[k].append(len(batch))

    def run_some(self):
        self._send()
        self._receive(0)

    def wait(self, timeout):
        self._send()
        self._receive(timeout)

    def _receive(self, timeout):
        waiting = {self.conns[k]: k for k in range(self.n) if self.sent[k]}
        sentinels = {self.procs[k].sentinel: k for k in range(self.n)}
        if not waiting:
            ready = wait_for(list(sentinels), timeout=0)
        else:
            ready = wait_for(list(waiting) + list(sentinels), timeout=timeout)
        for obj in ready:
            if obj in sentinels:
                self._died(sentinels[obj])
                return
            k = waiting[obj]
            try:
                reply = self._recv(k)
            except WorkerDied:
                self._died(k)
                return
            self.sent[k].pop(0)
            self.outstanding -= reply[1]
            self._apply(reply[2])

    def _apply(self, events):
        core = self.core
        for event in events:
            kind = event[0]
            if kind == DELIVER:
                self.pending[self.placement[event[1]]].append(event[1:])
                self.outstanding += 1
            elif kind == ACK:
                core.ack(event[1], event[2])
            elif kind == FAIL:
                _, roots, error, traceback, component, task_id, values, stream, source, source_task = event
                tup = Tuple(tuple(values), stream, source, source_task, None, (), None)
                core.fail(roots, error, traceback, component, task_id, tup)
            elif kind == ROOT:
                core.new_root(*event[1:])
            elif kind == COLLECT:
                core.collect(event[1], event[2], tuple(event[3]))

    def call(self, task, method, *args):
        k = self.placement[task.task_id]
        self.conns[k].send_bytes(encode(["c", task.task_id, method]))
        reply = self._recv(k)
        self._apply(reply[1])
        if reply[2] is not None:
            raise remote_error(reply[2])

    def _stop_all(self):
        errors = []
        for k in range(self.n):
            conn, proc = self.conns[k], self.procs[k]
            if conn is None or proc is None:
                continue
            try:
                conn.send_bytes(encode(["s"]))
                reply = self._recv(k)
                errors.extend(remote_error(error) for error in reply[1])
            except (WorkerDied, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            conn.close()
            self.procs[k] = self.conns[k] = None
        return errors

    def close(self):
        return self._stop_all()


def _as_key(key):
    """A state key back from msgpack: keys are never lists, so a list was a tuple."""
    return tuple(_as_key(k) for k in key) if key.__class__ is list else key


class RemoteError(Exception):
    """An exception raised in a worker process that could not travel as itself (it does not
    pickle): its type's name and message."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker process, as the worker formatted it:
    the cause of the exception re-raised in the supervisor (as CPython's concurrent.futures
    does), so a traceback printed there shows the user's file and line."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text

    def __str__(self):
        return f'\n"""\n{self.text}"""'


def remote_error(error):
    """The UserCodeError for [component, phase, message, traceback, pickled exception] sent by
    a worker: the worker's exception itself where it unpickles, else a RemoteError."""
    component, phase, message, traceback, pickled = error
    exc = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:  # noqa: BLE001 - its class may not exist here: fall back to the text
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(message)
    exc.__cause__ = RemoteTraceback(traceback)
    return UserCodeError(component, phase, exc)


# -- the worker process ------------------------------------------------------------------------

def _die_with_parent(parent):
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent:
        os._exit(1)


def worker_main(conn, topology, task_ids, settings):
    """Build the tasks `task_ids`, prepare them, then serve frames until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if settings["fork"] and settings["lock_fd"] is not None:
        try:
            os.close(settings["lock_fd"])
        except OSError:
            pass
    _die_with_parent(settings["parent"])
    try:
        code = _serve(conn, topology, task_ids, settings)
    except (EOFError, OSError):
        code = 1
    os._exit(code)


def _build(topology, task_ids, settings, outbox):
    tasks_by_component = assign_tasks(topology)
    tasks = {}
    for name in tasks_by_component:
        component = topology.components[name]
        for index, task_id in enumerate(tasks_by_component[name]):
            if task_id not in task_ids:
                continue
            obj = copy.deepcopy(component.obj)
            routing = Routing(topology, component, tasks_by_component)
            context = TopologyContext(topology.name, name, index, task_id, component.parallelism,
                                      tasks_by_component, settings["state_dir"], "process", settings["max_pending"],
                                      settings["reliability"])
            tasks[task_id] = task = task_class(obj)(outbox, component, task_id, obj, routing, context,
                                                    settings["tracking"], settings["collect"])
            if component.stateful:
                obj.state = state_for(obj, settings["state"].get(task_id), state_where(task), settings["epochs"])
    # deliveries between tasks of this worker are direct calls, as in single mode
    fused = [None] * sum(len(ids) for ids in tasks_by_component.values())
    for task_id, task in tasks.items():
        if task.auto_ack:
            fused[task_id] = task
    streams = {name: c.streams for name, c in topology.components.items()}
    chains = Chains(tasks, fused, streams, settings["tracking"], settings["collect"])
    for task in tasks.values():
        task.bind(chains)
    streams[FAILURES] = {"default": FAILURE_FIELDS}
    return tasks, streams


def _encode_events(events):
    out = []
    for event in events:
        kind = event[0]
        if kind == DELIVER:
            tup = event[2]
            out.append([DELIVER, event[1], list(tup.values), tup.stream, tup.source, tup.task, tup.id,
                        list(tup.roots)])
        elif kind == FAIL:
            _, roots, error, traceback, component, task_id, tup = event
            out.append([FAIL, list(roots), error, traceback, component, task_id, list(tup.values), tup.stream,
                        tup.source, tup.task])
        elif kind == ACK:
            out.append([ACK, list(event[1]), event[2]])
        elif kind == ROOT:
            out.append([ROOT, event[1], event[2], event[3], list(event[4])])
        else:
            out.append([COLLECT, event[1], event[2], list(event[3])])
    return out


def _user_error(task, phase, exc):
    """What a worker sends of an error in user code outside tuple processing (see remote_error)."""
    try:
        pickled = ForkingPickler.dumps(exc)
    except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
        pickled = None
    return [task.component, phase, f"{type(exc).__name__}: {exc}", tb_module.format_exc(),
            bytes(pickled) if pickled is not None else None]


def _serve(conn, topology, task_ids, settings):
    outbox = Outbox()
    tasks, streams = _build(topology, set(task_ids), settings, outbox)
    for task in tasks.values():
        try:
            task.obj.prepare(task.context)
        except Exception as exc:
            conn.send_bytes(encode(["e", _user_error(task, "prepare", exc)]))
            return 1
    conn.send_bytes(encode(["ready"]))
    parent = settings["parent"]
    stateful = {name for name, c in topology.components.items() if c.stateful}
    while True:
        if not conn.poll(1.0):
            if os.getppid() != parent:
                return 1
            continue
        message = decode(conn.recv_bytes())
        kind = message[0]
        if kind == "t":
            for task_id, values, stream, source, source_task, tid, roots in message[1]:
                fields = streams[source][stream] if source in streams else None
                tasks[task_id].execute(Tuple(tuple(values), stream, source, source_task, tid, tuple(roots),
                                             fields))
            conn.send_bytes(encode(["r", len(message[1]), _encode_events(outbox.take())]))
        elif kind == "c":
            task = tasks[message[1]]
            error = None
            try:
                getattr(task.obj, message[2])()
            except Exception as exc:
                error = _user_error(task, message[2], exc)
            conn.send_bytes(encode(["k", _encode_events(outbox.take()), error]))
        elif kind == "p":
            conn.send_bytes(encode(["p", [[t, task.obj.state.changes()] for t, task in tasks.items()
                                          if task.context.component in stateful]]))
        elif kind == "u":
            for task in tasks.values():
                if task.context.component in stateful:
                    task.obj.state.rollback()
            conn.send_bytes(encode(["u"]))
        elif kind == "s":
            errors = []
            for task in tasks.values():
                try:
                    task.obj.cleanup()
                except Exception as exc:
                    errors.append(_user_error(task, "cleanup", exc))
            conn.send_bytes(encode(["bye", errors]))
            return 0
