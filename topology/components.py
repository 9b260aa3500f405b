"""Spouts and bolts: the user's side of a topology.

Subclass `Spout` for a source and `Bolt` for a step. Any iterable may stand where a spout is
expected (`IterableSpout` wraps it) and any plain function where a bolt is expected
(`FunctionBolt` wraps it). Subclasses need not call `super().__init__()`.

The runtime binds `emit` (and `ack`/`fail` on bolts) to the task that runs the component;
calling them outside a run raises `ComponentError`.
"""
import inspect
import itertools
import time
import types

from .errors import ComponentError

DEFAULT = "default"
BATCH_WAIT = 0.005  # seconds an iterator's batch may take (the runtime's COMMIT_INTERVAL)


def _unbound(self, *args, **kwargs):
    raise ComponentError(
        f"{type(self).__name__}: emit, ack and fail work only while a topology runs "
        "(inside open/next_tuple, prepare/process/flush/finish)")


class Spout:
    """A source of tuples.

    Override `next_tuple` to emit zero or more tuples and return (never block long); raise
    `StopIteration` when the source is exhausted. Optional: `open(context)`, `close()`,
    `position()`/`seek(position)` to resume after a restart (a msgpack-serializable value,
    read after the runtime's batch of `next_tuple` calls, and stored in the commit that holds
    the tuples they emitted), `ack(msg_id)` when
    a tuple's tree completed and `fail(msg_id, error)` when it was given up.

    Optional `logged(msg_ids)`: called with the msg_ids (root ids where none was given) of
    this task's tuples right after the log commit that made them durable, before any bolt
    sees them, so a source may confirm to its sender only what a restart would replay (see
    `consecution.spouts.Tcp`). It is durable only with reliability "replay" and a state
    directory; with "confirm" or "track" the commit is in memory, and with "none" (no log)
    it is called at emit time, with the msg_ids as given, and nothing is durable.

    Optional `next_batch(limit)`, for a source that has many tuples at hand (a list, a file,
    a broker's batch): return a list of up to `limit` values tuples for the default stream,
    without msg_ids (an empty list: nothing now), or raise `StopIteration` when exhausted.
    The runtime then calls it instead of `next_tuple` (unless a subclass overrides only
    `next_tuple`) and takes the list in one step (one check loop, one append to the log),
    which costs far less per tuple than an `emit` each.

    Output fields: `fields = ("a", "b")` for the default stream, or
    `streams = {"default": ("a",), "other": ("b", "c")}`.

    Optional `resolve_fields()`, for a spout whose fields are known only where it runs (the
    `Output` spout reads them from its producer): return the default stream's fields, or raise
    `FieldsNotKnown` while they are not known yet. `Topology.validate()` calls it (keep I/O out
    of `__init__`: declaring happens at import, also in processes that never run this spout);
    see `Topology.resolve_fields`.
    """

    fields = None
    streams = None

    def open(self, context):
        pass

    def next_tuple(self):
        raise StopIteration

    def close(self):
        pass

    def position(self):
        return None

    def seek(self, position):
        pass

    def progress(self):
        """(done, total, unit) when the source knows how far it is, else None: the progress
        display draws a bar and an ETA (runtime/live.py). `unit` is "records" (done: tuples
        emitted) or "bytes" (of a file). Called on the scheduler's thread."""
        return None

    def ack(self, msg_id):
        pass

    def fail(self, msg_id, error):
        pass

    def logged(self, msg_ids):
        pass

    def emit(self, values, stream=DEFAULT, msg_id=None):
        """Emit one tuple. `msg_id` is what `ack`/`fail` get back (the root id if None)."""
        return self._emit(values, stream, msg_id)

    _emit = _unbound

    def __or__(self, other):
        from .pipes import Pipe
        return Pipe.of(self) | other

    def __ror__(self, other):
        raise ComponentError(f"{type(self).__name__} is a spout: nothing can be piped into it")


ANCHOR_INPUT = None  # the default of `Bolt.emit(anchors=...)`: the tuple being processed


