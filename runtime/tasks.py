"""Tasks: one running copy of a spout or bolt, bound to the run through a `sink`.

A task binds `emit` (and a bolt's `ack`/`fail`) on its component, routes what it emits, gives
each delivery a fresh 64-bit id and tells the sink. The sink is the scheduler core in single
and thread mode; a worker's channel to it in process mode. It offers:

    sink.spout_emit(task, stream, values, msg_id)   a spout tuple: log it, start its tree
    sink.emit_root(task, stream, values)            a bolt emit with no input to anchor to
    sink.deliver(task_id, tup)                      queue a tuple for a bolt task
    sink.ack(roots, xor)                            XOR `xor` into each tree of `roots`
    sink.fail(roots, error, traceback, component, task)
    sink.collect(component, stream, values)         only when the run collects outputs
"""
import traceback as tb_module
from types import GeneratorType

from consecution.acker import new_id
from consecution.storage import normalize
from consecution.storage.codec import SCALARS
from consecution.topology import FieldError, FunctionBolt, Spout, Tuple

from .routing import RoutingError


def assign_tasks(topology):
    """{component: [task ids]}: consecutive ids in topological order. The supervisor and every
    worker process compute it the same way, so a task id means the same task everywhere."""
    tasks_by_component, next_id = {}, 0
    for name in topology.topological_order():
        n = topology.components[name].parallelism
        tasks_by_component[name] = list(range(next_id, next_id + n))
        next_id += n
    return tasks_by_component


class TopologyContext:
    """What `open`/`prepare` get: where this task stands in the topology."""

    def __init__(self, topology_name, component, task_index, task_id, parallelism, tasks_by_component,
                 state_dir=None, mode="single", max_pending=None, reliability="replay"):
        self.topology = topology_name
        self.component = component
        self.task_index = task_index
        self.task_id = task_id
        self.parallelism = parallelism
        self.state_dir = state_dir
        self.mode = mode
        self.max_pending = max_pending  # the run's max_pending per spout task (None: no limit)
        self.reliability = reliability
        self._tasks = tasks_by_component

    def tasks_of(self, component):
        """The task ids of `component` (for `emit_direct`)."""
        return list(self._tasks[component])

    def __repr__(self):
        return f"TopologyContext({self.topology!r}, {self.component!r}, task {self.task_index})"


def checked(values, component, stream, streams):
    """`values` normalised for msgpack, with its stream and arity checked against the
    component's declared streams and fields."""
    try:
        fields = streams[stream]
    except KeyError:
        raise RoutingError(
            f"component {component!r} emitted on undeclared stream {stream!r}; it declares "
            f"{', '.join(sorted(streams))} (declare more with `streams = {{...}}`)") from None
    values = normalize(values, component, stream, fields)
    if fields is not None and len(values) != len(fields):
        raise FieldError(
            f"component {component!r} emitted {len(values)} values on stream {stream!r}, which "
            f"declares {len(fields)} fields {tuple(fields)!r}: {values!r}")
    return values


class SpoutTask:
    def __init__(self, sink, component, task_id, obj, routing, context):
        self.sink = sink
        self.component = component.name
        self.streams = component.streams
        self.task_id = task_id
        self.obj = obj
        self.routing = routing
        self.context = context
        self.exhausted = False
        self.has_position = type(obj).position is not Spout.position
        self.has_ack = type(obj).ack is not Spout.ack  # the default ack does nothing: skip the call
        self.has_logged = type(obj).logged is not Spout.logged  # likewise; see Spout.logged
        self.logged_at_emit = self.has_logged and not sink.tracking  # no log, no commit to wait for
        obj._emit = self.emit

    def emit(self, values, stream="default", msg_id=None):
        values = checked(values, self.component, stream, self.streams)
        targets = self.sink.spout_emit(self, stream, values, msg_id)
        if self.logged_at_emit:
            self.obj.logged([msg_id])
        return targets


