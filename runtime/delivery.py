"""Where what a step emits goes, as generated code: the part of runtime/chains.py that follows
a step's output.

`Chains` (runtime/chains.py) writes the steps: a task's user call on its input, inlined. What
that call emits is handed on here: its values checked (declared arity, msgpack-safe values),
then, per subscriber, the fused step inlined (a plain function or a Bolt, back in `Chains`, up
to INLINE_DEPTH deep), or the values queued through the emitting task's sink (with a fresh id
when tracked), or appended to a crossing for an auto-ack task of another worker
(runtime/events.py). Groupings that look at the values are compiled too when they can be (a
fields grouping: its remembered picks, runtime/routing.py); the others route one tuple per
call (`_Router`). `emit` builds the short path of a Bolt's `self.emit`.

`Deliveries` is a base of `Chains`; its methods call the step builders `_function_step` and
`_bolt_step` and the cache `run` that `Chains` defines.
"""
from consecution.acker import new_id
from consecution.topology import FunctionBolt

from .codegen import RUN_MARK, Source, fits, safe
from .routing import Outlet
from .vocabulary import Numbered

INLINE_DEPTH = 3  # function steps inlined into one generated function; deeper ones are called


class Deliveries:
    """The generation of what steps emit (see the module docstring)."""

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
        single = ("True", item) if self._feeds_function(task, "default", depth) else None
        if task.routing.fixed.get("default") is None and not self.collect:
            values = f"({item},)"  # routed by its value: the tuple made only where a step takes it
        else:
            values = src.var("v")
            if single is None or not self._only_functions(task, "default", depth):
                src.add(d, f"{values} = ({item},)")
        self._send(src, d, task, "default", values, depth, single, value=item)

    def _feeds_function(self, task, stream, depth):
        """Whether some of what `task` emits on `stream` goes to a plain function inlined here."""
        targets = task.routing.fixed.get(stream)
        if not targets or self.fused is None or depth + 1 >= INLINE_DEPTH:
            return False
        return any(self.fused[t] is not None and is_function(self.fused[t]) for t in targets)

    def _only_functions(self, task, stream, depth):
        """Whether what `task` emits on `stream` goes only to plain functions inlined here."""
        targets = task.routing.fixed.get(stream)
        if self.collect or not targets or self.fused is None or depth + 1 >= INLINE_DEPTH:
            return False
        return all(self.fused[t] is not None and is_function(self.fused[t]) for t in targets)

    def _send(self, src, d, task, stream, values, depth, single=None, value=None):
        """Hand `values` (checked) emitted by `task` on `stream` to every subscriber. `value`:
        the name of the one value of `values`, when it is known to be a str."""
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
            self._route(src, d, task, stream, values, edge, depth, value)
            return
        for target in targets:
            into = self.fused[target] if self.fused is not None else None
            if into is None:
                self._queue(src, d, task, stream, repr(target), values, edge, [target], value)
            elif depth + 1 < INLINE_DEPTH and is_function(into):
                self._function_step(src, d, into, values, edge, depth + 1, single)
            elif depth + 1 < INLINE_DEPTH:
                self._bolt_step(src, d, into, values, edge)
            else:
                run = src.name("run", self.run(target, task.component, task.task_id, stream))
                src.add(d, f"xor ^= {run}({values}, roots, 0)")
                src.foreign = True

    def _numbered(self, task, stream, outlet, others, inline, value):
        """The `Numbered` pick for a fields grouping on a one-value str `value` whose subscriber
        has one task elsewhere, fed through a crossing, and its others here `inline`; None
        where that does not hold, or where a chain appends values to that crossing already."""
        if not (inline and value is not None and outlet.kind == "fields" and outlet.positions == (0,)
                and len(others) == 1 and others[0] in self.remote and task.streams[stream] is None):
            return None
        vocabulary = task.sink.crossing(others[0], task.component, task.task_id, stream, None).vocabulary
        if vocabulary.numbered is False:
            return None
        vocabulary.numbered = True
        if vocabulary.pick is None:
            vocabulary.pick = Numbered(outlet.tasks, others[0], vocabulary)
        return vocabulary.pick

    def _queue(self, src, d, emitter, emitted_on, target, values, edge, candidates, value=None, coded=False):
        """Queue `values` that `emitter` emitted on stream `emitted_on` for task `target` (a
        name; one of the task ids `candidates`) through the sink: into a crossing (events.Crossing) for
        an auto-ack task of another worker, else with a fresh id if tracked. `coded`: `target` is
        the number of the str `value` in the crossing's vocabulary (`_route`, vocabulary.Numbered);
        elsewhere a crossing whose chains append numbers gets values tuples among them."""
        stream, component, task, fields = edge
        declared = emitter.streams[emitted_on]
        width = None if declared is None else len(declared)
        crossings = {t: emitter.sink.crossing(t, emitter.component, emitter.task_id, emitted_on, width)
                     for t in candidates if t in self.remote}
        if crossings:
            extend = width is not None and width != 1  # values flat when their width is known (see events.Crossing)
            if len(crossings) == len(candidates) == 1:  # one target: its crossing by name
                crossing, = crossings.values()
                o, into = src.name("crossing", crossing), d
                add = src.name("add", crossing.values.extend if extend else crossing.values.append)
            else:
                table, o = src.name("CROSSINGS", crossings), src.var("o")
                add = f"{o}.values.{'extend' if extend else 'append'}"
                if len(crossings) == len(candidates):  # every candidate is another worker's
                    src.add(d, f"{o} = {table}[{target}]")
                    into = d
                else:
                    src.add(d, f"{o} = {table}.get({target})")
                    src.add(d, f"if {o} is not None:")
                    into = d + 1
            vocabularies = [c.vocabulary for c in crossings.values() if c.vocabulary is not None]
            for vocabulary in vocabularies:
                if vocabulary.numbered is None and not coded:
                    vocabulary.numbered = False  # a chain appends values to it: no numbers
            numbered = not coded and any(v.numbered for v in vocabularies)
            if coded:
                item = target
            elif numbered:  # numbers come from elsewhere: values tuples among them, as lists
                item = values
                src.add(into, f"{o}.nested = True")
            elif width == 1:
                item = value or f"{values}[0]"
            elif width is None and value:  # a str: one value
                item = value
            elif width is None:  # one value as itself unless it is a list (see events.Crossing)
                item = src.var("v")
                src.add(into, f"{item} = {values}[0] if len({values}) == 1 and {values}[0].__class__ is not list "
                              f"else {values}")
                src.add(into, f"if {item} is {values}:")
                src.add(into + 1, f"{o}.nested = True")
            else:
                item = values
            src.add(into, f"if roots is not {o}.last:{RUN_MARK}")  # a new run (see events.Crossing)
            src.add(into + 1, f"{o}.last = roots{RUN_MARK}")
            src.add(into + 1, f"{o}.marks += (roots, len({o}.values)){RUN_MARK}")
            src.add(into, f"{add}({item})")
            if into == d and len(crossings) == 1:
                src.crossed[o] = crossing
            else:
                src.foreign = True  # a crossing picked at run time: marked per delivery
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

    def _route(self, src, d, task, stream, values, edge, depth, value=None):
        """Groupings whose task is picked per tuple: a fields grouping is compiled to a hash, a
        shuffle over several tasks to the outlet's round robin (the same turns as
        `Outlet.choose`), a subscriber with one task to its id, each then to a table of the runs
        of fused targets; anything else goes through `_Router`, one call per tuple."""
        outlets = task.routing.outlets[stream]
        if not all(o.kind == "fields" or o.kind in Outlet.SHUFFLES and o.shared is None
                   or len(o.tasks) == 1 and o.kind not in ("route", "custom") for o in outlets):
            route = src.name("route", _Router(self, task, stream))
            src.add(d, f"xor ^= {route}({values}, roots)")
            src.foreign = True
            return
        for outlet in outlets:
            runs = {t: self.run(t, task.component, task.task_id, stream) for t in outlet.tasks if self.is_fused(t)}
            runs_n = src.name("RUNS", runs)
            target = src.var("t")
            others = [t for t in outlet.tasks if t not in runs]  # queued: not in this process, or not auto-ack
            inline = len(runs) <= 2 and depth + 1 < INLINE_DEPTH  # the fused targets inline, the rest queued
            numbered = self._numbered(task, stream, outlet, others, inline, value)
            if numbered is not None:  # a word's pick: ~task here, or its number for the task elsewhere
                memo, pick = src.name("memo", numbered.memo), src.name("pick", numbered)
                src.add(d, "try:")
                src.add(d + 1, f"{target} = {memo}[{value}]")
                src.add(d, "except KeyError:")
                src.add(d + 1, f"{target} = {pick}({value})")
            elif outlet.kind == "fields":
                tasks_n = src.name("TASKS", outlet.tasks)
                if len(outlet.positions) == 1:
                    memo, pick = src.name("memo", outlet.pick.memo), src.name("pick", outlet.pick)
                    if value is not None and outlet.positions[0] == 0:  # a str: in the memo's keys
                        src.add(d, "try:")
                        src.add(d + 1, f"{target} = {memo}[{value}]")
                        src.add(d, "except KeyError:")
                        src.add(d + 1, f"{target} = {pick}({value})")
                    else:
                        key = src.var("k")
                        src.add(d, f"{key} = {values}[{outlet.positions[0]}]")
                        src.add(d, f"{target} = {memo}.get({key}) if {key}.__class__ is str else None")
                        src.add(d, f"if {target} is None:")
                        src.add(d + 1, f"{target} = {pick}({key})")
                else:
                    keys = ", ".join(f"{values}[{p}]" for p in outlet.positions)
                    src.add(d, f"{target} = {tasks_n}[stable_hash([{keys}]) % {len(outlet.tasks)}]")
            elif len(outlet.tasks) > 1:  # a shuffle: the next task in turn
                turn, out_n = src.var("i"), src.name("OUTLET", outlet)
                src.add(d, f"{turn} = {out_n}._next")
                src.add(d, f"{out_n}._next = {turn} + 1 if {turn} < {len(outlet.tasks) - 1} else 0")
                src.add(d, f"{target} = {src.name('TASKS', outlet.tasks)}[{turn}]")
            else:
                src.add(d, f"{target} = {outlet.tasks[0]!r}")
            if inline:
                for i, fused in enumerate(runs):
                    src.add(d, f"{'if' if i == 0 else 'elif'} {target} == {~fused if numbered else fused!r}:")
                    into = self.fused[fused]
                    if is_function(into):
                        self._function_step(src, d + 1, into, values, edge, depth + 1)
                    else:
                        self._bolt_step(src, d + 1, into, values, edge)
                if runs:
                    src.add(d, "else:")
                    self._queue(src, d + 1, task, stream, target, values, edge, others, value, numbered is not None)
                else:
                    self._queue(src, d, task, stream, target, values, edge, others, value, numbered is not None)
                continue
            run = src.var("run")
            src.foreign = True
            src.add(d, f"{run} = {runs_n}.get({target})")
            src.add(d, f"if {run} is not None:")
            src.add(d + 1, f"xor ^= {run}({values}, roots, 0)")
            src.add(d, "else:")
            self._queue(src, d + 1, task, stream, target, values, edge, others, value)

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


def is_function(task):
    return is_function_obj(task.obj)


def is_function_obj(obj):
    """Whether a bolt object is a plain function (its `process` not overridden)."""
    return isinstance(obj, FunctionBolt) and type(obj).process is FunctionBolt.process


def _checker(task, stream):
    from .tasks import checked
    component, streams = task.component, task.streams

    def check(values):
        return checked(values, component, stream, streams)
    return check
