"""Pending records and dead letters, keyed by the log's sequence number.

    batches      batch number (8 bytes, big-endian) -> [[seq, ...], [[seq, ...], spout, task,
                 stream, msg_id, attempts, first_seen], ...], [[spout, task, stream, values,
                 msg_id, attempts, first_seen], ...], [[values, ...], ...]]: the records one
                 commit appended: those appended one by one (their seqs, then their rows) and
                 runs of records that share all but their values (a spout's batch: per run its
                 seqs and what they share, then their values). Sequence numbers come first,
                 so that opening reads only those. Log format 2 wrote [[seq, ...], [row, ...]]
                 (no runs), which is read as before.
    pending      seq (8 bytes, big-endian) -> [spout, task, stream, values, msg_id, attempts,
                 first_seen]: one record per entry (written by `requeue`, and by log format 1)
    dead         seq -> the same record + [component, task, error, traceback, time]

A commit writes the records appended since the one before as one batch: one pack and one put,
not one per record, and for a `Run` of records (`append_run`) one head and their values (the
records of a spout's commit mostly complete together, and their batch is then deleted with one
`delete`). The store keeps which batch holds each pending record and
which of a batch's records are still pending; a batch some of whose records were released is
written again with the others, in the same commit as the releases. A record appended again
(its attempts went up) moves to the new batch. Batch numbers grow, so the oldest records are
in the first batch.
"""
import struct
from collections import deque
from itertools import repeat
from operator import attrgetter

import msgpack

from .codec import SCALARS, CodecError, decode, encode
from .record import DeadLetter, Record

SEQ = struct.Struct(">Q")
ROW_OF = attrgetter("spout", "task", "stream", "values", "msg_id", "attempts", "first_seen")  # a record's row


def drop(mapping, keys):
    """Remove `keys` from a dict where present, in one C-level pass (the itertools recipe `consume`)."""
    deque(map(mapping.pop, keys, repeat(None)), maxlen=0)


def seq_key(seq):
    return SEQ.pack(seq)


def record_from(seq, row):
    spout, task, stream, values, msg_id, attempts, first_seen = row[:7]
    return Record(seq, spout, task, stream, tuple(values), msg_id, attempts, first_seen)