class BoltTask:
    def __init__(self, sink, component, task_id, obj, routing, context, tracking, collect):
        self.sink = sink
        self.component = component.name
        self.streams = component.streams
        self.task_id = task_id
        self.obj = obj
        self.routing = routing
        self.context = context
        self.tracking = tracking
        self.collect = collect
        self.auto_ack = getattr(obj, "auto_ack", True)
        self.current = None   # the input being processed
        self.ackval = 0       # XOR of the ids of children anchored to `current`
        self.acked = False    # `current` was acked by hand in an auto_ack bolt
        self.fused = None     # single mode: task id -> the BoltTask to call directly, or None
        self.plans = {}       # stream -> (fields, fused tasks): see plan()
        if obj is not None:   # None: the core's stand-in for a task that runs in a worker process
            obj._emit = self.emit
            obj._ack = self.ack
            obj._fail = self.fail

    def execute(self, tup):
        """Run `process` on one tuple and ack or fail it. A fused tuple (id 0: called directly
        by the task that emitted it, single mode) is not acked here: the XOR of the ids of its
        own children is returned, for the caller to fold into its ack."""
        self.current = tup
        self.ackval = 0
        self.acked = False
        try:
            self.obj.process(tup)
        except Exception as exc:
            self.current = None
            self.sink.fail(tup.roots, _describe(exc), tb_module.format_exc(), self.component, self.task_id, tup)
            return 0
        self.current = None
        if self.auto_ack and not self.acked and tup.roots:
            if tup.id == 0:
                return self.ackval
            self.sink.ack(tup.roots, tup.id ^ self.ackval)
        return 0

    def emit(self, values, stream="default", anchors=None, direct=None):
        plan = self.plans.get(stream) if anchors is None and direct is None else None
        if plan is not None and values.__class__ is tuple:
            # the hot path (single mode): every subscriber is one fused task, the input is anchored
            fields, into = plan
            current = self.current
            if current is not None and (fields is None or len(values) == len(fields)):
                for value in values:
                    if value.__class__ not in SCALARS:
                        break
                else:
                    roots = current.roots
                    if not roots:
                        for task in into:
                            task.execute(Tuple(values, stream, self.component, self.task_id, None, (), fields))
                        return
                    if self.auto_ack and not self.acked:
                        xor = 0
                        for task in into:
                            xor ^= task.execute(Tuple(values, stream, self.component, self.task_id, 0, roots,
                                                      fields))
                        self.ackval ^= xor
                        return
        return self._emit(values, stream, anchors, direct)

    def plan(self, fused):
        """Single mode: call the tasks in `fused` directly, and find the streams whose
        subscribers are all fused tasks with a fixed route: emit takes a short path for them."""
        self.fused = fused
        self.plans = {}
        if self.collect:
            return
        for stream, targets in self.routing.fixed.items():
            if targets and all(fused[t] is not None for t in targets) and not self.routing.direct.get(stream):
                self.plans[stream] = (self.streams[stream], tuple(fused[t] for t in targets))

    def _emit(self, values, stream="default", anchors=None, direct=None):
        component = self.component
        try:
            fields = self.streams[stream]
        except KeyError:
            checked(values, component, stream, self.streams)  # raises, naming the stream
        if values.__class__ is not tuple or (fields is not None and len(values) != len(fields)):
            values = checked(values, component, stream, self.streams)  # converts, or raises
        else:
            for value in values:
                if value.__class__ not in SCALARS:
                    values = normalize(values, component, stream, fields)
                    break
        if self.collect:
            self.sink.collect(component, stream, values)
        current = self.current
        if anchors is None:
            if current is None:
                if self.tracking:
                    return self.sink.emit_root(self, stream, values, direct)
                roots = ()
            else:
                roots = current.roots
            fast = self.auto_ack and not self.acked
        else:
            roots = _roots_of((anchors,) if isinstance(anchors, Tuple) else anchors)
            fast = False
        targets = self.routing.targets(stream, values, self.task_id, direct)
        fused, task_id = self.fused, self.task_id
        if not roots:  # untracked: reliability "none", or an unanchored emit
            for target in targets:
                tup = Tuple(values, stream, component, task_id, None, (), fields)
                into = fused[target] if fused is not None else None
                if into is not None:
                    into.execute(tup)
                else:
                    self.sink.deliver(target, tup)
            return targets
        xor = 0
        for target in targets:
            into = fused[target] if fused is not None else None
            if into is not None:
                xor ^= into.execute(Tuple(values, stream, component, task_id, 0, roots, fields))
            else:
                i = new_id()
                xor ^= i
                self.sink.deliver(target, Tuple(values, stream, component, task_id, i, roots, fields))
        if fast:
            self.ackval ^= xor
        elif xor:
            self.sink.ack(roots, xor)
        return targets

    def ack(self, tup):
        """Ack `tup` (for bolts with `auto_ack = False`, or to ack the input early)."""
        if not tup.roots:
            return
        if tup is self.current:
            if self.acked:
                return
            self.acked = True
            self.sink.ack(tup.roots, tup.id ^ self.ackval)
            self.ackval = 0
            return
        self.sink.ack(tup.roots, tup.id)

    def fail(self, tup, error=None):
        """Fail `tup`: its trees are replayed or given up."""
        if tup is self.current:
            self.acked = True  # no auto-ack after an explicit fail
        if not tup.roots:
            return
        message = _describe(error) if isinstance(error, BaseException) else (error or "failed by the bolt")
        self.sink.fail(tup.roots, message, "".join(tb_module.format_stack(limit=8)), self.component,
                       self.task_id, tup)


