"""Tasks: one running copy of a spout or bolt, bound to the run through a `sink`.

A task binds `emit` (and a bolt's `ack`/`fail`) on its component. A spout task's sink is the
spout driver: `driver.emit(task, values, stream, msg_id)`, bound to the spout as its `emit`,
checks what it emits and logs it (runtime/spout_driver.py).
A bolt task's sink is the scheduler core in single mode, and an `EventSink` (runtime/events.py)
in thread mode (one per task) and in a worker process (one per worker); what a bolt does per tuple runs in the
functions `Chains` generates (runtime/chains.py), which call the sink:

    sink.emit_root(task, stream, values)            a bolt emit with no input to anchor to
    sink.send(task_id, values, stream, source, source task, id, roots, fields)
                                                    queue a tuple for a bolt task
    sink.ack(roots, xor)                            XOR `xor` into each tree of `roots`
    sink.fail(roots, error, traceback, component, task, tup, settle)
                                                    `settle`: the XOR the failure leaves unacked
    sink.collect(component, stream, values)         only when the run collects outputs
"""
import functools
import traceback as tb_module

from consecution.storage import normalize
from consecution.storage.codec import all_scalars
from consecution.topology import FieldError, Spout, Tuple

from .routing import Routing, RoutingError

HANDLED = -1  # a BoltTask's ackval once the bolt acked or failed its input by hand (XORs of ids are >= 0)


def assign_tasks(topology):
    """{component: [task ids]}: consecutive ids in topological order. The supervisor and every
    worker process compute it the same way, so a task id means the same task everywhere."""
    tasks_by_component, next_id = {}, 0
    for name in topology.topological_order():
        n = topology.components[name].parallelism
        tasks_by_component[name] = list(range(next_id, next_id + n))
        next_id += n
    return tasks_by_component


def build_task(topology, name, index, task_id, tasks_by_component, spec, obj, sink):
    """Task `index` (id `task_id`) of component `name`, with its routing and context: the one
    way tasks are built, in the core and in worker processes alike. `spec` holds the run's
    settings (state_dir, mode, max_pending, reliability, tracking, collect)."""
    component = topology.components[name]
    routing = Routing(topology, component, tasks_by_component)
    context = TopologyContext(topology.name, name, index, task_id, component.parallelism, tasks_by_component,
                              spec["state_dir"], spec["mode"], spec["max_pending"], spec["reliability"])
    if component.kind == "spout":
        return SpoutTask(sink, component, task_id, obj, routing, context)
    return BoltTask(sink, component, task_id, obj, routing, context, spec["tracking"], spec["collect"])


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
        self.index = context.task_index
        self.streams = component.streams
        self.task_id = task_id
        self.obj = obj
        self.routing = routing
        self.context = context
        self.exhausted = False
        self.has_position = type(obj).position is not Spout.position
        self.has_ack = type(obj).ack is not Spout.ack  # the default ack does nothing: skip the call
        self.has_logged = type(obj).logged is not Spout.logged  # likewise; see Spout.logged
        self.next_batch = obj.next_batch if batches(type(obj)) else None  # None: next_tuple is called
        obj._emit = functools.partial(sink.emit, self)  # the spout driver's, for this task


