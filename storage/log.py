"""The replay log's records (record.py) and its in-memory form.

A `Record` is one entry of the log: a tuple that started a tree (a spout tuple, or a tuple a
bolt emitted from `finish`), with what is needed to emit it again. `MemoryLog` keeps pending
records and dead letters in memory: the log of `reliability="replay"` until the durable LMDB
log (same methods) takes its place, and the store of "confirm" and "track".
"""
import collections

from .record import DeadLetter, Record

__all__ = ["DeadLetter", "MemoryLog", "Record"]


class MemoryLog:
    """Pending records by root and dead letters, in memory (lost with the process).

    `keep` bounds the dead letters kept (oldest dropped first; None keeps all), which is how
    `reliability="track"` keeps only the last N failures.
    """

    durable = False
    buffered = 0

    def __init__(self, keep=None):
        self._pending = {}
        self.dead_letters = collections.deque(maxlen=keep)
        self.next_root = 1

    def get_meta(self, name):
        return None

    def put_meta(self, name, value):
        pass

    def declare_outputs(self, fields_by_name):
        pass

    def put_outbox(self, name, rows):
        pass  # outputs are durable only with a state directory

    def close_outputs(self, closed=True):
        pass

    def put_state(self, component, task, rows):
        pass  # a stateful task's checkpoints live in its own State while the run lasts

    def load_state(self, component, task):
        return {}

    def new_root(self):
        root = self.next_root
        self.next_root = root + 1
        return root

    def position(self, spout, task, position):
        pass

    def get_position(self, spout, task):
        return None

    def iter_pending(self):
        return iter(list(self._pending.values()))

    def dead_count(self):
        return len(self.dead_letters)

    def commit(self):
        pass

    def append(self, record):
        self._pending[record.root] = record

    def release(self, root):
        return self._pending.pop(root, None)

    def pending(self):
        return list(self._pending.values())

    def dead_letter(self, letter):
        self._pending.pop(letter.record.root, None)
        self.dead_letters.append(letter)

    flush = commit

    def close(self):
        pass

    def __len__(self):
        return len(self._pending)
