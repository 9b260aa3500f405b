"""A worker process of process mode: its bolt tasks, and the frames it serves.

    supervisor --("t", [deliveries], [forwarded blobs], [record groups])--> worker k
        each delivery runs its task's generated function (runtime/chains.py); tasks of this
        worker call each other directly; what goes to another worker's task is gathered per
        worker into one msgpack blob, which the supervisor forwards without decoding it
    worker k --("r", n, seconds, [events], [root, xor, ...], [[worker, count, blob], ...], counts)--> supervisor
        events, acks and sends as runtime/events.py gathers them; counts: the changes of the
        worker's Meter (runtime/meter.py) at most every SHIP_EVERY seconds, else None
    lifecycle ("c", task, method) -> ("k", reply..., error); state ("v",) checks, ("p",) takes changes, ("u",) rolls back; stop ("s",)
    ("z", j): worker j was started again (no reply): the vocabularies of crossings to it start over
    ("x", pickled exception, traceback) instead of any reply: user code raised SystemExit or
        KeyboardInterrupt; the supervisor raises it (the run ends, as in single mode)

A delivery is [task, values, stream, source, source task, id, roots]; a record group is
[task, source, source task, stream, [values, ...], [root, ...], group, part id, flat] (flat:
each record's one value itself, not its values), records of a commit, acked as one on `group`
(runtime/groups.py), or with group 0 each on its root, which is then its tuple's id
(`Chains.run_roots` runs and acks them); a blob from another worker holds, per input edge,
queued deliveries or a crossing's runs (EventSink.encoded). Workers ignore SIGINT and SIGTERM
(the supervisor stops them), never hold the state directory's lock (closed after fork) and die
with the supervisor (PR_SET_PDEATHSIG, and a check of their parent). With a `task_timeout`, a
worker's watchdog ends it (exit status EXIT_TASK_TIMEOUT) when a call of user code runs longer
(runtime/watchdog.py); the supervisor handles it as any worker that dies.
"""
import copy
import ctypes
import gc
import os
import signal
import sys
import threading
import time
import traceback as tb_module

from multiprocess.reduction import ForkingPickler

from consecution.storage import CodecError, decode, encode
from consecution.topology import Tuple

from .chains import Chains
from .collector import young_gc
from .events import EventSink
from .logs import logger
from .meter import Meter
from .state import state_for, state_where
from .tasks import assign_tasks, auto_acks, build_task
from .vocabulary import Vocabularies
from .watchdog import EXIT_TASK_TIMEOUT, Watchdog, flush_std

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
    code = serve(conn, topology, task_ids, settings)
    flush_std()
    os._exit(code)


def serve(conn, topology, task_ids, settings):
    """Build and prepare the tasks, then answer the messages on `conn` (send_bytes, recv_bytes,
    poll) until told to stop; the exit code. In a worker process, or on a thread of a Ray actor
    (runtime/ray_mode.py)."""
    try:
        return _serve(conn, topology, task_ids, settings)
    except (EOFError, OSError):
        return 1
    except (SystemExit, KeyboardInterrupt) as exc:  # user code asked the run to end: as in single mode
        try:
            conn.send_bytes(encode(["x", bytes(ForkingPickler.dumps(exc)), tb_module.format_exc()]))
        except OSError:
            pass
        return 1


def _watch(limit, conn):
    """End this worker when a call of user code on its serving thread runs longer than `limit`;
    or, when the transport offers `conn.stuck` (a Ray actor, which the driver kills), report it
    there instead."""
    main, name = threading.get_ident(), f"worker process {os.getpid()}"
    report = getattr(conn, "stuck", None)

    def stuck(where, stack):
        logger().error("task.stuck", where=where, task_timeout=limit, stack=stack,
                       reason="a call of user code ran longer than task_timeout: the worker ends, and the "
                              "records that were in flight run again isolated")
        flush_std()
        if report is not None:
            report(where)
            return
        os._exit(EXIT_TASK_TIMEOUT)

    Watchdog(limit, lambda: {main: name}, stuck, time.monotonic).start()


