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

This module writes the steps (a task's call on its input); runtime/delivery.py, a base of
`Chains`, writes where what a step emits goes (checks, groupings, fused steps, queues).

`Chains(..., debug=True)` or `CONSECUTION_DEBUG_CHAINS=1` prints every generated function.
"""
import os
import sys
import time
import traceback as tb_module
from itertools import islice
from types import GeneratorType

from consecution.acker import new_id
from consecution.storage.codec import SCALARS, all_scalars
from consecution.topology import FAILURE_FIELDS, FAILURES, Tuple
from consecution.topology.tuples import SEQ_SHIFT

from .codegen import RUN_MARK, Source
from .delivery import Deliveries, is_function
from .meter import LATENCY_EVERY
from .routing import stable_hash

def describe(exc):
    """How an error is named in logs and dead letters."""
    return f"{type(exc).__name__}: {exc}"


class Chains(Deliveries):
    """Builds and caches the generated `run` functions and emit paths of the bolt tasks of one
    process. `tasks`: task id -> BoltTask (those in this process); `fused`: per task id the
    task to call directly, or None (queued through the emitting task's sink); `streams`:
    component -> its streams (for the fields of each input edge)."""

    def __init__(self, tasks, fused, streams, tracking, collect, debug=None, remote=(), meter=None, marks=True):
        self.tasks = tasks
        self.marks = marks  # whether loops mark each input for a watchdog (`_mark_input`)
        self.meter = meter  # a Meter (runtime/meter.py): the generated code counts; None: it does not
        self.fused = fused
        self.remote = frozenset(remote)  # auto-ack tasks of other workers: fed through crossings
        self.streams = dict(streams)
        self.streams[FAILURES] = {"default": FAILURE_FIELDS}
        self.tracking = tracking
        self.collect = collect
        self.debug = debug if debug is not None else bool(os.environ.get("CONSECUTION_DEBUG_CHAINS"))
        self._runs = {}

    @classmethod
    def bind(cls, tasks, fused, topology, tracking, collect, remote=(), meter=None, marks=True):
        """Chains for `tasks` (task id -> BoltTask), each task bound to them. `remote`: the ids
        of auto-ack tasks in other processes, whose deliveries go through the sink's crossings
        (runtime/events.py). `meter`: counts to keep (runtime/meter.py), or None. `marks`:
        whether a watchdog reads which input a loop is at (a worker without task_timeout has
        none to read them)."""
        chains = cls(tasks, fused, {name: c.streams for name, c in topology.components.items()}, tracking, collect,
                     remote=remote, meter=meter, marks=marks)
        for task in tasks.values():
            task.bind(chains)
        return chains

    def run(self, task_id, source, source_task, stream):
        """The generated function for inputs of task `task_id` from (`source`, `source_task`,
        `stream`)."""
        return self._cached((task_id, source, source_task, stream), self._build_run)

    def run_runs(self, task_id, source, source_task, stream, width):
        """The generated function for a crossing's deliveries another worker sent (one edge of
        a blob, runtime/events.py): `run(items, roots_of, counts, ack)` runs the items run by
        run (a run: `counts[i]` items with the roots `roots_of[i]`, one root as an int,
        several as a list), each item as a fused input (a values tuple when `width` is None,
        the value itself when it is 1, else `width` values in a row; with "tuples", a values
        tuple each, as runtime/vocabulary.py makes them), and acks on a run's roots
        what its items queued (the ids that held the trees open are acked after, by the
        worker). An item that fails fails its run's roots: a plain function's run ends there,
        a Bolt sees the rest."""
        return self._cached((task_id, source, source_task, stream, width), self._build_run_runs)

    def run_batch(self, task_id, source, source_task, stream):
        """The generated function for a batch of untracked inputs (reliability "none": a
        spout's `next_batch`): `run(rows, (), 0)` runs each values tuple of `rows` as a fused
        input; one that raises is failed alone, the others run."""
        return self._cached((task_id, source, source_task, stream, "batch"), self._build_run_batch)

    def run_records(self, task_id, source, source_task, stream):
        """The generated function for the records of one log commit, all from `source_task` on
        `stream` (trees.py, `_start_batch`), as columns: `run(seqs, rows, holders, (), starts,
        now, released, trees, init) -> starts` starts each record's tree (its root from its
        seq and the run's count of tree starts, `starts`; `trees` keeps its holder, its Record
        or its Run), runs its values as a fused input, and appends the seq of each record whose
        tree is done to `released`; a tree with deliveries queued goes to the acker (`init`). A
        record that raises is failed alone, the others run."""
        return self._cached((task_id, source, source_task, stream, "records"), self._build_run_records)

    def run_roots(self, task_id, source, source_task, stream, flat=False):
        """The function for a group of records another process queued at once (a worker's
        record group, runtime/worker.py): `run(rows, roots, part id, group)` runs the values
        of `rows[i]` (lists, from msgpack; with `flat`, each row is the record's one value) as
        a queued input with roots `(roots[i],)`, whose id is that root, and acks it. A plain
        function's group is one generated loop (a record that raises is failed alone); a
        Bolt's inputs each go through its `run`, which knows its acks by hand."""
        return self._cached((task_id, source, source_task, stream, "roots", flat), self._build_run_roots)

    def _cached(self, key, build):
        """The function for `key` (task id, source, source task, stream, variant...), built by
        `build(task, *key[1:])` the first time."""
        fn = self._runs.get(key)
        if fn is None:
            fn = self._runs[key] = build(self.tasks[key[0]], *key[1:])
        return fn

    def _source(self, task, source, source_task, stream, batch=False):
        """A new function's text for inputs of `task` on the given edge, and the edge's names
        (stream, source, source task, fields) in it. `batch`: a loop over several inputs, in
        which a failed input goes on with the next one."""
        src = Source()
        # after a failure at the top of the function: the next input of a loop, else the XOR of
        # what the failed input queued before it raised (a record group needs it to complete)
        src.on_fail = ["continue"] if batch else ["return xor"]
        self._common(src, task)
        fields = self.streams[source][stream]
        return src, (src.name("STREAM", stream), src.name("SOURCE", source), src.name("SOURCE_TASK", source_task),
                     src.name("FIELDS", fields))

    def _step(self, src, d, task, edge):
        """The task's step on the input `values`, inline (a plain function, or a Bolt's process)."""
        if is_function(task):
            self._function_step(src, d, task, "values", edge, 0)
        else:
            self._bolt_step(src, d, task, "values", edge)

    @staticmethod
    def _roots_per_input(src, line):
        """In a loop whose inputs have roots of their own (`roots`, set in the loop before
        `line`): give them to every reused Tuple, at `line` (counted before the prologue grew)."""
        line += src.prologue - 1
        for tup, _ in src.reused.values():
            src.lines.insert(line, f"        {tup}.roots = roots")

    def _mark_input(self, src, d, fresh):
        """In a loop over several inputs: mark each, where the task_timeout watchdog and the
        systemd pinger read which input the loop is at (runtime/watchdog.py, `input_of`): the
        name `fresh` of an object made for this input alone (the mark holds it, so the next
        one is another object), else a count. Nothing when no watchdog reads them."""
        if not self.marks:
            return
        src.names["INPUT"] = [0]
        src.add(d, "INPUT[0] += 1" if fresh is None else f"INPUT[0] = {fresh}")

    def _build_run_records(self, task, source, source_task, stream, _):
        src, edge = self._source(task, source, source_task, stream, batch=True)
        src.start("def run(seqs, rows, holders, roots, starts, now, released, trees, init):")
        src.add(1, "for seq, values, holder in zip(seqs, rows, holders):")
        self._mark_input(src, 2, None)  # a spout's rows may repeat one tuple object: counted
        src.add(2, "starts += 1")
        src.add(2, f"tree = seq << {SEQ_SHIFT} | starts & {(1 << SEQ_SHIFT) - 1}")  # as trees.py makes it
        src.add(2, "roots = (tree,)")
        after_roots = len(src.lines)
        src.add(2, "trees[tree] = holder")  # before the steps, which may fail the tree
        src.add(2, "xor = 0")
        self._step(src, 2, task, edge)
        src.add(2, f"if tree in trees and (not xor or init(tree, xor, {source_task!r}, now)):")
        src.add(3, "del trees[tree]")
        src.add(3, "released.append(seq)")
        src.add(1, "return starts")
        self._roots_per_input(src, after_roots)
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}, records")

    def _build_run_roots(self, task, source, source_task, stream, _, flat):
        if not is_function(task):
            run = self.run(task.task_id, source, source_task, stream)

            def run_each_record(rows, roots, tid, group):  # no group: each root is its tuple's id
                for values, root in zip(rows, roots):
                    run((values,) if flat else tuple(values), (root,), root)
            return run_each_record
        src, edge = self._source(task, source, source_task, stream, batch=True)
        src.on_fail = ["gx ^= xor", "continue"]  # what a failed record queued still counts
        src.start("def run(rows, roots_of, tid, group, roots=()):")
        src.add(1, "gx = tid")
        src.add(1, f"for {'row' if flat else 'values'}, root in zip(rows, roots_of):")
        # a list of its own per record, from msgpack; a flat row may be a str CPython shares
        self._mark_input(src, 2, None if flat else "values")
        src.add(2, "roots = (root,)")
        after_roots = len(src.lines)
        if not flat:
            src.add(2, "values = tuple(values)")
        src.add(2, "xor = 0")
        # an error fails the record alone; a flat row is the function's one argument
        self._function_step(src, 2, task, "values", edge, 0, ("True", "row") if flat else None)
        src.add(2, "gx ^= xor")
        if src.crossed and not src.foreign:
            self._record_spans(src, after_roots)
        src.add(1, "ack((group,), gx)")
        self._roots_per_input(src, after_roots)
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}, records")

    @staticmethod
    def _record_spans(src, line):
        """The crossings this records loop appends to get where each record's deliveries start
        (one append a record, at `line`) and, after the loop, the records' roots and group
        (`Crossing.span`), instead of a test of the roots per delivery and a mark per run: only
        this function appends to them while it runs (`src.foreign` is False)."""
        src.lines[:] = [text for text in src.lines if not text.endswith(RUN_MARK)]
        line += src.prologue - 1
        for o, crossing in src.crossed.items():
            start, length = src.name("START", crossing.starts.append), src.name("LENGTH", crossing.values.__len__)
            src.lines.insert(line, f"        {start}({length}())")
            src.add(1, f"{o}.span(roots_of, group)")

    def _build_run_batch(self, task, source, source_task, stream, _):
        src, edge = self._source(task, source, source_task, stream, batch=True)
        src.start("def run(rows, roots, tid):")
        src.add(1, "xor = 0")
        src.add(1, "for values in rows:")
        self._mark_input(src, 2, None)  # a spout's rows may repeat one tuple object: counted
        self._step(src, 2, task, edge)
        src.add(1, "return xor")
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}, batches")

    def _build_run_runs(self, task, source, source_task, stream, width):
        src, edge = self._source(task, source, source_task, stream, batch=True)
        src.on_fail = ["break"]  # a function's error: the run's trees failed, its other items skipped
        src.start("def run(items, roots_of, counts, ack, roots=()):")
        if width == "tuples":  # one iterator for all runs (no list a run), past a failed run's rest
            src.names["islice"] = islice
            src.on_fail = ["for _ in islice(rest, end - size + rest.__length_hint__()): pass", "break"]
            src.add(1, "rest, size, end = iter(items), len(items), 0")
        else:
            src.add(1, "start = 0")
        src.add(1, "for root, n in zip(roots_of, counts):")
        src.add(2, "roots = (root,) if root.__class__ is int else tuple(root)")
        after_roots = len(src.lines)
        src.add(2, "xor = 0")
        if width == "tuples":  # each item a values tuple already (runtime/vocabulary.py)
            src.add(2, "end += n")
            src.add(2, "for values in islice(rest, n):")
            self._mark_input(src, 3, None)  # a tuple shared by deliveries of one word: counted
        elif width == 1:
            src.add(2, "for item in items[start:start + n]:")
            src.add(3, "values = (item,)")
        elif width is None:  # one value as itself, unless a list: then a tuple of values (events.Crossing)
            src.add(2, "for item in items[start:start + n]:")
            src.add(3, "values = tuple(item) if item.__class__ is list else (item,)")
        else:
            src.add(2, f"for i in range(start, start + n * {width}, {width}):")
            src.add(3, f"values = tuple(items[i:i + {width}])")
        if width != "tuples":
            self._mark_input(src, 3, "values")  # a tuple made for this input
        self._step(src, 3, task, edge)
        if width != "tuples":
            src.add(2, f"start += n * {width}" if width.__class__ is int and width > 1 else "start += n")
        src.add(2, "if xor:")
        src.add(3, "ack(roots, xor)")
        self._roots_per_input(src, after_roots)
        return self._compile(src, f"{task.component}[{task.task_id}] <- {source}/{stream}, runs")

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
        src, edge = self._source(task, source, source_task, stream)
        if is_function(task):
            src.settle, src.on_fail = "tid ^ xor if tid else 0", ["return 0 if tid else xor"]
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
        if any(task.routing.outlets.values()):
            src.foreign = True  # what it emits may go into a crossing this function appends to
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
        src.add(d + 1, f"if {t}.ackval > 0:")  # children it emitted before it raised: still tracked
        src.add(d + 2, f"xor ^= {t}.ackval")
        src.add(d + 1, f"{t}.ackval = 0")
        src.add(d + 1, fresh)  # the traceback may hold the old one
        settle = ", tid ^ xor if tid else 0" if queued else ""
        src.add(d + 1, f"fail(roots, describe(exc), format_exc(), {src.name('COMPONENT', task.component)}, "
                       f"{src.name('TASK', task.task_id)}, Tuple({values}, {stream}, {source}, {source_task}, None, "
                       f"roots, {fields}){settle})")
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
        settle = f", {src.settle}" if depth == 0 and src.settle else ""
        src.add(d + 1, f"fail(roots, describe(exc), format_exc(), {src.name('COMPONENT', task.component)}, "
                       f"{src.name('TASK', task.task_id)}, Tuple({args}, {stream}, {source}, {source_task}, None, "
                       f"roots, {fields}){settle})")
        if depth == 0:
            for line in src.on_fail:
                src.add(d + 1, line)
