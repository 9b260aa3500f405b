"""The replay log in memory: the `ReplayLog` protocol (log.py), lost with the process.

The log of `reliability="replay"` without a state directory, and the store of "confirm" and
"track". Writes apply at once, so `commit()` has nothing to do and `buffered` is always 0;
what a DurableLog keeps across runs this one keeps while the process lives.
"""
import collections
from itertools import repeat

from .codec import decode
from .meta import check_topology
from .outputs import PREFIX, new_output_info
from .pending import drop
from .record import record_of
from .state_store import encoded_value

_CONTAINERS = (list, dict, tuple)


class DeadLetters(collections.deque):
    """A MemoryLog's dead letters in the order they were given up, the oldest dropped first
    beyond the log's bound. Called, it answers as `ReplayLog.dead_letters(root=None)` does;
    iterating it is the older way to read it, kept for its callers."""

    def __call__(self, root=None):
        return [letter for letter in self if root is None or letter.record.seq == root]


class MemoryLog:
    """Pending records by sequence number, dead letters, spout positions, run metadata, the
    state rows of stateful bolts and the entries of declared outputs, in memory.

    `keep` bounds the dead letters kept (oldest dropped first; None keeps all, 0 none), which
    is how `reliability="track"` keeps only the last N failures.

    Differences from a DurableLog: records, positions and metadata are kept as given, not
    encoded (so a msg_id or position msgpack cannot store is accepted); entries put to an
    output never declared are dropped (a DurableLog fails at commit); no consumer can
    register (`consumers` is always empty); dead letters are listed, and dropped beyond
    `keep`, in the order given up (a DurableLog: by sequence number)."""

    durable = False
    buffered = 0  # writes apply at once

    def __init__(self, keep=None):
        self._pending = {}             # seq -> its Record, or the Run that holds it
        self.dead_letters = DeadLetters(maxlen=keep)
        self.next_root = 1
        self._meta = {}                # name -> value; "output:<name>" -> an output's meta entry
        self._positions = {}           # (spout, task) -> position
        self._state = {}               # (component, task index) -> {key: value}
        self._entries = {}             # declared output name -> {seq: values}

    def new_root(self):
        seq = self.next_root
        self.next_root = seq + 1
        return seq

    def new_seqs(self, n):
        seq = self.next_root
        self.next_root = seq + n
        return seq

    # -- topology and metadata ---------------------------------------------------------------

    def check_topology(self, name, fingerprint, shape):
        return check_topology(self._meta.get, self._meta.update, self._held, "in-memory log",
                              name, fingerprint, shape)

    def _held(self):
        return len(self._pending), self.state_count()

    def get_meta(self, name):
        return self._meta.get(name)

    def put_meta(self, name, value):
        self._meta[name] = value

    # -- writes ------------------------------------------------------------------------------

    def append(self, record):
        self._pending[record.seq] = record

    def append_run(self, run):
        self._pending.update(zip(run.seqs, repeat(run)))

    def release(self, root):
        entry = self._pending.pop(root, None)
        return None if entry is None else record_of(root, entry)

    def release_all(self, seqs):
        drop(self._pending, seqs)

    def dead_letter(self, letter):
        self._pending.pop(letter.record.seq, None)
        self.dead_letters.append(letter)

    def position(self, spout, task, position):
        self._positions[spout, task] = position

    def put_state(self, component, task, rows):
        """Apply `State.changes()` rows. Container values are copied as msgpack gives them
        back, so later changes in place do not reach the checkpoint (CodecError naming the
        bolt if msgpack cannot store one)."""
        if not rows:
            return
        state = self._state.setdefault((component, task), {})
        for key, present, value in rows:
            if not present:
                state.pop(key, None)
            elif value.__class__ in _CONTAINERS:
                state[key] = decode(encoded_value(component, key, value))
            else:
                state[key] = value

    def commit(self):
        pass

    flush = commit

    def close(self):
        pass

    # -- named outputs -----------------------------------------------------------------------

    def declare_outputs(self, fields_by_name):
        for name, fields in fields_by_name.items():
            info = self._meta.get(PREFIX + name) or new_output_info()
            info["fields"] = list(fields) if fields is not None else None
            self._meta[PREFIX + name] = info
            self._entries.setdefault(name, {})

    def put_outbox(self, name, rows):
        entries = self._entries.get(name)
        if entries is None or not rows:
            return  # never declared: a run without a state directory keeps no outputs
        info = self._meta[PREFIX + name]
        seq = info["next"]
        for values in rows:
            entries[seq] = tuple(values)
            seq += 1
        info["next"] = seq

    def close_outputs(self, closed=True):
        for name in self._entries:
            self._meta[PREFIX + name]["closed"] = closed

    def trim_outbox(self, name, upto):
        info = self._meta[PREFIX + name]
        upto = min(upto, info["next"] - 1)
        entries = self._entries[name]
        for seq in range(info["trimmed"] + 1, upto + 1):
            entries.pop(seq, None)
        info["trimmed"] = max(info["trimmed"], upto)

    def output_info(self, name):
        info = self._meta.get(PREFIX + name)
        return None if info is None else dict(info)

    def read_outbox(self, name, after, limit):
        entries = self._entries.get(name)
        if not entries or limit <= 0:
            return []
        info = self._meta[PREFIX + name]
        first = max(after + 1, info["trimmed"] + 1)
        return [(seq, entries[seq]) for seq in range(first, min(info["next"], first + limit))]

    def outputs(self):
        return {key[len(PREFIX):]: dict(info, length=info["next"] - 1 - info["trimmed"])
                for key, info in self._meta.items() if key.startswith(PREFIX)}

    def consumers(self, name):
        return {}

    def clear_stale_readers(self):
        pass

    # -- reading -----------------------------------------------------------------------------

    def pending_count(self):
        return len(self._pending)

    def dead_count(self):
        return len(self.dead_letters)

    def __len__(self):
        return len(self._pending)

    def iter_pending(self, chunk=10000):
        return iter(self.pending())

    def pending(self):
        return [record_of(seq, entry) for seq, entry in sorted(self._pending.items(), key=_first)]

    def oldest_pending(self):
        if not self._pending:
            return None
        seq = min(self._pending)
        return record_of(seq, self._pending[seq])

    def pending_seqs(self):
        return set(self._pending)

    def records(self, seqs):
        pending = self._pending
        return [record_of(seq, pending[seq]) for seq in seqs if seq in pending]

    def state_count(self):
        return sum(len(state) for state in self._state.values())

    def load_state(self, component, task):
        return dict(self._state.get((component, task), ()))

    def states(self):
        return {where: len(state) for where, state in self._state.items() if state}

    def positions(self):
        return {f"{spout}/{task}": position for (spout, task), position in self._positions.items()}

    def get_position(self, spout, task):
        return self._positions.get((spout, task))

    # -- commands ----------------------------------------------------------------------------

    def requeue(self, root=None):
        letters = self._take_letters(root)
        for letter in letters:
            letter.record.attempts = 0
            self._pending[letter.record.seq] = letter.record
        return len(letters)

    def purge(self, root=None):
        return len(self._take_letters(root))

    def _take_letters(self, root):
        taken = self.dead_letters(root)
        kept = [letter for letter in self.dead_letters if root is not None and letter.record.seq != root]
        self.dead_letters.clear()
        self.dead_letters.extend(kept)
        return taken


def _first(pair):
    return pair[0]
