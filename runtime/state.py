"""`self.state` of a stateful bolt: a mapping that can return to its last checkpoint.

A bolt class with `stateful = True` gets a `State` before `prepare`, one per task, holding what
the last checkpoint stored for that task. The runtime checkpoints and rolls back in *epochs*
(see `runtime/trees.py`): between two checkpoints every change is undoable. The first time a
key is changed in an epoch, its old value is kept (`_undo`); a checkpoint hands over the
current values of those keys and forgets the old ones; a rollback puts the old ones back.

A container value (list, dict) can be changed in place (`self.state["seen"].append(x)`): the
first read of such a value in an epoch keeps a copy of it, so that change is checkpointed and
undone like an assignment. Keys are str, int, float, bool, None, bytes or tuples of those;
values are what msgpack stores, and they read back as msgpack gives them: a tuple becomes a
list at once (not only after a restart), so every mode and every run sees the same values.
"""
import reprlib
from collections.abc import MutableMapping

from consecution.storage import CodecError
from consecution.storage.codec import INT_MAX, INT_MIN, scalar, SCALARS as _SCALARS  # not int: see scalar

MISSING = object()
_BASES = (str, int, float, bytes)
_CONTAINERS = frozenset((list, dict))


def plain(value, where):
    """`value` as msgpack gives it back (tuples as lists), or a CodecError naming `where`."""
    cls = value.__class__
    if cls in _SCALARS:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if INT_MIN <= value <= INT_MAX:
            return value
        raise CodecError(f"{where}: an int of {value.bit_length()} bits cannot be kept in state (msgpack "
                         "stores ints from -2**63 to 2**64 - 1)")
    if cls is list or cls is tuple:
        return [plain(v, where) for v in value]
    if cls is dict:
        return {_key(k, where): plain(v, where) for k, v in value.items()}
    if isinstance(value, _BASES):
        return value  # a subclass of str/int/float (an IntEnum, say) is stored as its base
    raise CodecError(f"{where}: a {type(value).__name__} cannot be kept in state (msgpack stores "
                     f"None, bool, int, float, str, bytes, lists and dicts): {reprlib.repr(value)}")


def _key(key, where):
    cls = key.__class__
    if scalar(key):
        return key
    if cls is tuple:
        return tuple(_key(k, where) for k in key)
    raise CodecError(f"{where}: a state key must be str, int, float, bool, None, bytes or a tuple of "
                     f"those, not {type(key).__name__}: {reprlib.repr(key)}")


def _copy(value):
    if value.__class__ is list:
        return [_copy(v) for v in value]
    if value.__class__ is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


class State(MutableMapping):
    """A dict-like mapping of msgpack-serializable values, undoable back to its last checkpoint.

    `tracked=False` (reliability "none": nothing is replayed, nothing checkpointed) keeps no
    undo information.
    """

    __slots__ = ("_data", "_undo", "_where", "_tracked")

    def __init__(self, data=None, where="state", tracked=True):
        self._data = dict(data or {})
        self._undo = {}
        self._where = where
        self._tracked = tracked

    def __getitem__(self, key):
        value = self._data[key]
        if value.__class__ in _CONTAINERS and self._tracked and key not in self._undo:
            self._undo[key] = _copy(value)  # it may be changed in place
        return value

    def get(self, key, default=None):
        try:
            value = self._data[key]
        except KeyError:
            return default
        if value.__class__ in _CONTAINERS and self._tracked and key not in self._undo:
            self._undo[key] = _copy(value)
        return value

    def __setitem__(self, key, value):
        if key.__class__ not in _SCALARS:
            key = _key(key, self._where)
        cls = value.__class__
        if cls not in _SCALARS and not (cls is int and INT_MIN <= value <= INT_MAX):  # scalar(), inlined
            value = plain(value, f"{self._where}[{key!r}]")
        if self._tracked and key not in self._undo:
            self._undo[key] = self._data.get(key, MISSING)
        self._data[key] = value

    def __delitem__(self, key):
        old = self._data.pop(key)
        if self._tracked and key not in self._undo:
            self._undo[key] = old

    def __contains__(self, key):
        return key in self._data

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __repr__(self):
        return f"State({self._data!r})"

    def to_dict(self):
        """A plain copy of the current contents."""
        return _copy(self._data)

    # -- the runtime's side ------------------------------------------------------------------

    def check(self):
        """Raise a CodecError naming the key when a value changed since the last checkpoint
        cannot be kept: one changed in place (`self.state["seen"].append({1, 2})`); what is
        assigned is checked when it is set. The runtime checks every task before taking any
        task's changes, so that a refusal leaves every state as it was, to roll back."""
        data, where = self._data, self._where
        for key in self._undo:
            value = data.get(key)
            if value.__class__ in _CONTAINERS:
                plain(value, f"{where}[{key!r}]")

    def changes(self):
        """What changed since the last checkpoint, as [key, present, value] rows, and forget
        it: the current contents become the checkpoint."""
        data = self._data
        rows = [[key, key in data, data.get(key)] for key in self._undo]
        self._undo = {}
        return rows

    def rollback(self):
        """Return to the last checkpoint."""
        data = self._data
        for key, old in self._undo.items():
            if old is MISSING:
                data.pop(key, None)
            else:
                data[key] = old
        self._undo = {}


class OutputEntries:
    """The state of a named output's writer (`OutputBolt`): values appended in the current
    epoch; a checkpoint hands them to the log (the output's entries), a rollback drops them. `tracked=False`
    (reliability "none": no epochs) keeps nothing."""

    __slots__ = ("_rows", "_tracked")

    def __init__(self, tracked=True):
        self._rows = []
        self._tracked = tracked

    def append(self, values):
        if self._tracked:
            self._rows.append(values)

    def check(self):
        pass  # the writer's values were checked when emitted

    def changes(self):
        rows, self._rows = self._rows, []
        return rows

    def rollback(self):
        self._rows = []


def state_for(obj, data, where, tracked):
    """What a stateful bolt gets as `self.state`: the entries of an output's writer, else State."""
    if getattr(obj, "writes_output", False):
        return OutputEntries(tracked)
    return State(data, where, tracked)


def state_where(task):
    """How errors name a task's state."""
    return f"state of {task.component!r} (task {task.task_id})"


def apply_changes(data, rows):
    """Apply `State.changes()` rows to a plain dict (the supervisor's copy in process mode)."""
    for key, present, value in rows:
        if present:
            data[key] = value
        else:
            data.pop(key, None)
