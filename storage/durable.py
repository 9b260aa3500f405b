"""The durable replay log: one LMDB environment in the topology's state directory.

    pending      root (8 bytes, big-endian) -> [spout, task, stream, values, msg_id, attempts, first_seen]
    dead         root -> the same record + [component, task, error, traceback, time]
    positions    "spout/task" -> the spout task's position
    state        msgpack(component) + msgpack(task index) + msgpack(key) -> value (stateful bolts)
    outbox       msgpack(output name) + seq (8 bytes, big-endian) -> values (named outputs)
    meta         name, fingerprint, shape, format, next_root, finished,
                 "output:<name>" -> {fields, next, closed, trimmed, id}

Consumers of a named output register in `<state dir>/consumers/<output>/<consumer>.json`
(the position they have committed in their own log, and the id of the outbox it is in);
entries every consumer of this outbox has passed are trimmed.

Roots are sequential, so the oldest pending record is the first key. Writes are buffered and
committed together by `commit()` (the runtime decides when: by count and by time); a record
is in a committed transaction before any bolt sees it. The default durability survives
SIGKILL of the process (LMDB writes reach the OS before `commit` returns); `durability="power"`
also fsyncs every commit, to survive power loss. The map grows when full instead of failing.

Follows py-lmdb's rules: one Environment per file per process, never carried across fork,
short write transactions, no long-lived readers.
"""
import json
import os
import struct

import lmdb
import msgpack

from consecution.errors import ConsecutionError

from .codec import CodecError, decode, encode
from .log import DeadLetter, Record

FORMAT = 1
DURABILITY = ("kill", "power")
_KEY = struct.Struct(">Q")
_INITIAL_MAP = 64 << 20


class StorageError(ConsecutionError):
    """The state directory cannot be used."""


class TopologyMismatch(StorageError):
    """The state directory belongs to another topology, or to a shape that would mis-route
    its pending records."""


def _key(root):
    return _KEY.pack(root)


def _record_row(r):
    return (r.spout, r.task, r.stream, r.values, r.msg_id, r.attempts, r.first_seen)


def _record(root, row):
    spout, task, stream, values, msg_id, attempts, first_seen = row[:7]
    return Record(root, spout, task, stream, tuple(values), msg_id, attempts, first_seen)


