"""Groupings at run time: for a tuple emitted on a stream, the task ids that receive it.

`Routing(topology, tasks)` compiles every subscription once into an `Outlet`; `targets()`
is then a loop over the outlets of one (component, stream). Round robin counters live in the
`Routing` of the emitting task, so shuffle is deterministic in single mode. Fields hashing
is crc32 of the msgpack encoding of the grouped values: stable across processes and runs.
"""
import zlib

from consecution.storage import encode
from consecution.topology import Tuple, TopologyError


class RoutingError(TopologyError):
    """A tuple cannot be routed: an undeclared stream, a bad direct task, a bad custom choice."""


def stable_hash(values):
    """The same int for the same values in every process and run (unlike `hash()`)."""
    if len(values) == 1 and values[0].__class__ is str:
        return zlib.crc32(values[0].encode())
    return zlib.crc32(encode(list(values)))


class FieldsPick:
    """The task of a one-field fields grouping for a key (`pick(key)`), remembered for a str
    key: a lookup in `memo` where `stable_hash` costs an encode and a crc32 (a generated chain
    looks in `memo` itself and calls this only for a key it has not seen). Only str keys are
    remembered (1, 1.0 and True are one dict key but three msgpack encodings); the memo is
    emptied when it holds `size` keys, so a stream of ever new keys costs a bounded memory."""

    __slots__ = ("tasks", "memo", "size")

    def __init__(self, tasks, size=65536):
        self.tasks, self.memo, self.size = tasks, {}, size

    def __call__(self, key):
        if key.__class__ is str:
            task = self.memo.get(key)
            if task is not None:
                return task
        task = self.tasks[stable_hash((key,)) % len(self.tasks)]
        if key.__class__ is str:
            if len(self.memo) >= self.size:
                self.memo.clear()
            self.memo[key] = task
        return task


class Outlet:
    """One subscription of one bolt to one stream, compiled."""

    __slots__ = ("kind", "bolt", "tasks", "positions", "fn", "_next", "shared", "pick")

    SHUFFLES = ("shuffle", "local_or_shuffle", "none", "failure")  # any task will do

    def __init__(self, grouping, bolt, tasks, fields):
        self.kind = grouping.kind
        self.bolt = bolt
        self.tasks = tasks
        self.fn = grouping.fn
        self.positions = ()
        if self.kind == "fields":
            self.positions = tuple(fields.index[f] for f in grouping.fields) if fields is not None else (0,)
        self.pick = FieldsPick(tasks) if len(self.positions) == 1 else None  # one field: its picks remembered
        self._next = 0
        self.shared = None  # a shuffle whose task is picked later, by the executor (see localize)

    def _round_robin(self):
        """The next of the tasks, in turn (all of them when there is one)."""
        tasks = self.tasks
        if len(tasks) == 1:
            return tasks
        i = self._next
        self._next = (i + 1) % len(tasks)
        return (tasks[i],)

    def choose(self, values, tup, choices):
        """The task ids for one tuple. `tup` is a callable that makes the Tuple on demand;
        `choices` caches each router's pick for this tuple."""
        kind, tasks = self.kind, self.tasks
        if kind == "shuffle" or kind == "local_or_shuffle" or kind == "none" or kind == "failure":
            if self.shared is not None:
                return (self.shared,)
            return self._round_robin()
        if kind == "fields":
            if self.pick is not None:
                return (self.pick(values[self.positions[0]]),)
            key = [values[p] for p in self.positions]
            return (tasks[stable_hash(key) % len(tasks)],)
        if kind == "all":
            return tasks
        if kind == "global":
            return tasks[:1]
        if kind == "route":
            for router, branch in self.fn:
                pick = choices.get(router)
                if pick is None:
                    pick = choices[router] = router.choose(tup())
                if pick != branch:
                    return ()
            return self._round_robin()
        if kind == "custom":
            picked = self.fn(tup(), len(tasks))
            picked = [picked] if isinstance(picked, int) else list(picked)
            for p in picked:
                if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p < len(tasks):
                    raise RoutingError(
                        f"custom grouping of bolt {self.bolt!r} returned {p!r}; "
                        f"it must return indexes in range({len(tasks)})")
            return tuple(tasks[p] for p in picked)
        return ()  # direct: only emit_direct reaches it


class Routing:
    """The outlets of every stream of one component, for the tasks of one emitting task."""

    def __init__(self, topology, component, tasks_by_component):
        self.component = component.name
        self.streams = component.streams
        self.outlets = {}
        self.direct = {}  # stream -> {task id: bolt name}
        for stream, fields in component.streams.items():
            outlets = []
            for bolt, grouping in topology.subscribers(component.name, stream):
                tasks = tuple(tasks_by_component[bolt.name])
                if grouping.kind == "direct":
                    self.direct.setdefault(stream, {}).update((t, bolt.name) for t in tasks)
                    continue
                outlets.append(Outlet(grouping, bolt.name, tasks, fields))
            self.outlets[stream] = tuple(outlets)
        self._fix()

    def _fix(self):
        """Find the streams whose subscribers each have one task and no function to ask: their
        targets are a constant answer."""
        self.fixed = {}
        for stream, outlets in self.outlets.items():
            if all(o.shared is not None or len(o.tasks) == 1 and o.kind not in ("route", "custom") for o in outlets):
                self.fixed[stream] = tuple(o.shared if o.shared is not None else o.tasks[0] for o in outlets)

    def localize(self, local, shared=None):
        """Process mode: shuffle groupings send to the subscriber's tasks in this process when
        it has some (as Storm's local-or-shuffle and load-aware shuffle do: a direct call
        instead of a frame to another process). Where it has none and `shared` is given (the
        supervisor's), the task is picked later: `shared(tasks)` returns a stand-in id (< 0)
        for "any of these", and the executor gives each such tuple to whichever worker asks
        for work next, so a busy worker gets less."""
        for outlets in self.outlets.values():
            for outlet in outlets:
                if outlet.kind not in Outlet.SHUFFLES or len(outlet.tasks) == 1:
                    continue
                mine = tuple(t for t in outlet.tasks if t in local)
                if mine:
                    outlet.tasks = mine
                elif shared is not None:
                    outlet.shared = shared(outlet.tasks)
        self._fix()

    def targets(self, stream, values, task=None, direct=None):
        """The task ids of every subscriber that gets `values` emitted on `stream`."""
        if direct is None:
            fixed = self.fixed.get(stream)
            if fixed is not None:
                return fixed
        try:
            outlets = self.outlets[stream]
        except KeyError:
            raise RoutingError(
                f"component {self.component!r} emitted on undeclared stream {stream!r}; "
                f"it declares {', '.join(sorted(self.streams))}") from None
        if direct is not None:
            bolts = self.direct.get(stream, {})
            if direct not in bolts:
                raise RoutingError(
                    f"component {self.component!r} emitted directly to task {direct!r} on stream "
                    f"{stream!r}, which no direct_grouping subscriber of that stream owns "
                    f"(direct tasks: {sorted(bolts) or 'none'})")
            return (direct,)
        if not outlets:
            return ()
        if len(outlets) == 1 and outlets[0].kind != "route" and outlets[0].kind != "custom":
            return outlets[0].choose(values, None, None)
        made = []

        def tup():
            if not made:
                made.append(Tuple(values, stream, self.component, task, None, (), self.streams[stream]))
            return made[0]

        choices = {}
        out = []
        for outlet in outlets:
            out.extend(outlet.choose(values, tup, choices))
        return out
