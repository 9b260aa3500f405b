"""The tuple: what flows along the edges of a topology.

A `Tuple` is a row of values on a stream of a component, with the field names that stream
declares. Bolts receive them in `process`; route functions and custom groupings get them too.
Values travel as msgpack in every mode, so a tuple (or other sequence) inside a value comes
back as a list; the runtime normalises them the same way in single mode, so results agree
across modes.
"""
from .errors import FieldError


class Fields(tuple):
    """The field names of one stream, with a name -> position index built once. `aliases`
    ({older name: name}) index a field under a name it had before, too."""

    def __new__(cls, names, aliases=None):
        names = tuple(names)
        for name in names:
            if not isinstance(name, str) or not name:
                raise FieldError(f"field names must be non-empty strings, got {name!r} in {names!r}")
        if len(set(names)) != len(names):
            raise FieldError(f"field names must be unique, got {names!r}")
        self = super().__new__(cls, names)
        self.index = {name: i for i, name in enumerate(names)}
        for old, name in (aliases or {}).items():
            self.index[old] = self.index[name]
        return self


SEQ_SHIFT = 24  # a tree's root: its record's seq << SEQ_SHIFT | a per-run count of tree starts (runtime/trees.py)

VALUE = Fields(("value",))
NO_FIELDS = Fields(())


class Tuple:
    """One tuple: `values` on `stream`, emitted by task `task` of component `source`.

    `tup["word"]` reads a field by name, `tup[0]` and `tup[-1]` by position; `tup.fields` are
    the stream's field names (`"word" in tup.fields` works). `id` is the tuple's 64-bit id
    (None when the topology runs with `reliability="none"`, where nothing is tracked).

    A stream that declares no fields (a plain function or an iterable used as a component,
    without `fields=`) names a one-value tuple `value` and leaves longer tuples positional.
    """

    __slots__ = ("values", "stream", "source", "task", "id", "roots", "_fields")

    def __init__(self, values, stream="default", source=None, task=None, id=None,
                 roots=(), fields=None):
        self.values = values
        self.stream = stream
        self.source = source
        self.task = task
        self.id = id
        self.roots = roots
        self._fields = fields

    @property
    def seqs(self):
        """The sequence numbers of the log records whose trees this tuple belongs to: the same on
        every replay of those records (a tree's root is new at each start), so a sink can derive
        an idempotency key from them (e.g. JetStreamPublish's message id). Empty with reliability
        "none", where nothing is tracked."""
        return tuple(root >> SEQ_SHIFT for root in self.roots)

    @property
    def fields(self):
        if self._fields is not None:
            return self._fields
        return VALUE if len(self.values) == 1 else NO_FIELDS

    def __getitem__(self, key):
        if key.__class__ is not str:
            return self.values[key]
        try:
            return self.values[self.fields.index[key]]
        except KeyError:
            raise KeyError(
                f"tuple from {self.source!r} on stream {self.stream!r} has no field {key!r}; "
                f"its fields are {tuple(self.fields)!r}") from None

    def __len__(self):
        return len(self.values)

    def __iter__(self):
        return iter(self.values)

    def __eq__(self, other):
        if not isinstance(other, Tuple):
            return NotImplemented
        return (self.values, self.stream, self.source) == (other.values, other.stream, other.source)

    __hash__ = None

    def __repr__(self):
        return f"Tuple({self.values!r}, stream={self.stream!r}, source={self.source!r}, task={self.task!r})"
