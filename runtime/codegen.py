"""The text of a generated function (runtime/chains.py writes them) and the Python
expressions its checks are made of.

`Source` collects the lines of one function, the objects it refers to (each under one name)
and, in a run function, a prologue run once per call; `compile` turns it into the function.
"""
import functools
import sys

from consecution.storage.codec import INT_MAX, INT_MIN

CURRENT_MARK = "  # current of "  # marks a line `Source.finish_run` may move to the prologue
RUN_MARK = "  # run mark"  # marks the lines that mark a crossing's runs, which a records loop may drop


class Source:
    """The text of one generated function and the names it refers to."""

    def __init__(self):
        self.lines = []
        self.names = {}
        self.named = {}  # id(obj) -> its name (the object is kept alive in `names`)
        self.count = 0
        self.prologue = None  # in a run function: lines run once per call, before the loops
        self.on_fail = ["return xor"]  # lines after a failure at the top (chains.py, `_source`)
        self.settle = None    # what such a failure leaves unacked, passed to fail(), or None
        self.reused = {}      # (task id, edge) -> (tup, box) names: one reused Tuple per edge of a task
        self.inputs = {}      # in a run function: task name -> the names of its reused Tuples here
        self.crossed = {}     # crossing name -> the Crossing this function appends to with run marks
        self.foreign = False  # whether code it calls (a Bolt with subscribers, another run) may append too

    def start(self, signature):
        """Begin the function; a run function (whose `roots` is a parameter) gets a prologue."""
        self.add(0, signature)
        if signature.startswith("def run("):
            self.prologue = len(self.lines)

    def add_first(self, text):
        """Add a line to the prologue (it runs once per call)."""
        self.lines.insert(self.prologue, "    " + text)
        self.prologue += 1

    def set_current(self, d, task, tup):
        """`task.current = tup` before its process, in a run function: kept as it is when the
        task has several edges here, else moved to the prologue by `finish_run`."""
        self.add(d, f"{task}.current = {tup}{CURRENT_MARK}{task}")

    def finish_run(self):
        """In a run function, a bolt task's `current` is its input for the whole call when the
        task has one reused Tuple here (the same object for every input of the call), set once
        in the prologue instead of once per input; every task's `current` is what it was before
        the call when the call returns (None between inputs; a nested call leaves its caller's)."""
        if not self.inputs:
            return
        hoisted = {t: next(iter(tups)) for t, tups in self.inputs.items() if len(tups) == 1}
        body = []
        for line in self.lines[self.prologue:]:
            text, mark, task = line.partition(CURRENT_MARK)
            if not mark:
                body.append(line)
            elif task not in hoisted:
                body.append(text)
        saved = {t: f"before_{t}" for t in self.inputs}
        self.lines[self.prologue:] = (
            [f"    {saved[t]} = {t}.current" for t in self.inputs]
            + [f"    {t}.current = {tup}" for t, tup in hoisted.items()]
            + ["    try:"] + ["    " + line for line in body] + ["    finally:"]
            + [f"        {t}.current = {saved[t]}" for t in self.inputs])

    def name(self, prefix, obj):
        """The name `obj` has in the function (one per object)."""
        if obj.__class__ in (str, int, bool, type(None)):
            return repr(obj)  # a literal reads better, and loads faster
        name = self.named.get(id(obj))
        if name is None:
            self.count += 1
            name = self.named[id(obj)] = f"{prefix}_{self.count}"
            self.names[name] = obj
        return name

    def var(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def add(self, depth, text):
        self.lines.append("    " * depth + text)

    def compile(self, name, debug=False):
        """The function, compiled (named `name` in tracebacks); `debug` prints its text."""
        self.finish_run()
        text = "\n".join(self.lines)
        if debug:
            print(f"# consecution chain {name}\n{text}\n", file=sys.stderr)
        namespace = {}
        exec(_code(text, f"<consecution chain {name}>"), self.names, namespace)
        fn = namespace["run"] if "run" in namespace else namespace["emit"]
        fn.__source__ = text
        return fn


@functools.lru_cache(maxsize=256)
def _code(text, filename):
    """The compiled text, kept: a process that runs the same topology again (a benchmark's
    rounds, a test suite) compiles each function once; each run binds it to its own names."""
    return compile(text, filename, "exec")


def safe(name, width):
    """A Python expression: the tuple `name` has `width` values (if known), all msgpack scalars."""
    if width is None:
        return f"all_scalars({name})"
    if width == 0:
        return f"len({name}) == 0"
    checks = " and ".join(f"({name}[{i}].__class__ in SCALARS or {fits(f'{name}[{i}]')})" for i in range(width))
    return f"len({name}) == {width} and {checks}"


def fits(name):
    """A Python expression: `name` is an int msgpack can hold."""
    return f"{name}.__class__ is int and {INT_MIN} <= {name} <= {INT_MAX}"