class BoltTask:
    """One task of a bolt. What runs per tuple is generated by `Chains` (runtime/chains.py):
    `execute(tup)` for a queued input, the `emit` the bolt calls, and the direct calls of
    fused steps. `general_emit` is the path for what those do not cover (explicit anchors,
    `emit_direct`, emits outside `process`)."""

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
        self.auto_ack = auto_acks(obj)
        # While an input is processed: `current` is it, `ackval` the XOR of the ids of the
        # children anchored to it, or HANDLED once the bolt acked or failed it by hand (one
        # attribute, so that the generated code tests one value per input). Between inputs
        # current is None and ackval 0: whoever reads them after `process` resets them (the
        # generated code in runtime/chains.py).
        self.current = None
        self.ackval = 0
        self.chains = None    # set by bind()
        if obj is not None:   # None: the core's stand-in for a task that runs in a worker process
            obj._emit = self.general_emit
            obj._ack = self.ack
            obj._fail = self.fail

    def bind(self, chains):
        """Run through `chains`: the generated functions of this process."""
        self.chains = chains
        if self.obj is not None:
            self.obj._emit = chains.emit(self)

    def execute(self, tup):
        """Run one queued input (acked or failed here); with id 0 (a fused input) the XOR of
        the ids of the children it queued is returned instead, for the caller's ack."""
        return self.chains.run(self.task_id, tup.source, tup.task, tup.stream)(tup.values, tup.roots, tup.id)

    def general_emit(self, values, stream="default", anchors=None, direct=None):
        component = self.component
        try:
            fields = self.streams[stream]
        except KeyError:
            checked(values, component, stream, self.streams)  # raises, naming the stream
        if values.__class__ is not tuple or (fields is not None and len(values) != len(fields)):
            values = checked(values, component, stream, self.streams)  # converts, or raises
        elif not all_scalars(values):
            values = normalize(values, component, stream, fields)
        if self.collect:
            self.sink.collect(component, stream, values)
        current = self.current
        if anchors is None:
            if current is None:
                if self.tracking:
                    if direct is not None:
                        raise RoutingError(f"component {component!r}: emit_direct needs an input to anchor to; "
                                           "it cannot be used from finish, flush or prepare")
                    return self.sink.emit_root(self, stream, values)
                roots = ()
            else:
                roots = current.roots
            fast = self.auto_ack and self.ackval != HANDLED
        else:
            roots = _roots_of((anchors,) if isinstance(anchors, Tuple) else anchors)
            fast = False
        targets = self.routing.targets(stream, values, self.task_id, direct)
        xor = self.chains.deliver(self, stream, fields, values, roots, targets)
        if fast:
            self.ackval ^= xor
        elif xor and roots:
            self.sink.ack(roots, xor)
        return targets

    def ack(self, tup):
        """Ack `tup` (for bolts with `auto_ack = False`, or to ack the input early)."""
        if not tup.roots:
            return
        if tup is self.current:
            if self.ackval == HANDLED:
                return
            self.sink.ack(tup.roots, tup.id ^ self.ackval)
            self.ackval = HANDLED
            return
        self.sink.ack(tup.roots, tup.id)

    def fail(self, tup, error=None):
        """Fail `tup`: its trees are replayed or given up."""
        settle = tup.id or 0  # what stays unacked: its id, and the children anchored to it
        if tup is self.current:
            if self.ackval == HANDLED:  # acked or failed by hand already: nothing left to settle
                settle = 0
            elif self.ackval:
                settle ^= self.ackval
            self.ackval = HANDLED  # no auto-ack after an explicit fail; its children are dropped with it
        if not tup.roots:
            return
        message = _describe(error) if isinstance(error, BaseException) else (error or "failed by the bolt")
        self.sink.fail(tup.roots, message, "".join(tb_module.format_stack(limit=8)), self.component,
                       self.task_id, tup, settle)


def _roots_of(anchors):
    if len(anchors) == 1:
        return anchors[0].roots
    roots = []
    for a in anchors:
        for r in a.roots:
            if r not in roots:
                roots.append(r)
    return tuple(roots)


def batches(cls):
    """Whether the runtime asks a spout of class `cls` for batches: it has `next_batch`, defined
    where `next_tuple` is or below (a subclass that overrides only `next_tuple` of a spout that
    batches, such as `File`, has its `next_tuple` called)."""
    mro = cls.__mro__
    where = {name: next((i for i, c in enumerate(mro) if name in c.__dict__), len(mro))
             for name in ("next_batch", "next_tuple")}
    return where["next_batch"] < len(mro) and where["next_batch"] <= where["next_tuple"]


def auto_acks(obj):
    """Whether a bolt's inputs are acked when its `process` returns (`auto_ack`, True unless
    the bolt sets it False): such a task may be fused, and fed through outlets."""
    return getattr(obj, "auto_ack", True)


def _describe(exc):
    return f"{type(exc).__name__}: {exc}"