class DurableLog:
    """Pending records, dead letters, spout positions and run metadata in LMDB."""

    durable = True

    def __init__(self, path, durability="kill", readonly=False, map_size=_INITIAL_MAP,
                 keep_pending=True, keep_dead=None):
        """`keep_pending=False` keeps dead letters and positions only (reliability "track");
        `keep_dead=N` keeps only the newest N dead letters."""
        if durability not in DURABILITY:
            raise StorageError(f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}")
        self.path = path
        self.readonly = readonly
        self.keep_pending = keep_pending
        self.keep_dead = keep_dead
        data = os.path.join(path, "log")
        if readonly and not os.path.exists(os.path.join(data, "data.mdb")):
            raise StorageError(f"{path} holds no consecution state (no {data}/data.mdb)")
        os.makedirs(data, exist_ok=True)
        sync = durability == "power"
        try:
            self.env = lmdb.open(data, map_size=map_size, max_dbs=8, subdir=True, sync=sync,
                                 metasync=sync, readonly=readonly, lock=True, readahead=False)
        except lmdb.Error as exc:
            raise StorageError(f"cannot open the log in {data}: {exc}") from None
        create = not readonly
        self._pending = self.env.open_db(b"pending", create=create)
        self._dead = self.env.open_db(b"dead", create=create)
        self._positions = self.env.open_db(b"positions", create=create)
        self._meta = self.env.open_db(b"meta", create=create)
        self._state = self._open_db(b"state", create)
        self._outbox = self._open_db(b"outbox", create)
        self._pack = msgpack.Packer(use_bin_type=True).pack  # reused: cheaper than packb per record
        self._puts = {}       # root -> encoded record (appends and attempt updates)
        self._releases = set()
        self._letters = {}    # root -> encoded dead letter
        self._moved = {}      # spout key -> encoded position
        self._states = []     # (component, task index, [key, present, value] rows)
        self._metas = {}      # meta name -> value
        self._appends = {}    # output name -> [values] to append
        self._trims = {}      # output name -> the last seq to trim
        self._outputs = {}    # output name -> its meta entry (declared outputs)
        self.next_root = self.get_meta("next_root") or 1

    def _open_db(self, name, create):
        try:
            return self.env.open_db(name, create=create)
        except lmdb.NotFoundError:  # read-only, written by a version without this database
            return None

    # -- metadata ----------------------------------------------------------------------------

    def get_meta(self, name):
        with self._reading() as txn:
            value = txn.get(name.encode(), db=self._meta)
        return None if value is None else decode(value)

    def _reading(self):
        """A read transaction. A reader in another process (the `Output` spout reads the
        producer's log) sees the map grow when the writer resizes it: adopt the new size."""
        try:
            return self.env.begin()
        except lmdb.MapResizedError:
            self.env.set_mapsize(0)
            return self.env.begin()

    def check_topology(self, name, fingerprint, shape):
        """Refuse another topology, or a changed shape while records are pending; record the
        topology on a new state directory. Returns the stored shape when it changed (the
        caller logs it), else None."""
        stored = self.get_meta("name")
        if stored is None:
            self._write_meta(name=name, fingerprint=fingerprint, shape=shape, format=FORMAT)
            return None
        if stored != name:
            raise TopologyMismatch(
                f"state directory {self.path} belongs to topology {stored!r}, not {name!r}; "
                "give this topology its own --state-dir")
        if self.get_meta("format") != FORMAT:
            raise TopologyMismatch(f"state directory {self.path} has log format "
                                   f"{self.get_meta('format')!r}; this version reads {FORMAT}")
        if self.get_meta("fingerprint") == fingerprint:
            return None
        old = self.get_meta("shape") or {}
        pending, kept = self.pending_count(), self.state_count()
        if pending or kept:
            held = " and ".join(part for part in (
                f"{pending} records are pending" if pending else "",
                f"stateful bolts keep {kept} state entries" if kept else "") if part)
            raise TopologyMismatch(
                f"topology {name!r} changed since its state directory {self.path} was written, "
                f"and {held} there; the change: {describe_change(old, shape)}. "
                "Run the previous version until nothing is pending (consecution status), or start "
                "this one on a new --state-dir")
        self._write_meta(fingerprint=fingerprint, shape=shape)
        return old

    def _write_meta(self, **values):
        self._transact(lambda txn: [txn.put(k.encode(), encode(v), db=self._meta) for k, v in values.items()])

    # -- buffered writes ---------------------------------------------------------------------

    def new_root(self):
        root = self.next_root
        self.next_root = root + 1
        return root

    def append(self, record):
        """Add (or update the attempts of) a pending record, at the next commit."""
        if not self.keep_pending:
            return
        try:
            self._puts[record.root] = self._pack(_record_row(record))
        except (TypeError, ValueError, OverflowError) as exc:
            raise CodecError(f"spout {record.spout!r}: msg_id {record.msg_id!r} cannot be stored "
                             f"as msgpack ({exc})") from None
        self._releases.discard(record.root)

    def release(self, root):
        """The record's tree is complete: remove it at the next commit."""
        if not self.keep_pending:
            return
        self._puts.pop(root, None)
        self._releases.add(root)

    def dead_letter(self, letter):
        root = letter.record.root
        if self.keep_pending:
            self._puts.pop(root, None)
            self._releases.add(root)
        self._letters[root] = encode(list(_record_row(letter.record)) + [
            letter.component, letter.task, letter.error, letter.traceback, letter.time])

    def position(self, spout, task, position):
        """Where spout task `task` of `spout` stands, stored with the tuples it emitted."""
        if position.__class__ is not int:
            try:
                encode(position)
            except (TypeError, ValueError, OverflowError) as exc:
                raise CodecError(f"spout {spout!r}: position {position!r} cannot be stored as msgpack "
                                 f"({exc})") from None
        self._moved[spout, task] = position

    def put_meta(self, name, value):
        """Set a run metadata entry at the next commit."""
        self._metas[name] = value

    # -- named outputs -----------------------------------------------------------------------

    def declare_outputs(self, fields_by_name):
        """The producing topology's outputs: {name: fields or None}. Their entries are kept."""
        for name, fields in fields_by_name.items():
            info = self.get_meta(f"output:{name}") or {"next": 1, "closed": False, "trimmed": 0,
                                                        "id": os.urandom(8).hex()}
            info["fields"] = list(fields) if fields is not None else None
            self._outputs[name] = info
            self._metas[f"output:{name}"] = info

    def put_outbox(self, name, rows):
        """Values to append to output `name` at the next commit (with the trees that made them)."""
        if rows:
            self._appends.setdefault(name, []).extend(rows)

    def close_outputs(self, closed=True):
        """Mark every declared output closed (a finite run completed) or open again."""
        for name, info in self._outputs.items():
            if info["closed"] != closed:
                info["closed"] = closed
                self._metas[f"output:{name}"] = info

    def trim_outbox(self, name, upto):
        """Delete the entries of output `name` up to seq `upto` at the next commit."""
        info = self._outputs[name]
        if upto > info["trimmed"]:
            self._trims[name] = min(upto, info["next"] - 1)

    def output_info(self, name):
        """{fields, next, closed, trimmed, id} of output `name`, or None if it was never declared."""
        return self.get_meta(f"output:{name}")

    def read_outbox(self, name, after, limit):
        """Up to `limit` (seq, values) of output `name` after seq `after`, oldest first."""
        if self._outbox is None:
            return []
        prefix = encode(name)
        out = []
        with self._reading() as txn:
            cursor = txn.cursor(db=self._outbox)
            found = cursor.set_range(prefix + _KEY.pack(after + 1))
            while found and len(out) < limit:
                key = cursor.key()
                if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                    break
                out.append((_KEY.unpack(key[len(prefix):])[0], tuple(decode(cursor.value()))))
                found = cursor.next()
        return out

    def clear_stale_readers(self):
        """Free the reader slots of processes that died (a killed consumer's `Output` spout):
        a stale slot would keep old pages from being reused and the file would grow."""
        self.env.reader_check()

    def consumers(self, name):
        """{consumer: position} of the consumers registered for output `name` (this outbox, not
        one an earlier state directory at this path held)."""
        info = self._outputs.get(name) or self.output_info(name) or {}
        return consumer_positions(self.path, name, info.get("id"))

    def outputs(self):
        """{name: {fields, next, closed, trimmed, id, length}} of every output this log holds."""
        out = {}
        with self._reading() as txn:
            for key, value in txn.cursor(db=self._meta):
                if key.startswith(b"output:"):
                    info = decode(value)
                    info["length"] = info["next"] - 1 - info["trimmed"]
                    out[key[7:].decode()] = info
        return out

    def put_state(self, component, task, rows):
        """A stateful task's changes since its last checkpoint (`State.changes()` rows),
        written at the next commit, with the releases of the trees that made them."""
        if rows:
            self._states.append((component, task, rows))

    @property
    def buffered(self):
        return (len(self._puts) + len(self._releases) + len(self._letters) + len(self._moved) + len(self._states)
                + len(self._metas) + len(self._appends) + len(self._trims))

    def commit(self):
        """Write everything buffered in one transaction."""
        if not self.buffered:
            return
        puts, releases, letters, moved = self._puts, self._releases, self._letters, self._moved
        states, metas, appends, trims = self._states, self._metas, self._appends, self._trims
        for name, rows in appends.items():  # sequence numbers, and the output's meta entry
            info = self._outputs[name]
            first = info["next"]
            info["next"] = first + len(rows)
            metas[f"output:{name}"] = info
            appends[name] = (first, rows)
        for name, upto in trims.items():
            info = self._outputs[name]
            trims[name] = range(info["trimmed"] + 1, upto + 1)
            info["trimmed"] = upto
            metas[f"output:{name}"] = info

        def write(txn):
            pending, dead = self._pending, self._dead
            for root in releases:
                txn.delete(_key(root), db=pending)
            if puts:
                txn.cursor(db=pending).putmulti([(_key(r), v) for r, v in puts.items()])
            for root, value in letters.items():
                txn.put(_key(root), value, db=dead)
            for (spout, task), position in moved.items():
                txn.put(f"{spout}/{task}".encode(), encode(position), db=self._positions)
            for component, task, rows in states:
                prefix = _state_prefix(component, task)
                for key, present, value in rows:
                    k = prefix + _state_key(component, key)
                    if present:
                        txn.put(k, _state_value(component, key, value), db=self._state)
                    else:
                        txn.delete(k, db=self._state)
            for name, (first, rows) in appends.items():
                prefix = encode(name)
                txn.cursor(db=self._outbox).putmulti(
                    [(prefix + _KEY.pack(first + i), encode(list(values))) for i, values in enumerate(rows)])
            for name, seqs in trims.items():
                prefix = encode(name)
                for seq in seqs:
                    txn.delete(prefix + _KEY.pack(seq), db=self._outbox)
            for name, value in metas.items():
                txn.put(name.encode(), encode(value), db=self._meta)
            txn.put(b"next_root", encode(self.next_root), db=self._meta)
            if letters and self.keep_dead is not None:
                extra = txn.stat(dead)["entries"] - self.keep_dead
                cursor = txn.cursor(db=dead)
                while extra > 0 and cursor.first():
                    cursor.delete()
                    extra -= 1

        self._transact(write)
        self._puts, self._releases, self._letters, self._moved, self._states = {}, set(), {}, {}, []
        self._metas, self._appends, self._trims = {}, {}, {}

    flush = commit

    def _transact(self, write):
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    write(txn)
                return
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    # -- reading -----------------------------------------------------------------------------

    def pending_count(self):
        with self.env.begin() as txn:
            return txn.stat(self._pending)["entries"]

    def dead_count(self):
        with self.env.begin() as txn:
            return txn.stat(self._dead)["entries"]

    def __len__(self):
        return self.pending_count()

    def iter_pending(self, chunk=10000):
        """Every pending record, oldest first, read in short transactions of `chunk`."""
        after = None
        while True:
            rows = []
            with self.env.begin() as txn:
                cursor = txn.cursor(db=self._pending)
                found = cursor.set_range(_key(after + 1)) if after is not None else cursor.first()
                while found and len(rows) < chunk:
                    rows.append((cursor.key(), cursor.value()))
                    found = cursor.next()
            if not rows:
                return
            for key, value in rows:
                yield _record(_KEY.unpack(key)[0], decode(value))
            after = _KEY.unpack(rows[-1][0])[0]

    def pending(self):
        return list(self.iter_pending())

    def oldest_pending(self):
        with self.env.begin() as txn:
            cursor = txn.cursor(db=self._pending)
            if not cursor.first():
                return None
            return _record(_KEY.unpack(cursor.key())[0], decode(cursor.value()))

    def state_count(self):
        if self._state is None:
            return 0
        with self.env.begin() as txn:
            return txn.stat(self._state)["entries"]

    def load_state(self, component, task):
        """The checkpointed state of one task of a stateful bolt, as a dict."""
        prefix = _state_prefix(component, task)
        out = {}
        if self._state is None:
            return out
        with self.env.begin() as txn:
            cursor = txn.cursor(db=self._state)
            found = cursor.set_range(prefix)
            while found and cursor.key().startswith(prefix):
                key = msgpack.unpackb(cursor.key()[len(prefix):], use_list=False, raw=False)
                out[key] = decode(cursor.value())
                found = cursor.next()
        return out

    def states(self):
        """{(component, task index): entries} for every task that keeps state."""
        counts = {}
        if self._state is None:
            return counts
        with self.env.begin() as txn:
            for k in txn.cursor(db=self._state).iternext(values=False):
                unpacker = msgpack.Unpacker(raw=False)
                unpacker.feed(k)
                where = (next(unpacker), next(unpacker))
                counts[where] = counts.get(where, 0) + 1
        return counts

    def positions(self):
        with self.env.begin() as txn:
            return {k.decode(): decode(v) for k, v in txn.cursor(db=self._positions)}

    def get_position(self, spout, task):
        with self.env.begin() as txn:
            value = txn.get(f"{spout}/{task}".encode(), db=self._positions)
        return None if value is None else decode(value)

    def dead_letters(self, root=None):
        with self.env.begin() as txn:
            if root is not None:
                value = txn.get(_key(root), db=self._dead)
                rows = [] if value is None else [(_key(root), value)]
            else:
                rows = list(txn.cursor(db=self._dead))
        out = []
        for key, value in rows:
            row = decode(value)
            record = _record(_KEY.unpack(key)[0], row)
            out.append(DeadLetter(record, *row[7:12]))
        return out

    # -- commands ----------------------------------------------------------------------------

    def requeue(self, root=None):
        """Move dead letters (all, or one root) back to pending with a fresh attempt count."""
        letters = self.dead_letters(root)
        for letter in letters:
            letter.record.attempts = 0
            self._letters.pop(letter.record.root, None)

        def write(txn):
            for letter in letters:
                key = _key(letter.record.root)
                txn.delete(key, db=self._dead)
                txn.put(key, encode(_record_row(letter.record)), db=self._pending)

        self._transact(write)
        return len(letters)

    def purge(self, root=None):
        """Delete dead letters (all, or one root)."""
        letters = self.dead_letters(root)

        def write(txn):
            for letter in letters:
                txn.delete(_key(letter.record.root), db=self._dead)

        self._transact(write)
        return len(letters)

    def close(self):
        if not self.readonly:
            self.commit()
        self.env.close()