def _roots_of(anchors):
    if len(anchors) == 1:
        return anchors[0].roots
    roots = []
    for a in anchors:
        for r in a.roots:
            if r not in roots:
                roots.append(r)
    return tuple(roots)


def _describe(exc):
    return f"{type(exc).__name__}: {exc}"


class FunctionTask(BoltTask):
    """A task of a plain function: `execute` calls the function itself (one frame less per
    tuple than going through `FunctionBolt.process`), with the same results.

    In single mode, when everything it emits goes to one other function task (a fused plan),
    it hands the values straight to that function (`run`): a function gets values, not a
    Tuple, so none is made; the checks of `emit` (msgpack-safe values, declared arity) still
    apply, and a failure fails the same trees."""

    chain = None   # (fields, (FunctionTask,)): it gets every emit's values, directly
    direct = None  # (fields, tasks): fused tasks that get every emit as a Tuple, directly

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fn = self.obj.fn if self.obj is not None else None

    def plan(self, fused):
        super().plan(fused)
        plan = self.plans.get("default")
        if plan is None or len(self.streams) != 1:
            return
        if len(plan[1]) == 1 and isinstance(plan[1][0], FunctionTask):
            self.chain = plan
        else:
            self.direct = plan

    def execute(self, tup):
        self.current = tup
        self.ackval = 0
        self.acked = False
        try:
            self._emit_result(self.fn(*tup.values))
        except Exception as exc:
            self.current = None
            self.sink.fail(tup.roots, _describe(exc), tb_module.format_exc(), self.component, self.task_id, tup)
            return 0
        self.current = None
        if tup.roots and not self.acked:
            if tup.id == 0:
                return self.ackval
            self.sink.ack(tup.roots, tup.id ^ self.ackval)
        return 0

    def run(self, values, source):
        """Called by the function task before it in a chain, with the values it emitted (no
        Tuple); returns the XOR of the ids of this task's children, like a fused `execute`."""
        current = source.current
        self.current = current
        self.ackval = 0
        self.acked = False
        try:
            self._emit_result(self.fn(*values))
        except Exception as exc:
            self.current = None
            tup = Tuple(values, "default", source.component, source.task_id, None, current.roots,
                        source.streams["default"])
            self.sink.fail(current.roots, _describe(exc), tb_module.format_exc(), self.component, self.task_id,
                           tup)
            return 0
        self.current = None
        return self.ackval if current.roots else 0

    def _emit_result(self, result):
        if result is None:
            return
        chain = self.chain
        if chain is None and self.direct is not None:
            self._emit_direct(result)
            return
        if chain is None:
            emit = self.emit
            if result.__class__ is GeneratorType:
                for item in result:
                    emit(item if item.__class__ is tuple else (item,))
            else:
                emit(result if result.__class__ is tuple else (result,))
            return
        fields, (into,) = chain
        width = None if fields is None else len(fields)
        items = result if result.__class__ is GeneratorType else (result,)
        for item in items:
            values = item if item.__class__ is tuple else (item,)
            if width is not None and len(values) != width:
                self.emit(values)  # the general path raises the FieldError
                continue
            for value in values:
                if value.__class__ not in SCALARS:
                    values = normalize(values, self.component, "default", fields)
                    break
            self.ackval ^= into.run(values, self)


    def _emit_direct(self, result):
        """`_emit_result` for a task whose every emit goes to fused tasks on fixed routes: the
        short path of `emit`, without the call."""
        fields, targets = self.direct
        width = None if fields is None else len(fields)
        roots = self.current.roots
        tid = 0 if roots else None
        component, task_id = self.component, self.task_id
        xor = 0
        for item in (result if result.__class__ is GeneratorType else (result,)):
            values = item if item.__class__ is tuple else (item,)
            if width is not None and len(values) != width:
                self.emit(values)  # the general path raises the FieldError
                continue
            for value in values:
                if value.__class__ not in SCALARS:
                    values = normalize(values, component, "default", fields)
                    break
            for into in targets:
                xor ^= into.execute(Tuple(values, "default", component, task_id, tid, roots, fields))
        if roots:
            self.ackval ^= xor


def task_class(obj):
    """FunctionTask for a plain function's bolt, else BoltTask."""
    return FunctionTask if isinstance(obj, FunctionBolt) and type(obj).process is FunctionBolt.process else BoltTask
