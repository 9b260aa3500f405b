"""Checking a topology before it runs: its order, its fields resolved late, its subscriptions.

`Topology.validate`, `resolve_fields` and `topological_order` are these functions; each error
names the component, the stream or the field, and what to do.
"""
from .components import DEFAULT, OUTPUT_PREFIX
from .errors import CycleError, FieldError, FieldsNotKnown, TopologyError, UnknownSourceError
from .tuples import Fields


def topological_order(topology):
    order, state = [], {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = path[path.index(name):] + [name]
            raise CycleError(
                f"topology {topology.name!r} has a cycle: {' -> '.join(cycle)}; tuples must flow one way")
        state[name] = "visiting"
        for g in topology.components[name].inputs:
            if g.source in topology.components:
                visit(g.source, path + [name])
        state[name] = "done"
        order.append(name)

    for name in topology.components:
        visit(name, [])
    return order


def resolve_fields(topology, allow_unknown):
    unknown = []
    for c in topology.components.values():
        if c.late and not c.resolved:
            exc = _resolve(topology, c)
            if exc is not None:
                unknown.append(exc)
    if unknown and not allow_unknown:
        first = unknown[0]
        exc = FieldsNotKnown(
            f"{first}; `consecution run` and consecution.run() wait for them; before Scheduler(...), "
            "wait with consecution.runtime.wait_for_fields(topology)", first.event, **first.details)
        exc.component = first.component
        raise exc
    return unknown


def _resolve(topology, c):
    """Ask `c` once; its FieldsNotKnown (naming it) while its fields are not known."""
    try:
        fields = c.obj.resolve_fields()
    except FieldsNotKnown as exc:
        exc.args = (f"component {c.name!r}: {exc}",)
        exc.component = c.name
        c.unknown = exc
        return exc
    if fields is None:  # resolved: its stream declares no fields (positional values, `value`)
        c.unknown, c.resolved = None, True
        return None
    if isinstance(fields, str):
        raise FieldError(f"component {c.name!r}: resolve_fields() returned {fields!r}, not a tuple of names")
    fields = Fields(fields)
    declared = c.streams.get(DEFAULT)
    if declared is not None and tuple(declared) != tuple(fields):
        raise FieldError(
            f"component {c.name!r} declares fields {tuple(declared)!r}, but {c.obj!r} has {tuple(fields)!r}")
    _set_fields(topology, c, fields)
    c.unknown, c.resolved = None, True
    return None


def _set_fields(topology, c, fields):
    """`c`'s default stream has `fields`, and so has each output that re-exports it."""
    c.streams = {**c.streams, DEFAULT: fields}
    for name, (source, stream) in topology.outputs.items():
        if source == c.name and stream == DEFAULT:
            topology.components[OUTPUT_PREFIX + name].streams = {DEFAULT: fields}


def validate(topology, allow_open, allow_unknown):
    resolve_fields(topology, allow_unknown)
    entries = {e[0] for e in topology.entries} if allow_open else set()
    if not topology.spouts and not entries:
        if topology.entries:
            raise TopologyError(
                f"topology {topology.name!r} has no spout: it starts with "
                f"{', '.join(repr(e[0]) for e in topology.entries)}; feed it with `producer | topology`")
        raise TopologyError(f"topology {topology.name!r} has no spout: nothing would ever flow")
    for c in topology.bolts:
        if not c.inputs and c.name not in entries:
            raise UnknownSourceError(
                f"bolt {c.name!r} subscribes to nothing; chain a grouping on it, e.g. "
                f"topology.bolt({c.name!r}, ...).shuffle_grouping('<source>')")
        for g in c.inputs:
            _check_input(topology, c, g)
    topological_order(topology)
    _input_fields_for_late_streams(topology)


def _input_fields_for_late_streams(topology):
    """A windowed bolt's `late` stream carries its input as it came: it gets the input's fields
    when every input stream has the same ones (else it stays undeclared)."""
    for c in topology.bolts:
        if not getattr(c.obj, "late_takes_input_fields", False) or c.streams.get("late") is not None:
            continue
        found = {tuple(f) if f is not None else None for f in
                 (topology.components[g.source].streams.get(g.stream) for g in c.inputs
                  if g.source in topology.components)}
        if len(found) == 1 and None not in found:
            c.streams = {**c.streams, "late": next(iter(found))}


def _check_input(topology, c, g):
    if g.kind == "failure":
        return
    source = topology.components.get(g.source)
    if source is None:
        known = ", ".join(sorted(topology.components)) or "none"
        raise UnknownSourceError(
            f"bolt {c.name!r} subscribes to unknown component {g.source!r} (declared: {known})")
    if g.stream not in source.streams:
        raise UnknownSourceError(
            f"bolt {c.name!r} subscribes to stream {g.stream!r} of {g.source!r}, which declares "
            f"only {', '.join(sorted(source.streams))}")
    if g.kind != "fields" or (source.unknown is not None and g.stream == DEFAULT):
        return  # a stream whose fields are not known yet is checked once they are
    declared = source.streams[g.stream]
    for field in g.fields:
        if declared is None:
            if g.fields == ("value",):
                continue
            raise FieldError(
                f"bolt {c.name!r} groups on field {field!r} of {g.source!r} stream {g.stream!r}, "
                f"which declares no fields; declare them (fields=(...)) on {g.source!r}")
        if field not in declared:
            raise FieldError(
                f"bolt {c.name!r} groups on field {field!r} of {g.source!r} stream {g.stream!r}, "
                f"which declares {tuple(declared)!r}")
