"""The pipe syntax: graph expressions compiled into the same `Topology` graph.

    a | b                      b subscribes to a
    a | [b, c]                 both get every tuple (same as a | broadcast(b, c))
    a | [fn, b, c]             each tuple goes to branch fn(tup) (same as a | route(fn, b, c))
    [b, c] | d                 d subscribes to both (same as merge(b, c) | d)
    a | broadcast(b | c, d | e) | f     branches may be pipes; every end connects to f
    a | chunk(100) | d         batches of 100 tuples, one tuple with field `batch`

Rules: a list is a route only when its first item is a plain function and at least two
branches follow; any other list broadcasts. The route function gets the `Tuple`; it is part
of the edge, not a component, and runs once per tuple. `route(b, c)` without a function is
round robin. Names come from the class or function name (`WordCount` -> `word_count`), made
unique with `_2`, `_3`...; `component(obj, name=..., parallelism=..., group_by=...)` sets them.

A pipe is a value: composing never changes its operands, and using the same expression twice
gives two copies of its components.
"""
import types

from .components import (Bolt, ChunkBolt, Spout, as_bolt, as_spout, default_name,
                          is_spout_like)
from .errors import ComponentError, DuplicateNameError, TopologyError


class Node:
    """One component-to-be of a pipe: the user's object and how to declare it."""

    def __init__(self, obj, name=None, parallelism=1, group_by=None, fields=None, streams=None):
        self.obj = obj
        self.name = name
        self.parallelism = parallelism
        if isinstance(group_by, str):
            group_by = (group_by,)
        self.group_by = tuple(group_by) if group_by else None
        self.fields = fields
        self.streams = streams


def component(obj, name=None, parallelism=1, group_by=None, fields=None, streams=None):
    """A spout, bolt, function or iterable with declaration options, for use in a pipe.

    `group_by=("word",)` makes every edge into it a fields grouping on those fields.
    """
    return Pipe.single(Node(obj, name, parallelism, group_by, fields, streams))


class Router:
    """Picks one branch per tuple: `fn(tup)` returns the branch index; no fn: round robin."""

    def __init__(self, fn, n):
        if fn is not None and not callable(fn):
            raise ComponentError(f"route: {fn!r} is not a function")
        self.fn = fn
        self.n = n
        self.name = getattr(fn, "__qualname__", "round_robin") if fn else "round_robin"
        self._turn = 0

    def choose(self, tup):
        if self.fn is None:
            turn = self._turn
            self._turn = (turn + 1) % self.n
            return turn
        index = self.fn(tup)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self.n:
            raise IndexError(
                f"route function {self.name!r} returned {index!r} for {tup!r}; "
                f"it must return a branch index in range({self.n})")
        return index


class Pipe:
    """A graph expression: nodes, edges, the heads tuples enter by and the ends they leave by.

    `heads` are (node, routes) pairs: `routes` is a tuple of (Router, branch index) that a
    tuple must match to enter there (empty: every tuple).
    """

    def __init__(self, nodes, edges, heads, ends):
        self.nodes = nodes  # [Node]
        self.edges = edges  # [(src Node, dst Node, routes)]
        self.heads = heads  # [(Node, routes)]
        self.ends = ends    # [Node]

    @classmethod
    def single(cls, node):
        return cls([node], [], [(node, ())], [node])

    @classmethod
    def of(cls, obj):
        """The pipe for any operand: a pipe, a list (broadcast or route), a spout, a bolt, a
        function or an iterable."""
        if isinstance(obj, Pipe):
            return obj
        if isinstance(obj, list):
            return _from_list(obj)
        if isinstance(obj, tuple):
            raise TopologyError(
                f"a tuple {obj!r} in a pipe is ambiguous: use a list for branches "
                "or wrap an iterable in IterableSpout(...)")
        from .builder import Topology
        if isinstance(obj, Topology):
            raise TopologyError(
                f"{obj!r} cannot be part of a pipe: only `producer | topology` feeds one; to reuse "
                "steps in several topologies, reuse the pipe expression they were built from")
        if isinstance(obj, (Spout, Bolt)) or callable(obj) or is_spout_like(obj):
            return cls.single(Node(obj))
        raise ComponentError(f"{obj!r} cannot be part of a pipe: it is no spout, bolt, function or iterable")

    def __or__(self, other):
        from .builder import Topology
        if isinstance(other, Topology):
            return other.__ror__(self)  # `producer | topology`: a fed copy of the topology
        right = Pipe.of(other)
        mine = {id(n) for n in self.nodes}
        if any(id(n) in mine for n in right.nodes):
            right = _copy(right)  # `s | p | p`: the second p is a copy of the first
        edges = self.edges + right.edges
        for end in self.ends:
            for head, routes in right.heads:
                edges.append((end, head, routes))
        return Pipe(self.nodes + right.nodes, edges, self.heads, right.ends)

    def __ror__(self, other):
        return Pipe.of(other) | self

    def compile_into(self, topology, open_start=False, spouts_only=False):
        """Declare every node of this pipe in `topology`, with its subscriptions. With
        `open_start`, bolts at the start of the pipe are left without inputs and returned as
        [(name, routes, group_by)] (the entries of `producer | topology`); with `spouts_only`
        every node must be a spout, and their names are returned."""
        names, used = {}, set(topology.components)
        incoming = {id(n): [] for n in self.nodes}
        for src, dst, routes in self.edges:
            incoming[id(dst)].append((src, routes))
        for node in self.nodes:  # explicit names first, so generated ones step aside
            if node.name:
                names[id(node)] = _unique(node.name, used, explicit=True)
        for node in self.nodes:
            if not node.name:
                names[id(node)] = _unique(default_name(node.obj), used, explicit=False)
        entries, heads = [], {id(n): routes for n, routes in self.heads}
        for node in self.nodes:
            name = names[id(node)]
            is_bolt = isinstance(node.obj, Bolt) or (callable(node.obj) and not isinstance(node.obj, Spout))
            if spouts_only and (is_bolt or incoming[id(node)]):
                raise TopologyError(
                    f"`producer | topology`: {name!r} is not a spout; the producer is one spout or iterable")
            if not incoming[id(node)]:
                if is_bolt and open_start and id(node) in heads:
                    topology.bolt(name, as_bolt(name, node.obj, node.fields), node.parallelism,
                                  fields=node.fields, streams=node.streams)
                    entries.append((name, heads[id(node)], node.group_by))
                    continue
                if is_bolt:
                    raise TopologyError(
                        f"pipe component {name!r} has no input: a pipe starts with a spout or an iterable")
                topology.spout(name, as_spout(name, node.obj, node.fields), node.parallelism,
                               fields=node.fields, streams=node.streams)
                continue
            if isinstance(node.obj, Spout) or (is_spout_like(node.obj) and not isinstance(node.obj, Bolt)):
                sources = ", ".join(names[id(s)] for s, _ in incoming[id(node)])
                raise TopologyError(
                    f"pipe component {name!r} is a spout but is piped from {sources}; "
                    "a spout has no inputs")
            declarer = topology.bolt(name, as_bolt(name, node.obj, node.fields), node.parallelism,
                                     fields=node.fields, streams=node.streams)
            for src, routes in incoming[id(node)]:
                source = names[id(src)]
                if routes:
                    declarer._add("route", source, fn=routes)
                elif node.group_by:
                    declarer.fields_grouping(source, *node.group_by)
                else:
                    declarer.shuffle_grouping(source)
        if spouts_only:
            return [names[id(n)] for n in self.nodes]
        return entries


