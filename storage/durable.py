"""The durable replay log: one LMDB environment in `<state dir>/log`, four stores over it.

    PendingStore   pending records, in one batch per commit, and dead letters (pending.py)
    StateStore     the rows of stateful bolts' checkpointed state           (state_store.py)
    OutputStore    named outputs' entries, their meta, consumer files      (outputs.py)
    MetaStore      topology, spout positions, next sequence number, meta   (meta.py)

Each store buffers its writes; `commit()` writes what every store buffered in ONE LMDB write
transaction (the runtime decides when: by count and by time), so a record, the spout
position after it, the state changes and output entries its tree made and its release are
durable together or not at all: that is the exactly-once guarantee. A record is in a
committed transaction before any bolt sees it. The default durability survives SIGKILL of
the process (LMDB writes reach the OS before `commit` returns); `durability="power"` also
fsyncs every commit, to survive power loss. The map grows when full instead of failing.
Reads see what is committed. The methods are those of the `ReplayLog` protocol (log.py).
"""
from .env import DURABILITY, INITIAL_MAP, LogEnvironment
from .errors import StorageError, TopologyMismatch
from .meta import FORMAT, MetaStore, check_topology, describe_change
from .outputs import OutputStore, consumer_positions, register_consumer
from .pending import PendingStore
from .state_store import StateStore

__all__ = ["DURABILITY", "DurableLog", "FORMAT", "StorageError", "TopologyMismatch", "consumer_positions",
           "describe_change", "register_consumer"]