def _build(topology, task_ids, settings, sink):
    """The worker's tasks, bound to generated chains in which its tasks call each other."""
    tasks_by_component = assign_tasks(topology)
    tasks = {}
    for name in tasks_by_component:
        component = topology.components[name]
        for index, task_id in enumerate(tasks_by_component[name]):
            if task_id not in task_ids:
                continue
            obj = copy.deepcopy(component.obj)
            tasks[task_id] = task = build_task(topology, name, index, task_id, tasks_by_component, settings["spec"],
                                               obj, sink)
            task.routing.localize(task_ids)
            if component.stateful:
                obj.state = state_for(obj, settings["state"].get(task_id), state_where(task), settings["epochs"])
    fused = [None] * sum(len(ids) for ids in tasks_by_component.values())
    for task_id, task in tasks.items():
        if task.auto_ack:
            fused[task_id] = task
    remote = [task_id for name, ids in tasks_by_component.items() for task_id in ids
              if task_id not in tasks and topology.components[name].kind == "bolt"
              and auto_acks(topology.components[name].obj)]
    spec = settings["spec"]
    meter = Meter(len(fused)) if spec["meter"] else None
    return tasks, Chains.bind(tasks, fused, topology, spec["tracking"], spec["collect"], remote, meter,
                              marks=settings["task_timeout"] is not None)


def user_error(task, phase, exc):
    """What a worker sends of an error in user code outside tuple processing: [component,
    phase, message, traceback, the pickled exception or None] (see errors.remote_error)."""
    try:
        pickled = bytes(ForkingPickler.dumps(exc))
    except Exception:  # noqa: BLE001 - an exception that does not pickle travels as text
        pickled = None
    return [task.component, phase, f"{type(exc).__name__}: {exc}", tb_module.format_exc(), pickled]


def _run_all(deliveries, run_of):
    for task_id, values, stream, source, source_task, tid, roots in deliveries:
        run_of(task_id, source, source_task, stream)(tuple(values), tuple(roots), tid)


def _run_groups(groups, chains, sink, vocabularies):
    """Deliveries another worker sent, grouped by input edge (see runtime/events.py): queued
    ones, each acked by its run, or a crossing's runs, all of an edge's in one generated loop
    (`Chains.run_runs`; numbers first looked up in the edge's vocabulary, runtime/vocabulary.py),
    then the ids that held their trees open acked on their targets."""
    ack = sink.ack
    for group in groups:
        if len(group) == 6:
            run = chains.run(group[0], group[1], group[2], group[3])
            for values, tid, roots in group[5]:
                run(tuple(values), tuple(roots), tid)
            continue
        items, width = group[6], group[5]
        if group[10] is not None:  # numbers: their values tuples
            values, width = vocabularies.values(tuple(group[:4]), group[10]), "tuples"
            try:
                items = list(map(values.__getitem__, items)) if values is not None else None
            except IndexError:
                items = None
        if items is not None:
            chains.run_runs(group[0], group[1], group[2], group[3], width)(items, group[7], group[8], ack)
        else:
            _out_of_step(group, chains, sink)
        ids = group[9]
        for i in range(0, len(ids), 2):
            target = ids[i]
            ack((target,) if target.__class__ is int else tuple(target), ids[i + 1])


def _out_of_step(group, chains, sink):
    """A coded crossing this worker cannot read (runtime/vocabulary.py): each of its runs fails
    its trees, which run again (an untracked run, reliability "none", is reported as an error)."""
    task_id, source, source_task, stream = group[:4]
    error = (f"deliveries from {source}[{source_task}] came in words this worker does not hold "
             f"(it was started again since they were sent): their trees run again")
    tup = Tuple((), stream, source, source_task, None, (), None)
    component = chains.tasks[task_id].component
    for root in group[7]:
        sink.fail((root,) if root.__class__ is int else tuple(root), error, None, component, task_id, tup)


