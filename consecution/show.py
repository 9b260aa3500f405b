"""`consecution show`: a topology as text or as Graphviz DOT."""
from consecution.topology import FAILURES


def _grouping(g):
    if g.kind == "fields":
        return f"fields({', '.join(g.fields)})"
    if g.kind == "route":
        return "route(" + ", ".join(f"{r.name}=={i}" for r, i in g.fn) + ")"
    if g.kind == "custom":
        return f"custom({getattr(g.fn, '__qualname__', g.fn)})"
    return g.kind


def text(topology):
    t = topology
    lines = [f"topology {t.name}  fingerprint {t.fingerprint()}",
             f"  reliability={t.reliability} max_retries={t.max_retries} "
             f"message_timeout={t.message_timeout:g}s max_pending={t.max_pending}"]
    for name in t.topological_order():
        c = t.components[name]
        lines.append(f"  {c.kind:<5} {name}  x{c.parallelism}  ({type(c.obj).__name__})")
        for g in c.inputs:
            source = "<failures>" if g.source == FAILURES else f"{g.source}:{g.stream}"
            lines.append(f"          <- {source}  {_grouping(g)}")
        for stream, fields in c.streams.items():
            shown = ", ".join(fields) if fields is not None else "undeclared"
            lines.append(f"          -> {stream} ({shown})")
    return "\n".join(lines)


def dot(topology):
    t = topology
    lines = [f'digraph "{t.name}" {{', "  rankdir=LR;"]
    for name in t.topological_order():
        c = t.components[name]
        shape = "box" if c.kind == "spout" else "ellipse"
        label = name if c.parallelism == 1 else f"{name} x{c.parallelism}"
        lines.append(f'  "{name}" [shape={shape}, label="{label}"];')
    if any(g.source == FAILURES for c in t.bolts for g in c.inputs):
        lines.append(f'  "{FAILURES}" [shape=octagon, label="failures"];')
    for c in t.bolts:
        for g in c.inputs:
            label = _grouping(g) + ("" if g.stream == "default" else f" [{g.stream}]")
            lines.append(f'  "{g.source}" -> "{c.name}" [label="{label}"];')
    lines.append("}")
    return "\n".join(lines)
