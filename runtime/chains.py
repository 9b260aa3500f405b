"""Compiled chains: the steps one process runs by direct calls, as generated functions.

In single mode, and inside each worker process, a task whose subscriber runs in the same
process with `auto_ack` hands it each tuple by a direct call, depth first; such a tuple needs
no id of its own (DESIGN.md, "fused"). Instead of generic emit/execute layers per tuple,
`Chains` writes, once per run, one Python function per task and input edge (the way
`collections.namedtuple` and `dataclasses` build theirs) in which the task's user call, the
checks of what it emits (declared arity, msgpack-safe values) and the calls of the fused steps
after it are inlined:

    run(values, roots, tid) -> xor

`values` is the input's values, `roots` the trees it belongs to (empty when untracked).
`tid` 0 marks a fused input (called by the step before it): `run` returns the XOR of the ids
of the children it queued, for the caller's ack. Any other `tid` is a queued input's id (None
when untracked): `run` acks it itself. A user error fails `roots` with the component and task
that raised; the steps before it go on with their next tuples, as with queued deliveries.

A plain function gets the values (no `Tuple` is made for it); a `Bolt` gets a `Tuple` that is
reused for the next input of the same edge unless the bolt kept a reference to it (seen with
`sys.getrefcount`), so a bolt may keep tuples (to ack later, or to batch them) at no risk.

`Chains(..., debug=True)` or `CONSECUTION_DEBUG_CHAINS=1` prints every generated function.
"""
import os
import sys
import time
import traceback as tb_module
from types import GeneratorType

from consecution.acker import new_id
from consecution.storage.codec import SCALARS, all_scalars
from consecution.topology import FAILURE_FIELDS, FAILURES, FunctionBolt, Tuple

from .codegen import Source, fits, safe
from .meter import LATENCY_EVERY
from .routing import stable_hash

INLINE_DEPTH = 3  # function steps inlined into one generated function; deeper ones are called


def describe(exc):
    """How an error is named in logs and dead letters."""
    return f"{type(exc).__name__}: {exc}"


