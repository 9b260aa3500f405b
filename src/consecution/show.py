"""`consecution show`: a topology as text or as Graphviz DOT.

Named outputs (`Topology.output`) are drawn as outputs, not as their hidden writer bolts; the
entries of an open topology (one that `producer | topology` feeds) are marked as such. Fields
not known yet (an `Output` spout whose producer has not declared the output) are shown as
"not known yet", with the reason, and so is the fingerprint, which covers them.
"""
import shutil
import subprocess

from consecution.loading import UsageError
from consecution.topology import DEFAULT, FAILURES, OUTPUT_PREFIX, Grouping

INSTALL_DOT = ("install Graphviz, which provides it: `apt install graphviz` (Debian, Ubuntu), "
               "`dnf install graphviz` (Fedora), `brew install graphviz` (macOS), or see "
               "https://graphviz.org/download/")

INPUT = "__input"  # the DOT node that stands for the producer of an open topology


def _grouping(g):
    if g.kind == "fields":
        return f"fields({', '.join(g.fields)})"
    if g.kind == "route":
        return "route(" + ", ".join(f"{r.name}=={i}" for r, i in g.fn) + ")"
    if g.kind == "custom":
        return f"custom({getattr(g.fn, '__qualname__', g.fn)})"
    return g.kind


def _entry_grouping(routes, group_by):
    """How `producer | topology` will subscribe an entry to the producer."""
    if routes:
        return _grouping(Grouping("route", "", fn=routes))
    if group_by:
        return _grouping(Grouping("fields", "", fields=group_by))
    return "shuffle"


def _max_pending(t):
    """The setting, or what a run uses without one."""
    from consecution.runtime.core import STATEFUL_MAX_PENDING
    if t.max_pending is None and t.reliability != "none" and any(c.stateful for c in t.bolts):
        return f"{STATEFUL_MAX_PENDING} (stateful bolts)"
    return t.max_pending


def _reads_output(obj):
    from consecution.spouts.output import Output  # here: the spouts package is slow to import
    return isinstance(obj, Output)


def _fields(fields, known=True):
    if not known:
        return "not known yet"
    return ", ".join(fields) if fields is not None else "undeclared"


def text(topology):
    t = topology
    unknown = t.unknown_fields()
    fingerprint = "not known yet" if unknown else t.fingerprint()
    lines = [f"topology {t.name}  fingerprint {fingerprint}",
             f"  reliability={t.reliability} max_retries={t.max_retries} "
             f"message_timeout={t.message_timeout:g}s max_pending={_max_pending(t)}"
             + (f" task_timeout={t.task_timeout:g}s" if t.task_timeout is not None else "")]
    entries = {name: _entry_grouping(routes, group_by) for name, routes, group_by in t.entries}
    for name in t.topological_order():
        c = t.components[name]
        if name.startswith(OUTPUT_PREFIX):
            output = name[len(OUTPUT_PREFIX):]
            source, stream = t.outputs[output]
            known = source not in unknown or stream != DEFAULT
            lines.append(f"  output {output}  <- {source}:{stream}  ({_fields(c.streams[DEFAULT], known)})")
            continue
        what = type(c.obj).__name__
        if _reads_output(c.obj):
            what = f"Output {c.obj.state_dir} {c.obj.name!r}"
        lines.append(f"  {c.kind:<5} {name}  x{c.parallelism}  ({what})")
        if name in entries:
            lines.append(f"          <- (entry: fed by producer | topology)  {entries[name]}")
        for g in c.inputs:
            source = "<failures>" if g.source == FAILURES else f"{g.source}:{g.stream}"
            lines.append(f"          <- {source}  {_grouping(g)}")
        for stream, fields in c.streams.items():
            lines.append(f"          -> {stream} ({_fields(fields, name not in unknown or stream != DEFAULT)})")
    for exc in unknown.values():
        lines.append(f"  fields not known yet: {exc}; `consecution run` waits for them")
    return "\n".join(lines)


def draw(topology, fmt, path):
    """Draw `topology` into `path` as `fmt` ("svg" or "png") with Graphviz's `dot` program.
    Raises UsageError (exit 2) without it, or when it fails (its message)."""
    program = shutil.which("dot")
    if program is None:
        raise UsageError(f"drawing a picture needs the `dot` program of Graphviz, not found on PATH; {INSTALL_DOT}")
    try:
        done = subprocess.run([program, f"-T{fmt}", "-o", path], input=dot(topology), capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"running {program} failed: {exc}") from None
    if done.returncode != 0:
        raise UsageError(f"{program} could not draw {path}: {done.stderr.strip()}")


def _quote(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def dot(topology):
    t = topology
    lines = [f'digraph "{_quote(t.name)}" {{', "  rankdir=LR;",
             f'  label="topology {_quote(t.name)}"; labelloc=t; fontname="Helvetica";',
             '  node [fontname="Helvetica", fontsize=11]; edge [fontname="Helvetica", fontsize=9];']
    if t.entries:
        lines.append(f'  "{INPUT}" [shape=point, xlabel="input"];')
    for name in t.topological_order():
        c = t.components[name]
        if name.startswith(OUTPUT_PREFIX):
            lines.append(f'  "{name}" [shape=cds, label="output {name[len(OUTPUT_PREFIX):]}"];')
            continue
        shape = "box" if c.kind == "spout" else "ellipse"
        label = _quote(name if c.parallelism == 1 else f"{name} x{c.parallelism}")
        if _reads_output(c.obj):
            label += "\\n" + _quote(f"reads output {c.obj.name!r}") + "\\n" + _quote(f"of {c.obj.state_dir}")
        if c.stateful:
            label += "\\nstateful"
        if c.unknown is not None:
            label += "\\nfields not known yet"
        style = ', style="rounded,filled", fillcolor="#dbe9f6"' if c.kind == "spout" else ""
        if c.stateful:
            style += ", peripheries=2"
        lines.append(f'  "{name}" [shape={shape}, label="{label}"{style}];')
    if any(g.source == FAILURES for c in t.bolts for g in c.inputs):
        lines.append(f'  "{FAILURES}" [shape=octagon, label="failures"];')
    for name, routes, group_by in t.entries:
        lines.append(f'  "{INPUT}" -> "{name}" [label="{_entry_grouping(routes, group_by)}", style=dashed];')
    for c in t.bolts:
        for g in c.inputs:
            stream = "" if g.stream == DEFAULT else g.stream
            if c.name.startswith(OUTPUT_PREFIX):  # one global grouping, always: only the stream tells
                label = stream
            else:
                label = _grouping(g) + (f" [{stream}]" if stream else "")
            attrs = f' [label="{_quote(label)}"]' if label else ""
            lines.append(f'  "{g.source}" -> "{c.name}"{attrs};')
    lines.append("}")
    return "\n".join(lines)
