"""The checkpointed state of stateful bolts, one row per key of each task.

    state        msgpack(component) + msgpack(task index) + msgpack(key) -> msgpack(value)

msgpack values carry their own length, so no task's prefix is a prefix of another's.
"""
import msgpack

from .codec import CodecError, decode, encode


class StateStore:
    """The `state` database: rows buffered until the log commits, reads of what is committed.
    A read-only log written before stateful bolts existed has no such database: it reads as
    empty."""

    def __init__(self, env):
        self.env = env
        self.db = env.database(b"state", optional=True)
        self._changes = []  # (component, task index, [key, present, value] rows)

    def put(self, component, task, rows):
        """A task's changes since its last checkpoint (`State.changes()` rows: key, present,
        value; a row not present deletes its key)."""
        if rows:
            self._changes.append((component, task, rows))

    @property
    def buffered(self):
        return len(self._changes)

    def write(self, txn):
        """Write the buffered rows in the log's commit transaction. Raises CodecError naming
        the bolt when a key or value cannot be stored."""
        db = self.db
        for component, task, rows in self._changes:
            prefix = task_prefix(component, task)
            for key, present, value in rows:
                k = prefix + _encoded_key(component, key)
                if present:
                    txn.put(k, encoded_value(component, key, value), db=db)
                else:
                    txn.delete(k, db=db)

    def committed(self):
        self._changes = []

    def load(self, component, task):
        """One task's committed state as a dict (keys that were tuples come back as tuples)."""
        out = {}
        if self.db is None:
            return out
        prefix = task_prefix(component, task)
        with self.env.reading() as txn:
            cursor = txn.cursor(db=self.db)
            found = cursor.set_range(prefix)
            while found and cursor.key().startswith(prefix):
                key = msgpack.unpackb(cursor.key()[len(prefix):], use_list=False, raw=False)
                out[key] = decode(cursor.value())
                found = cursor.next()
        return out

    def count(self):
        """Rows kept, over every task."""
        if self.db is None:
            return 0
        with self.env.reading() as txn:
            return txn.stat(self.db)["entries"]

    def tasks(self):
        """{(component, task index): rows} of every task that keeps state."""
        counts = {}
        if self.db is None:
            return counts
        with self.env.reading() as txn:
            for k in txn.cursor(db=self.db).iternext(values=False):
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(k)
                where = (next(unpacker), next(unpacker))
                counts[where] = counts.get(where, 0) + 1
        return counts


def task_prefix(component, task):
    return encode(component) + encode(task)


def _encoded_key(component, key):
    try:
        return encode(key)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"stateful bolt {component!r}: state key {key!r} cannot be stored ({exc})") from None


def encoded_value(component, key, value):
    try:
        return encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"stateful bolt {component!r}: state[{key!r}] cannot be stored ({exc})") from None