class Bolt:
    """A processing step.

    Override `process(tup)`; emit with `self.emit(values, stream="default", anchors=...)`.
    `anchors` defaults to the tuple being processed; `anchors=()` emits unanchored; give several
    tuples for a join or a batch. Returning from `process` acks the input, raising fails it
    (the error, its traceback, the component, the task and the tuple are kept). A bolt with
    `auto_ack = False` acks or fails its inputs itself with `self.ack(t)` / `self.fail(t)`;
    it may define `flush()`, called when every spout is exhausted while the bolt still holds
    inputs, to emit and ack what it holds (this is how `chunk` emits its last partial batch).

    Optional: `prepare(context)`, `finish()` (a finite input has ended: emit final results;
    it may run again after a crash, so make it idempotent), `cleanup()`.

    `tick_every = seconds`: `tick()` is called every that many seconds while the run is up,
    where the task runs and between its inputs (Storm's tick tuples); what it emits starts
    trees of its own. See runtime/timers.py.

    `stateful = True`: the task gets `self.state` before `prepare`, a dict-like mapping of
    msgpack-serializable values that survives crashes exactly once: it is checkpointed with the
    log and rolled back with the trees that fail (see `runtime/trees.py` and the README,
    "Exactly-once state").
    """

    fields = None
    streams = None
    auto_ack = True
    stateful = False
    tick_every = None

    def prepare(self, context):
        pass

    def tick(self):
        pass

    def process(self, tup):
        raise NotImplementedError(f"{type(self).__name__} must define process(self, tup)")

    def finish(self):
        pass

    def cleanup(self):
        pass

    def emit(self, values, stream=DEFAULT, anchors=ANCHOR_INPUT):
        """Emit one tuple on `stream`, anchored to `anchors` (default: the input)."""
        return self._emit(values, stream, anchors, None)

    def emit_direct(self, task, values, stream=DEFAULT, anchors=ANCHOR_INPUT):
        """Emit one tuple to the task `task` (a task id from `context.tasks_of(component)`)
        of a bolt that subscribes to `stream` with `direct_grouping`."""
        return self._emit(values, stream, anchors, task)

    def ack(self, tup):
        return self._ack(tup)

    def fail(self, tup, error=None):
        return self._fail(tup, error)

    _emit = _ack = _fail = _unbound

    def __or__(self, other):
        from .pipes import Pipe
        return Pipe.of(self) | other

    def __ror__(self, other):
        from .pipes import Pipe
        return Pipe.of(other) | self


class IterableSpout(Spout):
    """Any iterable as a spout: one tuple per item (a tuple item gives the values, anything
    else a 1-tuple with field `value`).

    Its position is the number of items taken; `seek(n)` starts the iterable again and skips
    `n` items. That is exact for deterministic sources (a list, a range, a generator function
    that yields the same items on every run) and not for one-shot sources (an open socket).

    It hands over its items in batches (`next_batch`): a list, tuple or range up to the
    runtime's limit at once, any other iterator what it yields within BATCH_WAIT (5 ms). A stop
    signal while an iterator waits for its next item ends the call: the items that call took
    are not emitted, so a one-shot iterator loses them (as it loses its place on a restart).
    """

    def __init__(self, iterable, fields=None):
        if isinstance(iterable, (str, bytes)):
            raise ComponentError(
                f"a {type(iterable).__name__} is not a spout: wrap it in a list to emit it once")
        self.iterable = iterable
        self.fields = fields
        self.taken = 0
        self._it = None

    def open(self, context):
        self._it = iter(self.iterable)
        self.taken = 0

    def next_tuple(self):
        item = next(self._it)  # StopIteration ends the source
        self.taken += 1
        self._emit(item if item.__class__ is tuple else (item,), DEFAULT, None)

    def next_batch(self, limit):
        if isinstance(self.iterable, (list, tuple, range)):  # every item is at hand
            items = list(itertools.islice(self._it, limit))
        else:  # an iterator may wait between items: what it gave within BATCH_WAIT, so that none waits long
            items, deadline = [], time.monotonic() + BATCH_WAIT
            for item in self._it:
                items.append(item)
                if len(items) >= limit or time.monotonic() >= deadline:
                    break
        if not items:
            raise StopIteration
        self.taken += len(items)
        return [item if item.__class__ is tuple else (item,) for item in items]

    def position(self):
        return self.taken

    def progress(self):
        try:
            return self.taken, len(self.iterable), "records"
        except TypeError:  # a generator, an iterator: no length
            return None

    def seek(self, position):
        self._it = iter(self.iterable)
        self.taken = 0
        for _ in itertools.islice(self._it, position):
            self.taken += 1

    def __repr__(self):
        return f"IterableSpout({type(self.iterable).__name__})"


class FunctionBolt(Bolt):
    """A plain function as a bolt: called with the tuple's values as positional arguments.

    `None` emits nothing, a generator emits each item, anything else is one tuple (a non-tuple
    value becomes a 1-tuple). Output fields come from `fields=`, or from a `fields` attribute
    of the function, else they are undeclared (a 1-tuple is then named `value`).
    """

    def __init__(self, fn, fields=None):
        if not callable(fn):
            raise ComponentError(f"{fn!r} is not callable")
        self.fn = fn
        self.fields = fields if fields is not None else getattr(fn, "fields", None)

    def process(self, tup):
        result = self.fn(*tup.values)
        if result is None:
            return
        emit = self._emit
        if result.__class__ is types.GeneratorType:
            for item in result:
                emit(item if item.__class__ is tuple else (item,), DEFAULT, None, None)
            return
        emit(result if result.__class__ is tuple else (result,), DEFAULT, None, None)

    def __repr__(self):
        return f"FunctionBolt({getattr(self.fn, '__qualname__', self.fn)!r})"


