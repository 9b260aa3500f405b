"""The `Topology` builder: components, their streams, and who subscribes to whom.

Names follow Storm's TopologyBuilder: `spout(name, spout, parallelism)`,
`bolt(name, bolt, parallelism)` returning a declarer on which groupings are chained.
Mistakes that can be seen at once (a duplicate name, a bad parallelism, a spout declared as a
bolt) raise when made; the rest (unknown sources and streams, cycles, undeclared fields) when
`validate()` runs, which every run does first.

Declaring does no I/O. A component may resolve its fields late, where the topology runs (an
`Output` spout reads them from its producer's state directory): `validate()` asks it first,
and a run needs them (see `Topology.resolve_fields`).
"""
import hashlib
import json
import re
from typing import NamedTuple

from . import validation
from .components import DEFAULT, OUTPUT_PREFIX, IterableSpout, as_bolt, as_spout
from .errors import ComponentError, DuplicateNameError, FieldError, TopologyError, UnknownSourceError
from .tuples import Fields

RELIABILITY_LEVELS = ("none", "confirm", "track", "replay")
FAILURES = "__failures"  # the pseudo-source of the failure stream
# `seq` is the record's sequence number in the log; `root`, its older name, still reads it
FAILURE_FIELDS = Fields(("seq", "spout", "values", "component", "task", "error",
                         "traceback", "attempts"), aliases={"root": "seq"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class Grouping(NamedTuple):
    """How one subscription picks the tasks of its bolt for a tuple of `source`/`stream`.

    `kind` is one of shuffle, fields, all, global, direct, local_or_shuffle, none, custom,
    route (a pipe's `route`: `fn` holds the (router, branch) pairs a tuple must match) and
    failure (the tuples given up; `source` is `FAILURES`).
    """
    kind: str
    source: str
    stream: str = DEFAULT
    fields: tuple = ()
    fn: object = None


class Component:
    """A declared spout or bolt: its object, its output streams, and (bolts) its inputs.

    `late`: its object has a `resolve_fields()` method, asked by `Topology.resolve_fields`;
    `unknown` is the `FieldsNotKnown` of the last look while its fields are not known yet."""

    def __init__(self, name, kind, obj, parallelism, streams):
        self.name = name
        self.kind = kind  # "spout" or "bolt"
        self.obj = obj
        self.parallelism = parallelism
        self.streams = streams  # {stream: Fields or None (undeclared)}; replaced, never changed in place
        self.inputs = []  # [Grouping]
        self.late = callable(getattr(obj, "resolve_fields", None))
        self.resolved = not self.late
        self.unknown = None

    @property
    def stateful(self):
        return bool(getattr(self.obj, "stateful", False))

    def __repr__(self):
        return f"Component({self.name!r}, {self.kind}, parallelism={self.parallelism})"


def _streams_of(name, obj, fields, streams):
    fields = fields if fields is not None else getattr(obj, "fields", None)
    streams = streams if streams is not None else getattr(obj, "streams", None)
    if fields is not None and streams is not None and DEFAULT in streams:
        raise FieldError(f"component {name!r} declares both `fields` and a {DEFAULT!r} stream")
    if isinstance(fields, str) or any(isinstance(f, str) for f in (streams or {}).values()):
        raise FieldError(f"component {name!r}: fields are a tuple of names, e.g. ('word',), not a string")
    out = {DEFAULT: Fields(fields) if fields is not None else None}
    for stream, names in (streams or {}).items():
        if not isinstance(stream, str) or not stream or stream.startswith("__"):
            raise FieldError(f"component {name!r}: bad stream name {stream!r}")
        out[stream] = Fields(names) if names is not None else None
    return out


class BoltDeclarer:
    """Returned by `Topology.bolt()`: chain groupings on it, as in Storm."""

    def __init__(self, component):
        self.component = component

    @property
    def name(self):
        return self.component.name

    def _add(self, kind, source, stream=DEFAULT, fields=(), fn=None):
        if not isinstance(source, str):
            raise UnknownSourceError(
                f"bolt {self.name!r}: a grouping names its source component by name, got {source!r}")
        self.component.inputs.append(Grouping(kind, source, stream, tuple(fields), fn))
        return self

    def shuffle_grouping(self, source, stream=DEFAULT):
        """Tuples spread evenly (round robin) over the bolt's tasks."""
        return self._add("shuffle", source, stream)

    def fields_grouping(self, source, *fields, stream=DEFAULT):
        """Tuples with equal values in `fields` go to the same task (stable across runs)."""
        if len(fields) == 1 and isinstance(fields[0], (list, tuple)):
            fields = tuple(fields[0])
        if not fields:
            raise FieldError(f"bolt {self.name!r}: fields_grouping({source!r}) names no field")
        return self._add("fields", source, stream, fields)

    def all_grouping(self, source, stream=DEFAULT):
        """Every task gets every tuple."""
        return self._add("all", source, stream)

    def global_grouping(self, source, stream=DEFAULT):
        """Every tuple goes to the bolt's first task."""
        return self._add("global", source, stream)

    def direct_grouping(self, source, stream=DEFAULT):
        """The emitter picks the task with `emit_direct(task, values)`."""
        return self._add("direct", source, stream)

    def local_or_shuffle_grouping(self, source, stream=DEFAULT):
        """Shuffle among the tasks in the emitter's process, if any; else shuffle."""
        return self._add("local_or_shuffle", source, stream)

    def none_grouping(self, source, stream=DEFAULT):
        """No preference: currently the same as shuffle (as in Storm)."""
        return self._add("none", source, stream)

    def custom_grouping(self, source, fn, stream=DEFAULT):
        """`fn(tup, n)` returns a task index in range(n), or a list of them."""
        if not callable(fn):
            raise ComponentError(f"bolt {self.name!r}: custom_grouping needs a function, got {fn!r}")
        return self._add("custom", source, stream, fn=fn)

    def failure_grouping(self):
        """Subscribe to the tuples given up by the run: one tuple per given-up record, with
        fields root, spout, values, component, task, error, traceback, attempts."""
        return self._add("failure", FAILURES, DEFAULT)


class Topology:
    """A named graph of spouts and bolts, with its reliability settings.

    `Topology(name, pipe)` compiles a pipe expression (`a | b | [c, d]`) into the graph; the
    builder methods add to it. `reliability` is one of "none", "confirm", "track" and
    "replay" (see the README, "Guarantees"); `max_retries` counts the replays after the first
    attempt, `retry_backoff` is the first backoff in seconds (doubled on every attempt, with
    jitter), `message_timeout` the seconds a tree may take, `max_pending` the most trees
    pending per spout task (None: no limit), `track_last` the failures kept by "track",
    `checkpoint_interval` the most seconds between two checkpoints of stateful bolts (see the
    README, "Exactly-once state"), `task_timeout` the most seconds user code may hold a task
    while tuples are processed (None: no limit; past it the run treats the task as crashed, see
    runtime/watchdog.py; it must be less than `message_timeout`). `metrics_port` serves the
    run's Prometheus metrics on that port of 127.0.0.1, or on "HOST:PORT" (as `--metrics-port`,
    which overrides it).
    """

    def __init__(self, name, pipe=None, *, max_retries=3, message_timeout=30,
                 max_pending=None, reliability="replay", retry_backoff=0.5, track_last=100,
                 checkpoint_interval=0.2, task_timeout=None, metrics_port=None):
        if not isinstance(name, str) or not _NAME.match(name):
            raise TopologyError(
                f"topology name {name!r} must start with a letter or '_' and hold only "
                "letters, digits, '_', '-' and '.' (it names the state directory)")
        self.name = name
        self.components = {}
        self.max_retries = _count("max_retries", max_retries, minimum=0)
        self.message_timeout = _seconds("message_timeout", message_timeout)
        self.max_pending = None if max_pending is None else _count("max_pending", max_pending, 1)
        self.retry_backoff = _seconds("retry_backoff", retry_backoff, allow_zero=True)
        self.track_last = _count("track_last", track_last, minimum=0)
        self.checkpoint_interval = _seconds("checkpoint_interval", checkpoint_interval)
        self.task_timeout = None if task_timeout is None else _seconds("task_timeout", task_timeout)
        check_task_timeout(self.task_timeout, self.message_timeout, f"topology {name!r}")
        self.metrics_port = _metrics_port(metrics_port, name)
        if reliability not in RELIABILITY_LEVELS:
            raise TopologyError(
                f"topology {name!r}: reliability must be one of {', '.join(RELIABILITY_LEVELS)}, "
                f"got {reliability!r}")
        self.reliability = reliability
        self.entries = []  # (component, routes, group_by): where `producer | topology` feeds in
        self.outputs = {}  # output name -> (component, stream)
        if pipe is not None:
            from .pipes import Pipe
            self.entries = Pipe.of(pipe).compile_into(self, open_start=True)

    # -- composing ---------------------------------------------------------------------------

    def __ror__(self, producer):
        """`producer | topology`: a copy of this topology (built from a pipe that starts with
        bolts) with `producer` (a spout, an iterable, or `component(spout, name=...)`) feeding
        its entry components, as `producer | pipe` would."""
        from .components import Spout
        from .pipes import Pipe
        if not self.entries:
            raise TopologyError(
                f"topology {self.name!r} has no entry to feed: `producer | topology` needs a topology "
                "built from a pipe that starts with a bolt, e.g. Topology(name, Parse() | Store())")
        fed = Topology.__new__(Topology)
        fed.__dict__.update(self.__dict__)
        fed.components = {}
        for name, c in self.components.items():
            clone = Component(c.name, c.kind, c.obj, c.parallelism, c.streams)
            clone.inputs = list(c.inputs)
            fed.components[name] = clone
        fed.outputs = dict(self.outputs)
        fed.entries = []
        if isinstance(producer, list) and not all(isinstance(p, (Spout, Pipe)) for p in producer):
            raise TopologyError(
                f"`producer | topology` ({self.name!r}): a list is a merge of spouts, as in a pipe; "
                "wrap data in IterableSpout([...])")
        spouts = Pipe.of(producer).compile_into(fed, open_start=False, spouts_only=True)
        for spout in spouts:
            for name, routes, group_by in self.entries:
                declarer = BoltDeclarer(fed.components[name])
                if routes:
                    declarer._add("route", spout, fn=routes)
                elif group_by:
                    declarer.fields_grouping(spout, *group_by)
                else:
                    declarer.shuffle_grouping(spout)
        return fed

    def output(self, name, component, stream=DEFAULT):
        """Declare a named output: the tuples `component` emits on `stream` leave the topology as
        output `name` (with the stream's fields). Each is appended to the output's durable entries in the
        state directory in the transaction that completes the trees that made it, exactly once;
        another topology reads it with `consecution.spouts.Output(state_dir, name)`."""
        if not isinstance(name, str) or not _NAME.match(name) or name.startswith("__"):
            raise ComponentError(
                f"topology {self.name!r}: output name {name!r} must start with a letter and hold only "
                "letters, digits, '_', '-' and '.'")
        if name in self.outputs:
            raise DuplicateNameError(f"topology {self.name!r}: an output named {name!r} is already declared")
        source = self.components.get(component)
        if source is None:
            known = ", ".join(sorted(self.components)) or "none"
            raise UnknownSourceError(
                f"topology {self.name!r}: output {name!r} reads unknown component {component!r} "
                f"(declared: {known})")
        if stream not in source.streams:
            raise UnknownSourceError(
                f"topology {self.name!r}: output {name!r} reads stream {stream!r} of {component!r}, which "
                f"declares only {', '.join(sorted(source.streams))}")
        from .components import OutputBolt
        fields = source.streams[stream]
        writer = Component(OUTPUT_PREFIX + name, "bolt", OutputBolt(name, fields), 1, {DEFAULT: fields})
        writer.inputs.append(Grouping("global", component, stream))
        self.components[writer.name] = writer
        self.outputs[name] = (component, stream)
        return self

    def output_fields(self, name):
        """The fields of output `name` (None while its component's fields are not known yet)."""
        return self.components[OUTPUT_PREFIX + name].streams[DEFAULT]

    # -- declaring ---------------------------------------------------------------------------

    def _declare(self, name, kind, obj, parallelism, streams):
        if not isinstance(name, str) or not _NAME.match(name) or name.startswith("__"):
            raise ComponentError(
                f"topology {self.name!r}: component name {name!r} must start with a letter and "
                "hold only letters, digits, '_', '-' and '.'")
        if name in self.components:
            raise DuplicateNameError(
                f"topology {self.name!r}: a component named {name!r} is already declared")
        if isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1:
            raise ComponentError(
                f"component {name!r}: parallelism must be an integer of at least 1, got {parallelism!r}")
        if isinstance(obj, IterableSpout) and parallelism != 1:
            raise ComponentError(
                f"component {name!r}: an iterable spout has one task (each task would read every "
                "item); split the input into several spouts instead")
        component = Component(name, kind, obj, parallelism, streams)
        self.components[name] = component
        return component

    def spout(self, name, spout, parallelism=1, *, fields=None, streams=None):
        """Declare a spout (a `Spout` or any iterable). Returns its `Component`."""
        obj = as_spout(name, spout, fields)
        return self._declare(name, "spout", obj, parallelism, _streams_of(name, obj, fields, streams))

    def bolt(self, name, bolt, parallelism=1, *, fields=None, streams=None):
        """Declare a bolt (a `Bolt` or a plain function); chain its groupings on the result."""
        obj = as_bolt(name, bolt, fields)
        component = self._declare(name, "bolt", obj, parallelism,
                                  _streams_of(name, obj, fields, streams))
        return BoltDeclarer(component)

    # -- reading -----------------------------------------------------------------------------

    @property
    def spouts(self):
        return [c for c in self.components.values() if c.kind == "spout"]

    @property
    def bolts(self):
        return [c for c in self.components.values() if c.kind == "bolt"]

    def subscribers(self, source, stream=DEFAULT):
        """[(bolt component, grouping)] of every subscription to `source`/`stream`."""
        return [(c, g) for c in self.bolts for g in c.inputs
                if g.source == source and g.stream == stream]

    def topological_order(self):
        """Component names, every source before its subscribers (declaration order otherwise)."""
        return validation.topological_order(self)

    # -- late fields and checking (topology/validation.py) -----------------------------------

    def resolve_fields(self, allow_unknown=False):
        """Look once, without waiting, for the fields of each component that resolves them late
        and is not resolved yet; return the `FieldsNotKnown` errors of those still unknown (each
        naming its component) with `allow_unknown=True`, else raise the first.

        A component resolves late when its object has a `resolve_fields()` method (the `Output`
        spout: it reads them from its producer's state directory). That method returns the
        fields of its default stream (None: it declares none), raises `FieldsNotKnown` while they
        are not known yet, or
        another `TopologyError` when they can never fit (raised here at once). The fields found
        replace the component's undeclared ones, in the outputs that re-export its stream too;
        fields declared with `fields=` must be equal. Once resolved, a component is not asked
        again by this topology: `validate()` calls this first, so a run asks once.

        Waiting until they are known is the runtime's: `consecution.runtime.wait_for_fields`."""
        return validation.resolve_fields(self, allow_unknown)

    def unknown_fields(self):
        """{component name: FieldsNotKnown} of the components whose fields were not known at the
        last look (`resolve_fields`, `validate`)."""
        return {c.name: c.unknown for c in self.components.values() if c.unknown is not None}

    def validate(self, allow_open=False, allow_unknown=False):
        """Raise a `TopologyError` naming the place if the topology cannot run; return self.

        `allow_open=True` also accepts an open topology (no spout, entries that
        `producer | topology` would feed), which can be shown but not run.

        Components that resolve their fields late are asked first (`resolve_fields`, one look,
        I/O included). A run needs their fields: one still unknown raises `FieldsNotKnown`,
        unless `allow_unknown=True`, which checks all that does not depend on them (what
        `consecution validate` and `show` do; `unknown_fields()` names them). The checks that
        do (a fields grouping on such a stream) run, with the same errors, once they are known."""
        validation.validate(self, allow_open, allow_unknown)
        return self

    # -- identity ----------------------------------------------------------------------------

    def shape(self):
        """What the fingerprint covers: names, kinds, streams and fields, groupings, and the
        parallelism of stateful components (state is split by task, so it must not change)."""
        components = {}
        for c in self.components.values():
            components[c.name] = {
                "kind": c.kind,
                "streams": {s: (list(f) if f is not None else None) for s, f in sorted(c.streams.items())},
                "inputs": sorted([g.kind, g.source, g.stream, list(g.fields)] for g in c.inputs),
                "parallelism": c.parallelism if c.stateful else None,
            }
        return {"name": self.name, "components": components}

    def fingerprint(self):
        """A stable hash of `shape()` (hex, 16 digits): equal across runs and machines. It covers
        fields resolved late only once they are known (after `validate()`)."""
        text = json.dumps(self.shape(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __repr__(self):
        return f"Topology({self.name!r}, {len(self.components)} components)"


def _count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TopologyError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def _metrics_port(value, name):
    """None, a port (0-65535), or "HOST:PORT"."""
    if value is None:
        return None
    port = value.rpartition(":")[2] if isinstance(value, str) else value
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if port.__class__ is not int or not 0 <= port <= 65535:
        raise TopologyError(f"topology {name!r}: metrics_port must be a port (0-65535) or 'HOST:PORT', got {value!r}")
    return value


def check_task_timeout(task_timeout, message_timeout, where):
    """A hung task is ended while its record is still in flight, so the record can be charged
    (runtime/recovery.py): `task_timeout` must be less than `message_timeout`."""
    if task_timeout is not None and task_timeout >= message_timeout:
        raise TopologyError(f"{where}: task_timeout ({task_timeout:g} s) must be less than message_timeout "
                            f"({message_timeout:g} s), so that a record whose task hangs is still in flight "
                            "when the task is ended")


def _seconds(name, value, allow_zero=False):
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value == value  # nan
            or value < 0 or (value == 0 and not allow_zero)):
        raise TopologyError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