def _serve(conn, topology, task_ids, settings):
    sink = EventSink(settings["placement"].__getitem__)
    tasks, chains = _build(topology, set(task_ids), settings, sink)
    for task in tasks.values():
        try:
            task.obj.prepare(task.context)
        except Exception as exc:
            conn.send_bytes(encode(["e", user_error(task, "prepare", exc)]))
            return 1
    gc.freeze()  # what the worker inherited and built is not scanned by the cyclic GC again
    young_gc()  # and what it keeps in flight is not rescanned at every frame (runtime/collector.py)
    if settings["task_timeout"] is not None:
        _watch(settings["task_timeout"], conn)
    conn.send_bytes(encode(["ready"]))
    parent = settings["parent"]
    stateful = [t for t in tasks.values() if topology.components[t.component].stateful]
    run_of = chains.run
    take = chains.meter.take if chains.meter is not None else lambda force=False: None
    # a transport that carries the deliveries between workers itself (Ray mode: actor to actor)
    # hands out a key for each blob it sent (`forward`) and gives a key's blob back (`resolve`)
    forward, resolve = getattr(conn, "forward", None), getattr(conn, "resolve", None)
    # and it lists the workers started again since (`restarted`, taken before each frame runs:
    # numbers a frame appends are of one generation), where a process worker is told ("z")
    restarted = getattr(conn, "restarted", [])
    encoded = sink.encoded if forward is None else lambda: forward(*sink.encoded())
    parts = sink.parts
    vocabularies = Vocabularies()
    while True:
        if not conn.poll(1.0):
            if parent is not None and os.getppid() != parent:
                return 1
            continue
        message = decode(conn.recv_bytes())
        kind = message[0]
        if kind == "t":
            while restarted:
                sink.restarted(restarted.pop())
            started = time.perf_counter()
            _run_all(message[1], run_of)
            n = len(message[1])
            for task_id, source, source_task, stream, values, roots, group, tid, flat in message[3]:
                if not roots:  # untracked (reliability "none"): values tuples, in one loop
                    chains.run_batch(task_id, source, source_task, stream)(
                        list(zip(values)) if flat else list(map(tuple, values)), (), 0)
                    n += len(values)
                    continue
                if group:  # what its records send on through crossings is acked on the group
                    parts.append((roots, group))
                chains.run_roots(task_id, source, source_task, stream, flat)(values, roots, tid, group)
                n += len(roots)
            for count, blob in message[2]:
                _run_groups(decode(blob if resolve is None else resolve(blob)), chains, sink, vocabularies)
                n += count
            conn.send_bytes(encode(["r", n, time.perf_counter() - started, *encoded(), take()]))
        elif kind == "c":
            task = tasks[message[1]]
            error = None
            try:
                getattr(task.obj, message[2])()
            except Exception as exc:
                error = user_error(task, message[2], exc)
            conn.send_bytes(encode(["k", *encoded(), error]))
        elif kind == "v":
            refused = None
            try:
                for task in stateful:
                    task.obj.state.check()
            except CodecError as exc:
                refused = str(exc)
            conn.send_bytes(encode(["v", refused]))
        elif kind == "p":
            conn.send_bytes(encode(["p", [[t.task_id, t.obj.state.changes()] for t in stateful]]))
        elif kind == "u":
            for task in stateful:
                task.obj.state.rollback()
            conn.send_bytes(encode(["u"]))
        elif kind == "z":  # worker message[1] was started again: no reply
            sink.restarted(message[1])
        elif kind == "s":
            errors = []
            for task in tasks.values():
                try:
                    task.obj.cleanup()
                except Exception as exc:
                    errors.append(user_error(task, "cleanup", exc))
            conn.send_bytes(encode(["bye", errors, take(force=True)]))
            return 0