def is_spout_like(obj):
    """A Spout, or an iterable that is not a bolt, a function or a string."""
    if isinstance(obj, Spout):
        return True
    if isinstance(obj, (Bolt, str, bytes)) or callable(obj):
        return False
    try:
        iter(obj)
    except TypeError:
        return False
    return True


def as_spout(name, obj, fields=None):
    """The Spout for `obj` (a Spout or an iterable), or a ComponentError naming `name`."""
    if isinstance(obj, Spout):
        return obj
    if isinstance(obj, (str, bytes)):
        raise ComponentError(
            f"component {name!r}: a {type(obj).__name__} is not a spout (it would emit one tuple per "
            "character); wrap it in a list to emit it once")
    if isinstance(obj, Bolt):
        raise ComponentError(
            f"component {name!r}: {type(obj).__name__} is a Bolt; declare it with topology.bolt()")
    if callable(obj):
        raise ComponentError(
            f"component {name!r}: a function is not a spout; a spout is a Spout subclass or an "
            "iterable (a list, a range, a generator)")
    if not is_spout_like(obj):
        raise ComponentError(
            f"component {name!r}: {obj!r} is neither a Spout nor an iterable")
    return IterableSpout(obj, fields=fields)


def as_bolt(name, obj, fields=None):
    """The Bolt for `obj` (a Bolt or a function), or a ComponentError naming `name`."""
    if isinstance(obj, Bolt):
        return obj
    if isinstance(obj, Spout):
        raise ComponentError(
            f"component {name!r}: {type(obj).__name__} is a Spout; declare it with topology.spout()")
    if callable(obj):
        return FunctionBolt(obj, fields=fields)
    raise ComponentError(
        f"component {name!r}: {obj!r} is neither a Bolt nor a function"
        + (" (an iterable is a spout: declare it with topology.spout())" if is_spout_like(obj) else ""))


def default_name(obj):
    """A component name made from the class or function name: `WordCount` -> `word_count`."""
    if isinstance(obj, ChunkBolt):
        return "chunk"
    if isinstance(obj, FunctionBolt):
        obj = obj.fn
    if isinstance(obj, IterableSpout):
        obj = obj.iterable
    if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        name = obj.__name__
        return "lambda" if name == "<lambda>" else name
    if inspect.isgenerator(obj):
        return obj.__name__
    cls = type(obj).__name__
    out = []
    for i, ch in enumerate(cls):
        if ch.isupper() and i and (cls[i - 1].islower() or (i + 1 < len(cls) and cls[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class ChunkBolt(Bolt):
    """Batches its inputs (see `consecution.chunk`): by count, or by runs of equal keys.

    It holds its inputs un-acked until their batch is emitted, so a batch must fill within
    `message_timeout`, and `max_pending` must leave room for a whole batch.
    """

    fields = ("batch",)
    auto_ack = False

    def __init__(self, size_or_key):
        if isinstance(size_or_key, bool) or not (callable(size_or_key) or isinstance(size_or_key, int)):
            raise ComponentError(f"chunk() takes a batch size or a key function, got {size_or_key!r}")
        if isinstance(size_or_key, int) and size_or_key < 1:
            raise ComponentError(f"chunk({size_or_key}): a batch size must be at least 1")
        self.size = None if callable(size_or_key) else size_or_key
        self.key_fn = size_or_key if callable(size_or_key) else None
        self.held = []
        self.key = None

    def process(self, tup):
        if self.size is not None:
            self.held.append(tup)
            if len(self.held) >= self.size:
                self.flush()
            return
        key = self.key_fn(tup)
        if self.held and key != self.key:
            self.flush()
        self.key = key
        self.held.append(tup)

    def flush(self):
        if not self.held:
            return
        held, self.held = self.held, []
        self.emit(([list(t.values) for t in held],), anchors=held)
        for t in held:
            self.ack(t)

    def finish(self):
        self.flush()


OUTPUT_PREFIX = "__output."  # the names of the components that write a named output


class OutputBolt(Bolt):
    """Writes a named output (`Topology.output`): the runtime gives it the output's entries as its state,
    which is committed with the trees that made its tuples, like any stateful bolt's state."""

    stateful = True
    writes_output = True

    def __init__(self, name, fields):
        self.name = name
        self.fields = fields

    def process(self, tup):
        self.state.append(tup.values)

    def __repr__(self):
        return f"OutputBolt({self.name!r})"