def _seqs(value):
    """The sequence numbers of a batch, without decoding its records' values."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(value)
    parts = unpacker.read_array_header()
    seqs = unpacker.unpack()
    if parts == 4:  # with runs
        for head in unpacker.unpack():
            seqs += head[0]
    return seqs


def batch_rows(value):
    """(seqs, rows) of a stored batch, its runs spread into rows of their own."""
    batch = decode(value)
    if len(batch) == 2:  # log format 2, or a batch written again with some of its records
        return batch
    seqs, heads, rows, runs = batch
    for (run_seqs, spout, task, stream, msg_id, attempts, first_seen), values in zip(heads, runs):
        seqs += run_seqs
        rows += [[spout, task, stream, v, msg_id, attempts, first_seen] for v in values]
    return seqs, rows


class PendingStore:
    """The `batches`, `pending` and `dead` databases: writes buffered until the log commits,
    reads of what is committed.

    `keep_pending=False` keeps dead letters only (appends and releases are ignored);
    `keep_dead=N` keeps only the N dead letters with the highest sequence numbers."""

    def __init__(self, env, keep_pending=True, keep_dead=None):
        self.env = env
        self.keep_pending = keep_pending
        self.keep_dead = keep_dead
        self.batches_db = env.database(b"batches", optional=True)  # None: a read-only log of format 1
        self.pending_db = env.database(b"pending")
        self.dead_db = env.database(b"dead")
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._puts = {}        # seq -> Record (appends and attempt updates since the last commit)
        self._runs = []        # Runs appended since the last commit
        self._releases = set()
        self._letters = {}     # seq -> encoded dead letter
        self._batch_of = {}    # seq -> the batch that holds it (every pending record in a batch)
        self._live = {}        # batch -> the seqs it holds that are pending
        self._next_batch = 1
        self._plan = None      # what write() wrote, applied by committed()
        self._load()

    def _load(self):
        """Which batch holds which pending record, from what is committed."""
        with self.env.reading() as txn:
            if self.batches_db is None:
                return
            for key, value in txn.cursor(db=self.batches_db):
                batch = SEQ.unpack(key)[0]
                seqs = _seqs(value)
                self._live[batch] = set(seqs)
                self._batch_of.update(dict.fromkeys(seqs, batch))
                self._next_batch = batch + 1

    # -- buffered writes ---------------------------------------------------------------------

    def append(self, record):
        """Add (or update the attempts of) a pending record. Raises CodecError naming the
        spout when its msg_id cannot be stored."""
        if not self.keep_pending:
            return
        msg_id = record.msg_id
        if msg_id is not None and msg_id.__class__ not in SCALARS:
            try:
                self._pack(msg_id)
            except (TypeError, ValueError, OverflowError) as exc:
                raise CodecError(f"spout {record.spout!r}: msg_id {msg_id!r} cannot be stored "
                                 f"as msgpack ({exc})") from None
        self._puts[record.seq] = record
        self._releases.discard(record.seq)

    def append_run(self, run):
        """`append` of the records of a `Run` (a spout's batch, fresh seqs), written as one
        head and the values. Nothing releases or appends them again before the commit that
        writes them (their trees start after it)."""
        if self.keep_pending and run.values:
            self._runs.append(run)

    def release(self, seq):
        if not self.keep_pending:
            return
        self._puts.pop(seq, None)
        self._releases.add(seq)

    def release_all(self, seqs):
        if not self.keep_pending:
            return
        if self._puts:  # else none of them was appended since the last commit
            drop(self._puts, seqs)
        self._releases.update(seqs)

    def dead_letter(self, letter):
        """Move the letter's record from pending to the dead letters."""
        seq = letter.record.seq
        self.release(seq)
        self._letters[seq] = encode(list(ROW_OF(letter.record)) + [
            letter.component, letter.task, letter.error, letter.traceback, letter.time])

    @property
    def buffered(self):
        return len(self._puts) + len(self._runs) + len(self._releases) + len(self._letters)

    def write(self, txn):
        """Write the buffered changes in the log's commit transaction: batches that lost
        records deleted or written again with the others, the appended records as a new batch.
        The store's own bookkeeping changes in `committed` (`write` may run again, on a fresh
        transaction, when the map grew)."""
        puts, batch_of = self._puts, self._batch_of
        gone = self._releases
        moved = puts.keys() & batch_of.keys()  # appended again: they leave their batch
        if moved:
            gone = gone | moved
        touched = set(map(batch_of.get, gone)) if gone else set()
        kept = {}
        for batch in touched:
            if batch is None:  # never in a batch: a single entry, or released before its commit
                continue
            live = self._live[batch] - gone
            key = seq_key(batch)
            if live:
                kept[batch] = live
                seqs, rows = batch_rows(txn.get(key, db=self.batches_db))
                kept_rows = [(seq, row) for seq, row in zip(seqs, rows) if seq in live]
                txn.put(key, self._pack([[seq for seq, _ in kept_rows], [row for _, row in kept_rows]]),
                        db=self.batches_db)
            else:
                txn.delete(key, db=self.batches_db)
        if txn.stat(self.pending_db)["entries"]:  # a single entry leaves when released, or appended again
            db = self.pending_db
            for seq in gone | puts.keys():
                if seq not in batch_of:
                    txn.delete(seq_key(seq), db=db)
        batch = None
        if puts or self._runs:
            batch = self._next_batch
            rows = [list(puts), list(map(ROW_OF, puts.values()))]
            if self._runs:
                heads = [[list(run.seqs), run.spout, run.task, run.stream, None, 1, run.first_seen]
                         for run in self._runs]
                rows = [rows[0], heads, rows[1], [run.values for run in self._runs]]
            txn.put(seq_key(batch), self._pack(rows), db=self.batches_db, append=True)
        for seq, value in self._letters.items():
            txn.put(seq_key(seq), value, db=self.dead_db)
        if self._letters and self.keep_dead is not None:
            self._keep_newest_letters(txn)
        self._plan = (gone, touched, kept, batch)

    def committed(self):
        """The commit transaction succeeded: what it wrote is now the store's bookkeeping."""
        if self._plan is not None:
            gone, touched, kept, batch = self._plan
            batch_of, live = self._batch_of, self._live
            for old in touched:
                if old is not None:
                    if old in kept:
                        live[old] = kept[old]
                    else:
                        del live[old]
            if gone and batch_of:
                drop(batch_of, gone)
            if batch is not None:
                live[batch] = seqs = set(self._puts)
                for run in self._runs:
                    seqs.update(run.seqs)
                batch_of.update(dict.fromkeys(seqs, batch))
                self._next_batch = batch + 1
            self._plan = None
        self._puts, self._runs, self._releases, self._letters = {}, [], set(), {}

    def _keep_newest_letters(self, txn):
        extra = txn.stat(self.dead_db)["entries"] - self.keep_dead
        cursor = txn.cursor(db=self.dead_db)
        while extra > 0 and cursor.first():
            cursor.delete()
            extra -= 1

    # -- reading (what is committed) ---------------------------------------------------------

    def count(self):
        """Pending records: single entries as committed, batches' records as last committed by
        this store (or found when it opened)."""
        with self.env.reading() as txn:
            singles = txn.stat(self.pending_db)["entries"]
        return singles + sum(len(live) for live in self._live.values())

    def dead_count(self):
        with self.env.reading() as txn:
            return txn.stat(self.dead_db)["entries"]

    def iter(self, chunk=10000):
        """Every pending record, read in short transactions of about `chunk` records: the
        single entries by sequence number, then the batches, oldest first. Records appended
        while it iterates (a replay appends each record again, with one more attempt) are not
        met again: batches written after it started are not read."""
        for key, value in self._entries(self.pending_db, chunk):
            yield record_from(SEQ.unpack(key)[0], decode(value))
        if self.batches_db is None:
            return
        after, end = None, self._next_batch
        while True:
            batches = [(key, value) for key, value in self._rows_after(self.batches_db, after, max(1, chunk // 512))
                       if SEQ.unpack(key)[0] < end]
            if not batches:
                return
            for _, value in batches:
                seqs, rows = batch_rows(value)
                for seq, row in zip(seqs, rows):
                    yield record_from(seq, row)
            after = SEQ.unpack(batches[-1][0])[0]

    def seqs(self):
        """The sequence numbers of every pending record, as committed (no record decoded)."""
        found = set(self._batch_of)
        with self.env.reading() as txn:
            found.update(SEQ.unpack(key)[0] for key in txn.cursor(db=self.pending_db).iternext(values=False))
        return found

    def records(self, seqs):
        """The committed pending records of `seqs`, in that order (those not pending left out):
        each batch that holds some is read once."""
        by_batch, singles, found = {}, [], {}
        for seq in seqs:
            batch = self._batch_of.get(seq)
            if batch is None:
                singles.append(seq)
            else:
                by_batch.setdefault(batch, set()).add(seq)
        with self.env.reading() as txn:
            for batch, wanted in by_batch.items():
                for seq, row in zip(*batch_rows(txn.get(seq_key(batch), db=self.batches_db))):
                    if seq in wanted:
                        found[seq] = record_from(seq, row)
            for seq in singles:
                value = txn.get(seq_key(seq), db=self.pending_db)
                if value is not None:
                    found[seq] = record_from(seq, decode(value))
        return [found[seq] for seq in seqs if seq in found]

    def _entries(self, db, chunk):
        """Every (key, value) of `db` in key order, read in short transactions of `chunk`."""
        after = None
        while True:
            rows = self._rows_after(db, after, chunk)
            if not rows:
                return
            yield from rows
            after = SEQ.unpack(rows[-1][0])[0]

    def _rows_after(self, db, after, chunk):
        rows = []
        with self.env.reading() as txn:
            cursor = txn.cursor(db=db)
            found = cursor.set_range(seq_key(after + 1)) if after is not None else cursor.first()
            while found and len(rows) < chunk:
                rows.append((cursor.key(), cursor.value()))
                found = cursor.next()
        return rows

    def oldest(self):
        """The pending record with the lowest sequence number of the first single entry and
        the first batch (the oldest of each)."""
        found = []
        with self.env.reading() as txn:
            cursor = txn.cursor(db=self.pending_db)
            if cursor.first():
                found.append(record_from(SEQ.unpack(cursor.key())[0], decode(cursor.value())))
            if self.batches_db is not None:
                cursor = txn.cursor(db=self.batches_db)
                if cursor.first():
                    seqs, rows = batch_rows(cursor.value())
                    seq, row = min(zip(seqs, rows), key=lambda pair: pair[0])
                    found.append(record_from(seq, row))
        return min(found, key=lambda record: record.seq) if found else None

    def dead_letters(self, seq=None):
        """Every dead letter by sequence number, or the one of `seq` (an empty list if none)."""
        with self.env.reading() as txn:
            if seq is not None:
                value = txn.get(seq_key(seq), db=self.dead_db)
                rows = [] if value is None else [(seq_key(seq), value)]
            else:
                rows = list(txn.cursor(db=self.dead_db))
        out = []
        for key, value in rows:
            row = decode(value)
            out.append(DeadLetter(record_from(SEQ.unpack(key)[0], row), *row[7:12]))
        return out

    # -- commands (each its own transaction) -------------------------------------------------

    def iter_dead(self, chunk=1000):
        """Every dead letter by sequence number, read in short transactions of `chunk`."""
        for key, value in self._entries(self.dead_db, chunk):
            row = decode(value)
            yield DeadLetter(record_from(SEQ.unpack(key)[0], row), *row[7:12])

    def requeue(self, seq=None, chunk=1000):
        """Move dead letters (all, or the one of `seq`) back to pending with attempts 0, as
        single entries; how many. All of them move `chunk` per transaction, read and written
        as they are stored (never all in memory)."""
        def move(txn, key, value):
            row = decode(value)
            row[5] = 0  # attempts
            txn.put(key, encode(row[:7]), db=self.pending_db)
            self._letters.pop(SEQ.unpack(key)[0], None)

        return self._each_letter(seq, chunk, move)

    def purge(self, seq=None, chunk=1000):
        """Delete dead letters (all, or the one of `seq`); how many."""
        return self._each_letter(seq, chunk, lambda txn, key, value: None)

    def _each_letter(self, seq, chunk, act):
        """Call `act(txn, key, value)` for the dead letter of `seq`, or for every one, and
        delete it, in write transactions of `chunk` letters; how many."""
        done = 0
        while True:
            counted = []

            def fill(txn):
                counted.clear()
                cursor = txn.cursor(db=self.dead_db)
                found = cursor.set_key(seq_key(seq)) if seq is not None else cursor.first()
                while found and len(counted) < chunk:
                    act(txn, cursor.key(), cursor.value())
                    counted.append(1)
                    cursor.delete()
                    found = seq is None and cursor.first()
            self.env.write(fill)
            done += len(counted)
            if seq is not None or len(counted) < chunk:
                return done
