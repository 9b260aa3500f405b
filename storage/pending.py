"""Pending records and dead letters, keyed by the log's sequence number.

    pending      seq (8 bytes, big-endian) -> [spout, task, stream, values, msg_id, attempts, first_seen]
    dead         seq -> the same record + [component, task, error, traceback, time]

Sequence numbers grow, so the oldest pending record is the first key.
"""
import struct

import msgpack

from .codec import CodecError, decode, encode
from .record import DeadLetter, Record

SEQ = struct.Struct(">Q")


def seq_key(seq):
    return SEQ.pack(seq)


def record_row(r):
    return (r.spout, r.task, r.stream, r.values, r.msg_id, r.attempts, r.first_seen)


def record_from(seq, row):
    spout, task, stream, values, msg_id, attempts, first_seen = row[:7]
    return Record(seq, spout, task, stream, tuple(values), msg_id, attempts, first_seen)


class PendingStore:
    """The `pending` and `dead` databases: writes buffered until the log commits, reads of
    what is committed.

    `keep_pending=False` keeps dead letters only (appends and releases are ignored);
    `keep_dead=N` keeps only the N dead letters with the highest sequence numbers."""

    def __init__(self, env, keep_pending=True, keep_dead=None):
        self.env = env
        self.keep_pending = keep_pending
        self.keep_dead = keep_dead
        self.pending_db = env.database(b"pending")
        self.dead_db = env.database(b"dead")
        self._pack = msgpack.Packer(use_bin_type=True).pack  # reused: cheaper than packb per record
        self._puts = {}        # seq -> encoded record (appends and attempt updates)
        self._releases = set()
        self._letters = {}     # seq -> encoded dead letter

    # -- buffered writes ---------------------------------------------------------------------

    def append(self, record):
        """Add (or update the attempts of) a pending record. Raises CodecError naming the
        spout when its msg_id cannot be stored."""
        if not self.keep_pending:
            return
        try:
            self._puts[record.seq] = self._pack((record.spout, record.task, record.stream, record.values, record.msg_id,
                                                 record.attempts, record.first_seen))  # record_row, inlined
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"spout {record.spout!r}: msg_id {record.msg_id!r} cannot be stored "
                             f"as msgpack ({exc})") from None
        self._releases.discard(record.seq)

    def release(self, seq):
        if not self.keep_pending:
            return
        self._puts.pop(seq, None)
        self._releases.add(seq)

    def release_all(self, seqs):
        if not self.keep_pending:
            return
        if self._puts:  # else none of them was appended since the last commit
            pop = self._puts.pop
            for seq in seqs:
                pop(seq, None)
        self._releases.update(seqs)

    def dead_letter(self, letter):
        """Move the letter's record from pending to the dead letters."""
        seq = letter.record.seq
        self.release(seq)
        self._letters[seq] = encode(list(record_row(letter.record)) + [
            letter.component, letter.task, letter.error, letter.traceback, letter.time])

    @property
    def buffered(self):
        return len(self._puts) + len(self._releases) + len(self._letters)

    def write(self, txn):
        """Write the buffered changes in the log's commit transaction."""
        if self._releases:
            self._delete_released(txn)
        if self._puts:
            txn.cursor(db=self.pending_db).putmulti([(seq_key(s), v) for s, v in self._puts.items()])
        for seq, value in self._letters.items():
            txn.put(seq_key(seq), value, db=self.dead_db)
        if self._letters and self.keep_dead is not None:
            self._keep_newest_letters(txn)

    def committed(self):
        """The commit transaction succeeded: forget what it wrote."""
        self._puts, self._releases, self._letters = {}, set(), {}

    def _delete_released(self, txn):
        """One drop when the releases cover every stored record, else a cursor walking the
        released sequence numbers in order (`delete` leaves it on the next entry, so a run of
        consecutive ones costs no search). Both measured faster than a delete per key."""
        db, released = self.pending_db, self._releases
        stored = txn.stat(db)["entries"]  # O(1): the count the transaction already holds
        if not stored:
            return
        if len(released) >= stored and _covers(txn.cursor(db=db), released):
            txn.drop(db, delete=False)
            return
        cursor = txn.cursor(db=db)
        for seq in sorted(released):
            key = seq_key(seq)
            if cursor.key() == key or cursor.set_key(key):
                cursor.delete()

    def _keep_newest_letters(self, txn):
        extra = txn.stat(self.dead_db)["entries"] - self.keep_dead
        cursor = txn.cursor(db=self.dead_db)
        while extra > 0 and cursor.first():
            cursor.delete()
            extra -= 1

    # -- reading (what is committed) ---------------------------------------------------------

    def count(self):
        with self.env.reading() as txn:
            return txn.stat(self.pending_db)["entries"]

    def dead_count(self):
        with self.env.reading() as txn:
            return txn.stat(self.dead_db)["entries"]

    def iter(self, chunk=10000):
        """Every pending record, oldest first, read in short transactions of `chunk`."""
        after = None
        while True:
            rows = self._rows_after(after, chunk)
            if not rows:
                return
            for key, value in rows:
                yield record_from(SEQ.unpack(key)[0], decode(value))
            after = SEQ.unpack(rows[-1][0])[0]

    def _rows_after(self, after, chunk):
        rows = []
        with self.env.reading() as txn:
            cursor = txn.cursor(db=self.pending_db)
            found = cursor.set_range(seq_key(after + 1)) if after is not None else cursor.first()
            while found and len(rows) < chunk:
                rows.append((cursor.key(), cursor.value()))
                found = cursor.next()
        return rows

    def oldest(self):
        with self.env.reading() as txn:
            cursor = txn.cursor(db=self.pending_db)
            if not cursor.first():
                return None
            return record_from(SEQ.unpack(cursor.key())[0], decode(cursor.value()))

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

    def requeue(self, seq=None):
        """Move dead letters (all, or the one of `seq`) back to pending with attempts 0; how many."""
        letters = self.dead_letters(seq)
        for letter in letters:
            letter.record.attempts = 0
            self._letters.pop(letter.record.seq, None)

        def fill(txn):
            for letter in letters:
                key = seq_key(letter.record.seq)
                txn.delete(key, db=self.dead_db)
                txn.put(key, encode(record_row(letter.record)), db=self.pending_db)

        self.env.write(fill)
        return len(letters)

    def purge(self, seq=None):
        """Delete dead letters (all, or the one of `seq`); how many."""
        letters = self.dead_letters(seq)

        def fill(txn):
            for letter in letters:
                txn.delete(seq_key(letter.record.seq), db=self.dead_db)

        self.env.write(fill)
        return len(letters)


def _covers(cursor, released):
    """Whether every key of the cursor's database is in `released` (which holds at least as
    many sequence numbers as the database has entries, so this is "the database would be
    empty"). A run of consecutive sequence numbers, the usual case, is checked at both ends
    only; anything else key by key, stopping at the first one kept."""
    cursor.last()
    last = SEQ.unpack(cursor.key())[0]
    cursor.first()
    first = SEQ.unpack(cursor.key())[0]
    low, high = min(released), max(released)
    if high - low + 1 == len(released):
        return low <= first and last <= high
    unpack = SEQ.unpack
    return all(unpack(key)[0] in released for key in cursor.iternext(values=False))