def _unique(base, used, explicit):
    if explicit and base in used:
        raise DuplicateNameError(f"pipe: two components are named {base!r}")
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def _copy(pipe):
    """A copy of `pipe` with fresh nodes, so one expression used twice gives two components."""
    fresh = {id(n): Node(n.obj, n.name, n.parallelism, n.group_by, n.fields, n.streams)
             for n in pipe.nodes}
    return Pipe([fresh[id(n)] for n in pipe.nodes],
                [(fresh[id(s)], fresh[id(d)], r) for s, d, r in pipe.edges],
                [(fresh[id(n)], r) for n, r in pipe.heads],
                [fresh[id(n)] for n in pipe.ends])


def _parallel(branches, router=None):
    """Branches side by side: their heads (routed by `router` if given) and their ends."""
    if not branches:
        raise TopologyError("broadcast, route and merge need at least one branch")
    nodes, edges, heads, ends, seen = [], [], [], [], set()
    for index, branch in enumerate(branches):
        pipe = Pipe.of(branch)
        if any(id(n) in seen for n in pipe.nodes):
            pipe = _copy(pipe)
        seen.update(id(n) for n in pipe.nodes)
        nodes += pipe.nodes
        edges += pipe.edges
        extra = ((router, index),) if router else ()
        heads += [(node, extra + routes) for node, routes in pipe.heads]
        ends += pipe.ends
    return Pipe(nodes, edges, heads, ends)


def broadcast(*branches):
    """Every tuple goes to every branch."""
    return _parallel(branches)


def merge(*branches):
    """The ends of every branch feed what follows: `merge(b, c) | d`."""
    return _parallel(branches)


def route(*args):
    """`route(fn, b, c, ...)`: each tuple goes to branch `fn(tup)`; `route(b, c)`: round robin."""
    if args and isinstance(args[0], types.FunctionType) and len(args) >= 3:
        fn, branches = args[0], args[1:]
    elif args and isinstance(args[0], types.FunctionType) and len(args) == 2:
        raise TopologyError("route(fn, b) has one branch: give at least two")
    else:
        fn, branches = None, args
    return _parallel(branches, Router(fn, len(branches)))


def _from_list(items):
    if len(items) >= 3 and isinstance(items[0], types.FunctionType):
        return route(*items)
    return broadcast(*items)


def chunk(size_or_key):
    """Batches: `chunk(n)` emits one tuple per n inputs; `chunk(fn)` one per run of consecutive
    inputs with the same `fn(tup)`. The batch tuple has the single field `batch` (the inputs'
    values, as lists) and is anchored to every input; the last partial batch is emitted when
    the spouts are exhausted."""
    return Pipe.single(Node(ChunkBolt(size_or_key)))
