"""The replay log's protocol, written once; `DurableLog` (LMDB) and `MemoryLog` implement it.

A log keeps, for one topology:

- pending *records*, each under a *sequence number* ("seq", from `new_root()`; the methods
  and `Record.root` still call it root): the tuples that started trees, until `release`;
- *dead letters*: records given up, with the last error;
- spout *positions*, run *metadata*, the *state rows* of stateful bolts;
- the *entries* of named outputs (`put_outbox`, `read_outbox`, `trim_outbox`: the names
  are older than the word), each numbered by its output's own sequence.

Writes (append, release, dead_letter, position, put_meta, put_state, declare_outputs,
put_outbox, close_outputs, trim_outbox) take effect together at `commit()` at the latest: a
DurableLog buffers them and writes them in one transaction, all or nothing; a MemoryLog
applies them at once. Reads see at least every write committed before them; whether they
see a write not yet committed is not specified. `check_topology`, `requeue` and `purge` act
at once.
"""
from typing import Protocol, runtime_checkable

from .memory import MemoryLog
from .record import DeadLetter, Record, Run

__all__ = ["DeadLetter", "MemoryLog", "Record", "ReplayLog", "Run"]


@runtime_checkable
class ReplayLog(Protocol):
    durable: bool
    """True when what is committed survives the process (a DurableLog)."""

    next_root: int
    """The sequence number `new_root()` hands out next."""

    @property
    def buffered(self) -> int:
        """How many writes wait for `commit()`; 0 when it has nothing to do."""

    def new_root(self) -> int:
        """A fresh sequence number, greater than every one handed out before by this log
        (a DurableLog: also by earlier runs, once committed)."""

    def new_seqs(self, n) -> int:
        """The first of `n` fresh sequence numbers in a row (`new_root` n times, in one call)."""

    def check_topology(self, name, fingerprint, shape):
        """Refuse (TopologyMismatch, naming the log) another topology, or a changed shape
        while records are pending or state is kept; record the topology if none is. The
        stored shape when it changed, else None."""

    def get_meta(self, name):
        """A metadata entry (msgpack-storable), or None."""

    def put_meta(self, name, value):
        """Set a metadata entry."""

    def append(self, record) -> None:
        """Keep `record` pending under `record.seq`, replacing the one there (attempts)."""

    def append_run(self, run) -> None:
        """`append` of each record of `run` (a `Run`: a spout's batch, its seqs fresh from
        `new_seqs`), kept as one entry; read back one by one as Records."""

    def release(self, root) -> None:
        """The tree of the record of seq `root` is complete: it is no longer pending."""

    def release_all(self, seqs) -> None:
        """`release` of each of `seqs` (the records of a commit whose trees completed at once)."""

    def dead_letter(self, letter) -> None:
        """The letter's record is given up: no longer pending, kept as a dead letter."""

    def position(self, spout, task, position) -> None:
        """Where task `task` of spout `spout` stands."""

    def get_position(self, spout, task):
        """The last position stored for that spout task, or None."""

    def positions(self) -> dict:
        """{"spout/task": position} of every spout task with one."""

    def put_state(self, component, task, rows) -> None:
        """Apply a stateful task's `State.changes()` rows ([key, present, value])."""

    def load_state(self, component, task) -> dict:
        """A stateful task's state as of its last applied rows; {} if none."""

    def state_count(self) -> int:
        """State rows kept, over every task."""

    def states(self) -> dict:
        """{(component, task index): rows} of every task that keeps state."""

    def declare_outputs(self, fields_by_name) -> None:
        """{name: fields or None}: the outputs whose entries this run keeps. An output
        declared before keeps its entries, sequence and id."""

    def put_outbox(self, name, rows) -> None:
        """Append entries (values) to declared output `name`, numbered from its `next`."""

    def close_outputs(self, closed=True) -> None:
        """Mark every declared output closed (a finite run completed) or open again."""

    def trim_outbox(self, name, upto) -> None:
        """Delete the entries of declared output `name` up to seq `upto`."""

    def output_info(self, name):
        """{fields, next, closed, trimmed, id} of output `name`, or None if never declared."""

    def read_outbox(self, name, after, limit) -> list:
        """Up to `limit` (seq, values) entries of output `name` after seq `after`, in order;
        values as a tuple."""

    def outputs(self) -> dict:
        """{name: {fields, next, closed, trimmed, id, length}} of every output kept."""

    def consumers(self, name) -> dict:
        """{consumer: position} of the consumers registered for output `name`."""

    def clear_stale_readers(self) -> None:
        """Free what readers that died still hold (nothing to do in memory)."""

    def commit(self) -> None:
        """Make every earlier write take effect (a DurableLog: durably, in one transaction)."""

    def flush(self) -> None:
        """The same as `commit()`."""

    def pending_count(self) -> int:
        """Records pending."""

    def __len__(self) -> int:
        """Records pending."""

    def iter_pending(self, chunk=10000):
        """Every pending record, about oldest first (a DurableLog: by the commit that last
        appended it; records appended while it iterates are not met again)."""

    def pending(self) -> list:
        """Every pending record, oldest first, as a list."""

    def pending_seqs(self) -> set:
        """The sequence numbers of every pending record (a DurableLog: as committed)."""

    def records(self, seqs) -> list:
        """The pending records of `seqs`, in that order, leaving out those not pending (a
        DurableLog: as committed)."""

    def oldest_pending(self):
        """The pending record of the lowest seq (a DurableLog: of those in its oldest batch and
        single entry), or None."""

    def dead_count(self) -> int:
        """Dead letters kept."""

    def dead_letters(self, root=None) -> list:
        """Every dead letter kept, or those of seq `root`. A DurableLog lists them by seq and,
        when bounded, drops the lowest; a MemoryLog in the order given up, dropping the
        earliest: the same when records are given up in the order they were logged."""

    def requeue(self, root=None) -> int:
        """Move dead letters (all, or those of seq `root`) back to pending with attempts 0;
        how many."""

    def purge(self, root=None) -> int:
        """Delete dead letters (all, or those of seq `root`); how many."""

    def close(self) -> None:
        """Commit what waits, and let go of what the log holds open."""