def _consumer_dir(state_dir, output):
    return os.path.join(state_dir, "consumers", output)


def register_consumer(state_dir, output, consumer, position, outbox=None):
    """Record (atomically) that `consumer` has committed output `output` up to `position`: the
    producer may trim what every registered consumer has passed. `outbox`: the id of the
    outbox read (its meta entry's "id"), so that a recreated outbox ignores old registrations."""
    folder = _consumer_dir(state_dir, output)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{consumer}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"position": position, "outbox": outbox}, f)
    os.replace(path + ".tmp", path)


def consumer_positions(state_dir, output, outbox=None):
    """{consumer: position} of the consumers registered for `output` in `state_dir`; with
    `outbox`, only those that registered a position in that outbox."""
    folder = _consumer_dir(state_dir, output)
    out = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return out
    for filename in names:
        if filename.endswith(".json"):
            try:
                with open(os.path.join(folder, filename)) as f:
                    entry = json.load(f)
                position = entry["position"]
            except (OSError, ValueError, KeyError):
                continue  # being replaced right now: read again at the next trim
            if outbox is None or entry.get("outbox") == outbox:
                out[filename[:-5]] = position
    return out


def _state_prefix(component, task):
    # msgpack values carry their own length, so no component's prefix is a prefix of another's
    return encode(component) + encode(task)


def _state_key(component, key):
    try:
        return encode(key)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"stateful bolt {component!r}: state key {key!r} cannot be stored ({exc})") from None


def _state_value(component, key, value):
    try:
        return encode(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"stateful bolt {component!r}: state[{key!r}] cannot be stored ({exc})") from None


def describe_change(old, new):
    """What differs between two topology shapes, in words."""
    changes = []
    oc, nc = old.get("components", {}), new.get("components", {})
    for name in sorted(set(oc) - set(nc)):
        changes.append(f"component {name!r} removed")
    for name in sorted(set(nc) - set(oc)):
        changes.append(f"component {name!r} added")
    for name in sorted(set(oc) & set(nc)):
        for key in ("kind", "streams", "inputs", "parallelism"):
            if oc[name].get(key) != nc[name].get(key):
                changes.append(f"{name!r} {key}: {json.dumps(oc[name].get(key))} -> {json.dumps(nc[name].get(key))}")
    return "; ".join(changes) or "the fingerprint differs"