class DurableLog:
    """Pending records, dead letters, spout positions, bolt state, named outputs and run
    metadata of one state directory, in LMDB."""

    durable = True

    def __init__(self, path, durability="kill", readonly=False, map_size=INITIAL_MAP,
                 keep_pending=True, keep_dead=None):
        """`keep_pending=False` keeps dead letters and positions only (reliability "track");
        `keep_dead=N` keeps only the newest N dead letters. Raises StorageError naming the
        directory when it cannot be opened (read-only: when it holds no log)."""
        self.path = path
        self.readonly = readonly
        self.keep_pending = keep_pending
        self.keep_dead = keep_dead
        self._env = LogEnvironment(path, durability, readonly, map_size)
        self.env = self._env.lmdb
        self._pending = PendingStore(self._env, keep_pending, keep_dead)
        self._meta = MetaStore(self._env)
        self._state = StateStore(self._env)
        self._outputs = OutputStore(self._env, self._meta, path)
        # the per-record calls go straight to their store (no layer on the hot path); the
        # methods below say what they do
        self.new_root, self.append, self.release = self._meta.new_seq, self._pending.append, self._pending.release
        self.release_all, self.new_seqs, self.append_run = (self._pending.release_all, self._meta.new_seqs,
                                                            self._pending.append_run)

    @property
    def next_root(self):
        """The sequence number `new_root()` hands out next."""
        return self._meta.next_seq

    @next_root.setter
    def next_root(self, seq):
        self._meta.next_seq = seq

    def new_root(self):
        """A fresh sequence number for a record (stored with the next commit)."""
        return self._meta.new_seq()

    # -- topology and metadata ---------------------------------------------------------------

    def check_topology(self, name, fingerprint, shape):
        """Refuse another topology, or a changed shape while records are pending or state is
        kept (TopologyMismatch, naming the state directory and the change); record the
        topology on a new state directory at once. Returns the stored shape when it changed
        (the caller logs it), else None."""
        return check_topology(self._meta.get, self._meta.record_now, self._held, f"state directory {self.path}",
                              name, fingerprint, shape)

    def _held(self):
        return self.pending_count(), self.state_count()

    def get_meta(self, name):
        return self._meta.get(name)

    def put_meta(self, name, value):
        """Set a run metadata entry at the next commit."""
        self._meta.put(name, value)

    # -- buffered writes ---------------------------------------------------------------------

    def append(self, record):
        """Add (or update the attempts of) a pending record, at the next commit."""
        self._pending.append(record)

    def new_seqs(self, n):
        """The first of `n` fresh sequence numbers in a row."""
        return self._meta.new_seqs(n)

    def append_run(self, run):
        """`append` of each record of `run` (a `Run`: a spout's batch), as one entry."""
        self._pending.append_run(run)

    def release(self, root):
        """The record's tree is complete: remove the record of sequence number `root` at the
        next commit."""
        self._pending.release(root)

    def release_all(self, seqs):
        """`release` of each of `seqs`, in one call."""
        self._pending.release_all(seqs)

    def dead_letter(self, letter):
        """Move the letter's record from pending to the dead letters at the next commit."""
        self._pending.dead_letter(letter)

    def position(self, spout, task, position):
        """Where spout task `task` of `spout` stands, stored with the tuples it emitted."""
        self._meta.position(spout, task, position)

    def put_state(self, component, task, rows):
        """A stateful task's changes since its last checkpoint (`State.changes()` rows),
        written at the next commit, with the releases of the trees that made them."""
        self._state.put(component, task, rows)

    # -- named outputs: put_outbox, trim_outbox and read_outbox act on an output's entries ---

    def declare_outputs(self, fields_by_name):
        """The producing topology's outputs: {name: fields or None}. Their entries are kept."""
        self._outputs.declare(fields_by_name)

    def put_outbox(self, name, rows):
        """Entries (values) to append to output `name` at the next commit (with the trees
        that made them)."""
        self._outputs.append(name, rows)

    def close_outputs(self, closed=True):
        """Mark every declared output closed (a finite run completed) or open again."""
        self._outputs.close(closed)

    def trim_outbox(self, name, upto):
        """Delete the entries of output `name` up to seq `upto` at the next commit."""
        self._outputs.trim(name, upto)

    def output_info(self, name):
        """{fields, next, closed, trimmed, id} of output `name`, or None if it was never declared."""
        return self._outputs.info(name)

    def read_outbox(self, name, after, limit):
        """Up to `limit` (seq, values) entries of output `name` after seq `after`, oldest first."""
        return self._outputs.read(name, after, limit)

    def outputs(self):
        """{name: {fields, next, closed, trimmed, id, length}} of every output this log holds."""
        return self._outputs.all()

    def consumers(self, name):
        """{consumer: position} of the consumers registered for output `name` (this output, not
        one an earlier state directory at this path held)."""
        return self._outputs.consumers(name)

    def clear_stale_readers(self):
        """Free the reader slots of processes that died (a killed consumer's `Output` spout):
        a stale slot would keep old pages from being reused and the file would grow."""
        self._env.clear_stale_readers()

    # -- commit ------------------------------------------------------------------------------

    @property
    def buffered(self):
        """How many writes wait for the next commit (0: commit has nothing to do)."""
        return self._pending.buffered + self._meta.buffered + self._state.buffered + self._outputs.buffered

    def commit(self):
        """Write everything every store buffered in one transaction: all of it, or (on an
        exception) none of it."""
        if not self.buffered:
            return
        self._outputs.number()
        stores = (self._pending, self._state, self._outputs, self._meta)

        def fill(txn):
            for store in stores:
                store.write(txn)

        self._env.write(fill)
        for store in stores:
            store.committed()

    flush = commit

    # -- reading (what is committed) ---------------------------------------------------------

    def pending_count(self):
        return self._pending.count()

    def dead_count(self):
        return self._pending.dead_count()

    def __len__(self):
        return self._pending.count()

    def iter_pending(self, chunk=10000):
        """Every pending record, oldest first, read in short transactions of `chunk`."""
        return self._pending.iter(chunk)

    def pending(self):
        return list(self._pending.iter())

    def pending_seqs(self):
        return self._pending.seqs()

    def records(self, seqs):
        return self._pending.records(seqs)

    def oldest_pending(self):
        return self._pending.oldest()

    def dead_letters(self, root=None):
        """Every dead letter by sequence number, or the one of sequence number `root`."""
        return self._pending.dead_letters(root)

    def iter_dead_letters(self, chunk=1000):
        """Every dead letter by sequence number, read `chunk` at a time (not all in memory)."""
        return self._pending.iter_dead(chunk)

    def state_count(self):
        return self._state.count()

    def load_state(self, component, task):
        """The checkpointed state of one task of a stateful bolt, as a dict."""
        return self._state.load(component, task)

    def states(self):
        """{(component, task index): entries} for every task that keeps state."""
        return self._state.tasks()

    def positions(self):
        return self._meta.positions()

    def get_position(self, spout, task):
        return self._meta.get_position(spout, task)

    # -- commands ----------------------------------------------------------------------------

    def requeue(self, root=None):
        """Move dead letters (all, or one) back to pending with a fresh attempt count: one, at
        once; all, in transactions of 1,000 (each letter moves whole: never in both or neither)."""
        return self._pending.requeue(root)

    def purge(self, root=None):
        """Delete dead letters (all, or one), at once (all: in transactions of 1,000)."""
        return self._pending.purge(root)

    def close(self):
        """Commit what is buffered (unless read-only) and close the environment."""
        if not self.readonly:
            self.commit()
        self._env.close()