class Chains:
    """Builds and caches the generated `run` functions and emit paths of the bolt tasks of one
    process. `tasks`: task id -> BoltTask (those in this process); `fused`: per task id the
    task to call directly, or None (queued through the emitting task's sink); `streams`:
    component -> its streams (for the fields of each input edge)."""

    def __init__(self, tasks, fused, streams, tracking, collect, debug=None, remote=(), meter=None):
        self.tasks = tasks
        self.meter = meter  # a Meter (runtime/meter.py): the generated code counts; None: it does not
        self.fused = fused
        self.remote = frozenset(remote)  # auto-ack tasks of other workers: fed through outlets
        self.streams = dict(streams)
        self.streams[FAILURES] = {"default": FAILURE_FIELDS}
        self.tracking = tracking
        self.collect = collect
        self.debug = debug if debug is not None else bool(os.environ.get("CONSECUTION_DEBUG_CHAINS"))
        self._runs = {}

    @classmethod
    def bind(cls, tasks, fused, topology, tracking, collect, remote=(), meter=None):
        """Chains for `tasks` (task id -> BoltTask), each task bound to them. `remote`: the ids
        of auto-ack tasks in other processes, whose deliveries go through the sink's outlets
        (runtime/events.py). `meter`: counts to keep (runtime/meter.py), or None."""
        chains = cls(tasks, fused, {name: c.streams for name, c in topology.components.items()}, tracking, collect,
                     remote=remote, meter=meter)
        for task in tasks.values():
            task.bind(chains)
        return chains

    def run(self, task_id, source, source_task, stream):
        """The generated function for inputs of task `task_id` from (`source`, `source_task`,
        `stream`)."""
        key = (task_id, source, source_task, stream)
        fn = self._runs.get(key)
        if fn is None:
            fn = self._runs[key] = self._build_run(self.tasks[task_id], source, source_task, stream)
        return fn

    def run_each(self, task_id, source, source_task, stream, width):
        """The generated function for a run of inputs another worker sent through an outlet
        (runtime/events.py): `run(items, roots, 0)` runs each item as a fused input (each a
        values tuple when `width` is None, the value itself when it is 1, else `width` values
        in a row) and returns the XOR of what they queued. All items share `roots`: when one
        fails, their trees fail (a plain function's run stops there; a Bolt sees the rest)."""
        key = (task_id, source, source_task, stream, width)
        fn = self._runs.get(key)
        if fn is None:
            fn = self._runs[key] = self._build_run_each(self.tasks[task_id], source, source_task, stream, width)
        return fn

    def run_batch(self, task_id, source, source_task, stream):
        """The generated function for a batch of untracked inputs (reliability "none": a
        spout's `next_batch`): `run(rows, (), 0)` runs each values tuple of `rows` as a fused
        input; one that raises is failed alone, the others run."""
        key = (task_id, source, source_task, stream, "batch")
        fn = self._runs.get(key)
        if fn is None:
            fn = self._runs[key] = self._build_run_batch(self.tasks[task_id], source, source_task, stream)
        return fn

    def _build_run_batch(self, task, source, source_task, stream):
        fields = self.streams[source][stream]
        src = Source()
        src.batch = True
        self._common(src, task)
        edge = (src.name("STREAM", stream), src.name("SOURCE", source), src.name("SOURCE_TASK", source_task),
                src.name("FIELDS", fields))
        src.start("def run(rows, roots, tid):")
        src.add(1, "xor = 0")
        src.add(1, "for values in rows:")
        if _is_function(task):
            self._function_step(src, 2, task, "values", edge, 0)
        else:
            self._bolt_step(src, 2, task, "values", edge)
        src.add(1, "return xor")
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}, batches")

    def _build_run_each(self, task, source, source_task, stream, width):
        fields = self.streams[source][stream]
        src = Source()
        self._common(src, task)
        edge = (src.name("STREAM", stream), src.name("SOURCE", source), src.name("SOURCE_TASK", source_task),
                src.name("FIELDS", fields))
        src.start("def run(items, roots, tid):")
        src.add(1, "xor = 0")
        if width == 1:
            src.add(1, "for item in items:")
            src.add(2, "values = (item,)")
        elif width is None:
            src.add(1, "for item in items:")
            src.add(2, "values = tuple(item)")
        else:
            src.add(1, f"for i in range(0, len(items), {width}):")
            src.add(2, f"values = tuple(items[i:i + {width}])")
        if _is_function(task):
            self._function_step(src, 2, task, "values", edge, 0)  # an error returns: the run's trees failed
        else:
            self._bolt_step(src, 2, task, "values", edge)  # an error fails the roots; the rest still run
        src.add(1, "return xor")
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}, runs")

    def is_fused(self, task_id):
        return self.fused is not None and self.fused[task_id] is not None

    def deliver(self, task, stream, fields, values, roots, targets, counted=False):
        """What `task` emitted on `stream` to each of `targets` (task ids), not compiled: fused
        ones run here, the others are queued through the task's sink with a fresh id (none
        when `roots` is empty). Returns the XOR of the ids queued and of what the fused ones
        queued, for the emitter's ack. `counted`: the emit is counted already (by the
        generated code that routes it here)."""
        xor = 0
        component, task_id, sink = task.component, task.task_id, task.sink
        if self.meter is not None and not counted:
            self.meter.emitted[task_id] += 1
        for target in targets:
            if self.is_fused(target):
                xor ^= self.run(target, component, task_id, stream)(values, roots, 0)
            elif roots:
                i = new_id()
                xor ^= i
                sink.send(target, values, stream, component, task_id, i, roots, fields)
            else:
                sink.send(target, values, stream, component, task_id, None, (), fields)
        return xor

    # -- generation --------------------------------------------------------------------------

    def _common(self, src, task):
        sink = task.sink
        src.names.update(Tuple=Tuple, GeneratorType=GeneratorType, SCALARS=SCALARS, new_id=new_id,
                         describe=describe, format_exc=tb_module.format_exc, all_scalars=all_scalars,
                         getrefcount=sys.getrefcount, send=sink.send, ack=sink.ack, fail=sink.fail,
                         stable_hash=stable_hash)
        if self.collect:
            src.names["collect"] = sink.collect
        if self.meter is not None:
            meter = self.meter
            src.names.update(EXECUTED=meter.executed, EMITTED=meter.emitted, FAILED=meter.failed,
                             observe=meter.observe, perf_counter=time.perf_counter)

    def _call(self, src, d, task, call):
        """The line `call` (the user's code of `task`), counted and one in LATENCY_EVERY timed
        when the run keeps a meter."""
        if self.meter is None:
            src.add(d, call)
            return
        t, n = task.task_id, src.var("n")
        src.add(d, f"{n} = EXECUTED[{t}] = EXECUTED[{t}] + 1")
        src.add(d, f"if {n} & {LATENCY_EVERY - 1}:")
        src.add(d + 1, call)
        src.add(d, "else:")
        src.add(d + 1, "started = perf_counter()")
        src.add(d + 1, call)
        src.add(d + 1, f"observe({t}, perf_counter() - started)")

    def _count_failed(self, src, d, task):
        if self.meter is not None:
            src.add(d, f"FAILED[{task.task_id}] += 1")

    def _compile(self, src, name):
        return src.compile(name, self.debug)

    def _build_run(self, task, source, source_task, stream):
        fields = self.streams[source][stream]
        src = Source()
        self._common(src, task)
        edge = (src.name("STREAM", stream), src.name("SOURCE", source), src.name("SOURCE_TASK", source_task),
                src.name("FIELDS", fields))
        if isinstance(task.obj, FunctionBolt) and type(task.obj).process is FunctionBolt.process:
            src.start("def run(values, roots, tid):")
            src.add(1, "xor = 0")
            self._function_step(src, 1, task, "values", edge, 0)
            src.add(1, "if tid:")
            src.add(2, "ack(roots, tid ^ xor)")
            src.add(2, "return 0")
            src.add(1, "return xor")
        else:
            self._bolt_run(src, task, edge)
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}")

    def _bolt_run(self, src, task, edge):
        """A Bolt's process of one input: fused (tid 0: the XOR of what it queued is returned)
        or queued (acked here, unless the bolt acked or failed it by hand)."""
        src.start("def run(values, roots, tid):")
        src.add(1, "xor = 0")
        self._bolt_step(src, 1, task, "values", edge, queued=True)
        src.add(1, "if tid:")
        src.add(2, "ack(roots, tid ^ xor)")
        src.add(2, "return 0")
        src.add(1, "return xor")

    def _bolt_step(self, src, d, task, values, edge, queued=False):
        """Inline a Bolt's process of one input: the edge's Tuple is reused unless the bolt kept
        a reference to it; the XOR of what it queued joins `xor`. `queued`: at the top of a
        run, where the input has an id (`tid`) and a failure or an ack by hand returns at once.
        In a run function the Tuple is fetched, and given the call's roots, once per call."""
        stream, source, source_task, fields = edge
        t, process = src.name("task", task), src.name("process", task.obj.process)
        fused_id = "0" if self.tracking else "None"
        key = (task.task_id, edge)
        known = src.prologue is not None and key in src.reused  # fetched already, for another branch
        tup, box = src.reused[key] if known else (src.var("tup"), src.name("box", [None]))
        fresh = f"{tup} = {box}[0] = Tuple((), {stream}, {source}, {source_task}, {fused_id}, roots, {fields})"
        if known:
            pass
        elif src.prologue is not None:
            src.reused[key] = (tup, box)
            src.add_first(f"{tup} = {box}[0]")
            src.add_first(f"if {tup} is None:")
            src.add_first(f"    {fresh}")
            src.add_first("else:")
            src.add_first(f"    {tup}.roots = roots")
        else:
            src.add(d, f"{tup} = {box}[0]")
            src.add(d, f"if {tup} is None:")
            src.add(d + 1, fresh)
            src.add(d, f"{tup}.roots = roots")
        src.add(d, f"{tup}.values = {values}")
        if queued:
            src.add(d, f"{tup}.id = tid")
        run = src.prologue is not None  # in a run function, `current` stays set between its inputs
        if run:
            src.inputs.setdefault(t, set()).add(tup)
            src.set_current(d, t, tup)
        else:
            src.add(d, f"{t}.current = {tup}")
        src.add(d, "try:")
        self._call(src, d + 1, task, f"{process}({tup})")
        src.add(d, "except Exception as exc:")
        self._count_failed(src, d + 1, task)
        src.add(d + 1, f"{t}.current = None")
        src.add(d + 1, f"{t}.ackval = 0")
        src.add(d + 1, fresh)  # the traceback may hold the old one
        src.add(d + 1, f"fail(roots, describe(exc), format_exc(), {src.name('COMPONENT', task.component)}, "
                       f"{src.name('TASK', task.task_id)}, Tuple({values}, {stream}, {source}, {source_task}, None, "
                       f"roots, {fields}))")
        if run:
            src.add(d + 1, f"{t}.current = {tup}")
        if queued:
            src.add(d + 1, "return 0")
        src.add(d, "else:")
        if run:  # held by this frame, its box, `current` and getrefcount's argument
            src.add(d + 1, f"if getrefcount({tup}) > 4:")  # the bolt kept it: the next input gets a new one
            src.add(d + 2, fresh)
            src.add(d + 2, f"{t}.current = {tup}")
        else:
            src.add(d + 1, f"{t}.current = None")
            src.add(d + 1, f"if getrefcount({tup}) > 3:")
            src.add(d + 2, fresh)
        src.add(d + 1, f"if {t}.ackval:")  # between inputs, ackval is 0 (see BoltTask)
        if task.auto_ack:
            src.add(d + 2, f"if {t}.ackval > 0:")
            src.add(d + 3, f"xor ^= {t}.ackval")
            if queued:
                src.add(d + 2, "else:")  # acked or failed by hand
                src.add(d + 3, f"{t}.ackval = 0")
                src.add(d + 3, "return 0")
        src.add(d + 2, f"{t}.ackval = 0")
        if not task.auto_ack and queued:  # it acks or fails its inputs itself
            src.add(d + 1, "return 0")

    def _function_step(self, src, d, task, args, edge, depth, single=None):
        """Inline a plain function's call on `args` (the name of a values tuple), what it emits
        going to its subscribers. Its errors fail `roots` as this task's. `single`: (flag, value)
        names: when the flag is true, the function is called with that one value."""
        stream, source, source_task, fields = edge
        fn = src.name("fn", task.obj.fn)
        result = src.var("r")
        src.add(d, "try:")
        if single is None:
            self._call(src, d + 1, task, f"{result} = {fn}(*{args})")
        else:
            self._call(src, d + 1, task, f"{result} = {fn}({single[1]}) if {single[0]} else {fn}(*{args})")
            args = f"(({single[1]},) if {single[0]} else {args})"  # for the error's Tuple
        if task.streams["default"] is None or len(task.streams["default"]) == 1:
            src.add(d + 1, f"if {result}.__class__ is str:")  # the usual result of a map: tested first
            self._deliver_str(src, d + 2, task, result, depth)
            src.add(d + 1, f"elif {result}.__class__ is GeneratorType:")
        else:
            src.add(d + 1, f"if {result}.__class__ is GeneratorType:")
        item = src.var("x")
        src.add(d + 2, f"for {item} in {result}:")
        self._deliver_item(src, d + 3, task, item, depth)
        src.add(d + 1, f"elif {result} is not None:")
        self._deliver_item(src, d + 2, task, result, depth)
        src.add(d, "except Exception as exc:")
        self._count_failed(src, d + 1, task)
        src.add(d + 1, f"fail(roots, describe(exc), format_exc(), {src.name('COMPONENT', task.component)}, "
                       f"{src.name('TASK', task.task_id)}, Tuple({args}, {stream}, {source}, {source_task}, None, "
                       f"roots, {fields}))")
        if depth == 0:
            src.add(d + 1, "continue" if src.batch else "return 0")

    def _deliver_item(self, src, d, task, item, depth):
        """A function's result item (a tuple, or one value) as values on its default stream."""
        fields = task.streams["default"]
        width = None if fields is None else len(fields)
        values = src.var("v")
        check = src.name("checked", _checker(task, "default"))
        single = None  # (flag, value) names: the next function may be called with the value itself
        if (width is None or width == 1) and self._feeds_function(task, "default", depth):
            single = (src.var("one"), item)
        src.add(d, f"if {item}.__class__ is str or {item}.__class__ in SCALARS or {fits(item)}:")
        if single is not None:
            if not self._only_functions(task, "default", depth):  # else no one needs the tuple
                src.add(d + 1, f"{values} = ({item},)")
            src.add(d + 1, f"{single[0]} = True")
        elif width is None or width == 1:
            src.add(d + 1, f"{values} = ({item},)")
        else:
            src.add(d + 1, f"{values} = {check}(({item},))")  # raises the FieldError
        src.add(d, f"elif {item}.__class__ is tuple and {safe(item, width)}:")
        src.add(d + 1, f"{values} = {item}")
        if single is not None:
            src.add(d + 1, f"{single[0]} = False")
        src.add(d, "else:")
        src.add(d + 1, f"{values} = {check}({item} if {item}.__class__ is tuple else ({item},))")
        if single is not None:
            src.add(d + 1, f"{single[0]} = False")
        self._send(src, d, task, "default", values, depth, single)

    def _deliver_str(self, src, d, task, item, depth):
        """A function's result that is a str, on a default stream of one value (or undeclared)."""
        values = src.var("v")
        single = ("True", item) if self._feeds_function(task, "default", depth) else None
        if single is None or not self._only_functions(task, "default", depth):
            src.add(d, f"{values} = ({item},)")
        self._send(src, d, task, "default", values, depth, single)

    def _feeds_function(self, task, stream, depth):
        """Whether some of what `task` emits on `stream` goes to a plain function inlined here."""
        targets = task.routing.fixed.get(stream)
        if not targets or self.fused is None or depth + 1 >= INLINE_DEPTH:
            return False
        return any(self.fused[t] is not None and _is_function(self.fused[t]) for t in targets)

    def _only_functions(self, task, stream, depth):
        """Whether what `task` emits on `stream` goes only to plain functions inlined here."""
        targets = task.routing.fixed.get(stream)
        if self.collect or not targets or self.fused is None or depth + 1 >= INLINE_DEPTH:
            return False
        return all(self.fused[t] is not None and _is_function(self.fused[t]) for t in targets)

    def _send(self, src, d, task, stream, values, depth, single=None):
        """Hand `values` (checked) emitted by `task` on `stream` to every subscriber."""
        fields = task.streams[stream]
        names = {"STREAM": stream, "COMPONENT": task.component, "TASK": task.task_id, "FIELDS": fields}
        stream_n, comp_n, task_n, fields_n = (src.name(k, v) for k, v in names.items())
        if self.collect:
            src.add(d, f"collect({comp_n}, {stream_n}, {values})")
        if self.meter is not None:
            src.add(d, f"EMITTED[{task.task_id}] += 1")
        targets = task.routing.fixed.get(stream)
        edge = (stream_n, comp_n, task_n, fields_n)
        if targets is None:
            self._route(src, d, task, stream, values, edge, depth)
            return
        for target in targets:
            into = self.fused[target] if self.fused is not None else None
            if into is None:
                self._queue(src, d, task, stream, repr(target), values, edge, [target])
            elif depth + 1 < INLINE_DEPTH and _is_function(into):
                self._function_step(src, d, into, values, edge, depth + 1, single)
            elif depth + 1 < INLINE_DEPTH:
                self._bolt_step(src, d, into, values, edge)
            else:
                run = src.name("run", self.run(target, task.component, task.task_id, stream))
                src.add(d, f"xor ^= {run}({values}, roots, 0)")

    def _queue(self, src, d, emitter, emitted_on, target, values, edge, candidates):
        """Queue `values` that `emitter` emitted on stream `emitted_on` for task `target` (a
        name; one of the task ids `candidates`) through the sink: into an outlet's columns for
        an auto-ack task of another worker, else with a fresh id if tracked."""
        stream, component, task, fields = edge
        declared = emitter.streams[emitted_on]
        width = None if declared is None else len(declared)
        outlets = {t: emitter.sink.outlet(t, emitter.component, emitter.task_id, emitted_on, width)
                   for t in candidates if t in self.remote}
        if outlets:  # values flat when their width is known (see EventSink.outlet)
            flat = width is not None and width != 1
            appends = {t: (values_.extend if flat else values_.append, roots_.append)
                       for t, (values_, roots_) in outlets.items()}
            if len(appends) == len(candidates) == 1:  # one target: its appends by name
                (append_values, append_roots), = appends.values()
                add_values, add_roots = src.name("add_values", append_values), src.name("add_roots", append_roots)
                into = d
            else:
                table, add_values, add_roots = src.name("OUTLETS", appends), src.var("av"), src.var("ar")
                lookup = f"{add_values}, {add_roots} = {table}[{target}]"
                if len(appends) == len(candidates):  # every candidate is another worker's
                    src.add(d, lookup)
                    into = d
                else:
                    src.add(d, f"if {target} in {table}:")
                    src.add(d + 1, lookup)
                    into = d + 1
            item = f"{values}[0]" if width == 1 else values
            src.add(into, f"{add_values}({item})")
            src.add(into, f"{add_roots}(roots)")
            if into == d:
                return
            src.add(d, "elif roots:")
        else:
            src.add(d, "if roots:")
        src.add(d + 1, "i = new_id()")
        src.add(d + 1, "xor ^= i")
        src.add(d + 1, f"send({target}, {values}, {stream}, {component}, {task}, i, roots, {fields})")
        src.add(d, "else:")
        src.add(d + 1, f"send({target}, {values}, {stream}, {component}, {task}, None, (), {fields})")

    def _route(self, src, d, task, stream, values, edge, depth):
        """Groupings that look at the values: a fields grouping (or a subscriber with one task)
        is compiled to a hash and a table of the runs of fused targets; anything else goes
        through `_Router`, one call per tuple."""
        outlets = task.routing.outlets[stream]
        if not all(o.kind == "fields" or len(o.tasks) == 1 and o.kind not in ("route", "custom") for o in outlets):
            route = src.name("route", _Router(self, task, stream))
            src.add(d, f"xor ^= {route}({values}, roots)")
            return
        for outlet in outlets:
            runs = {t: self.run(t, task.component, task.task_id, stream) for t in outlet.tasks if self.is_fused(t)}
            runs_n = src.name("RUNS", runs)
            target = src.var("t")
            if outlet.kind == "fields":
                tasks_n = src.name("TASKS", outlet.tasks)
                if len(outlet.positions) == 1:
                    key = src.var("k")
                    memo, pick = src.name("memo", outlet.pick.memo), src.name("pick", outlet.pick)
                    src.add(d, f"{key} = {values}[{outlet.positions[0]}]")
                    src.add(d, f"{target} = {memo}.get({key}) if {key}.__class__ is str else None")
                    src.add(d, f"if {target} is None:")
                    src.add(d + 1, f"{target} = {pick}({key})")
                else:
                    keys = ", ".join(f"{values}[{p}]" for p in outlet.positions)
                    src.add(d, f"{target} = {tasks_n}[stable_hash([{keys}]) % {len(outlet.tasks)}]")
            else:
                src.add(d, f"{target} = {outlet.tasks[0]!r}")
            others = [t for t in outlet.tasks if t not in runs]  # queued: not in this process, or not auto-ack
            if len(runs) <= 2 and depth + 1 < INLINE_DEPTH:  # the fused targets inline, the rest queued
                for i, fused in enumerate(runs):
                    src.add(d, f"{'if' if i == 0 else 'elif'} {target} == {fused!r}:")
                    into = self.fused[fused]
                    if _is_function(into):
                        self._function_step(src, d + 1, into, values, edge, depth + 1)
                    else:
                        self._bolt_step(src, d + 1, into, values, edge)
                if runs:
                    src.add(d, "else:")
                    self._queue(src, d + 1, task, stream, target, values, edge, others)
                else:
                    self._queue(src, d, task, stream, target, values, edge, others)
                continue
            run = src.var("run")
            src.add(d, f"{run} = {runs_n}.get({target})")
            src.add(d, f"if {run} is not None:")
            src.add(d + 1, f"xor ^= {run}({values}, roots, 0)")
            src.add(d, "else:")
            self._queue(src, d + 1, task, stream, target, values, edge, others)

    def emit(self, task):
        """The `emit` a Bolt calls: a generated short path for the usual call (anchored to the
        input being processed, in an auto-ack bolt), `task.general_emit` for the rest."""
        if not task.auto_ack:
            return task.general_emit
        src = Source()
        self._common(src, task)
        src.names.update(task=task, general=task.general_emit)
        src.start("def emit(values, stream='default', anchors=None, direct=None):")
        src.add(1, "current = task.current")
        src.add(1, "if anchors is None and direct is None and current is not None and task.ackval >= 0:")
        src.add(2, "roots = current.roots")
        for stream, fields in task.streams.items():
            width = None if fields is None else len(fields)
            check = src.name("checked", _checker(task, stream))
            src.add(2, f"if stream == {src.name('STREAM', stream)}:")
            src.add(3, "xor = 0")
            src.add(3, f"if values.__class__ is tuple and {safe('values', width)}:")
            src.add(4, "v = values")
            src.add(3, "else:")
            src.add(4, f"v = {check}(values)")
            self._send(src, 3, task, stream, "v", 0)
            src.add(3, "task.ackval ^= xor")
            targets = task.routing.fixed.get(stream)
            src.add(3, f"return {src.name('TARGETS', targets)}" if targets is not None else "return None")
        src.add(1, "return general(values, stream, anchors, direct)")
        return self._compile(src, f"{task.component}[{task.task_id}].emit")


class _Router:
    """Delivery over a grouping that looks at the values (not compiled: one call per tuple)."""

    def __init__(self, chains, task, stream):
        self.chains, self.task, self.stream = chains, task, stream
        self.fields = task.streams[stream]

    def __call__(self, values, roots):
        task, stream = self.task, self.stream
        targets = task.routing.targets(stream, values, task.task_id)
        return self.chains.deliver(task, stream, self.fields, values, roots, targets, counted=True)


def _is_function(task):
    return isinstance(task.obj, FunctionBolt) and type(task.obj).process is FunctionBolt.process


def _checker(task, stream):
    from .tasks import checked
    component, streams = task.component, task.streams

    def check(values):
        return checked(values, component, stream, streams)
    return check
