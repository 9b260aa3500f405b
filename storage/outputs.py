"""Named outputs: the entries a producing topology keeps for consumers in other runs.

    outbox       msgpack(output name) + seq (8 bytes, big-endian) -> msgpack(values)
    meta         "output:<name>" -> {fields, next, closed, trimmed, id}

An output's entries are numbered 1, 2, ... by their own sequence; `next` is the number the
next entry gets, `trimmed` the last one deleted, `id` tells a recreated output from an
earlier one at the same path. Consumers register in
`<state dir>/consumers/<output>/<consumer>.json` (the position they have committed in their
own log, and the id of the output they read); entries every registered consumer has passed
may be trimmed.
"""
import json
import os
import struct

from .codec import decode, encode

SEQ = struct.Struct(">Q")
PREFIX = "output:"


def new_output_info():
    return {"next": 1, "closed": False, "trimmed": 0, "id": os.urandom(8).hex()}


class OutputStore:
    """The `outbox` database and the outputs' meta entries (kept through `meta`, a MetaStore):
    appends and trims buffered until the log commits, reads of what is committed."""

    def __init__(self, env, meta, state_dir):
        self.env = env
        self.meta = meta
        self.state_dir = state_dir
        self.db = env.database(b"outbox", optional=True)
        self._declared = {}  # output name -> its meta entry
        self._appends = {}   # output name -> [values] to append
        self._trims = {}     # output name -> the last seq to trim

    def declare(self, fields_by_name):
        """{name: fields or None}: the outputs this run writes. An output declared before keeps
        its entries, sequence and id."""
        for name, fields in fields_by_name.items():
            info = self.meta.get(PREFIX + name) or new_output_info()
            info["fields"] = list(fields) if fields is not None else None
            self._declared[name] = info
            self.meta.put(PREFIX + name, info)

    def append(self, name, rows):
        """Entries to append to declared output `name` (a KeyError at commit if undeclared)."""
        if rows:
            self._appends.setdefault(name, []).extend(rows)

    def close(self, closed=True):
        """Mark every declared output closed (a finite run completed) or open again."""
        for name, info in self._declared.items():
            if info["closed"] != closed:
                info["closed"] = closed
                self.meta.put(PREFIX + name, info)

    def trim(self, name, upto):
        """Delete the entries of declared output `name` up to seq `upto` (no further than the
        last committed one)."""
        info = self._declared[name]
        if upto > info["trimmed"]:
            self._trims[name] = min(upto, info["next"] - 1)

    @property
    def buffered(self):
        return len(self._appends) + len(self._trims)

    def number(self):
        """Before the commit transaction: give the buffered entries their sequence numbers and
        advance each output's meta entry (`meta` writes it in the same transaction)."""
        for name, rows in self._appends.items():
            info = self._declared[name]
            first = info["next"]
            info["next"] = first + len(rows)
            self.meta.put(PREFIX + name, info)
            self._appends[name] = (first, rows)
        for name, upto in self._trims.items():
            info = self._declared[name]
            self._trims[name] = range(info["trimmed"] + 1, upto + 1)
            info["trimmed"] = upto
            self.meta.put(PREFIX + name, info)

    def write(self, txn):
        """Write the numbered entries and delete the trimmed ones, in the log's commit."""
        for name, (first, rows) in self._appends.items():
            prefix = encode(name)
            txn.cursor(db=self.db).putmulti(
                [(prefix + SEQ.pack(first + i), encode(list(values))) for i, values in enumerate(rows)])
        for name, seqs in self._trims.items():
            prefix = encode(name)
            for seq in seqs:
                txn.delete(prefix + SEQ.pack(seq), db=self.db)

    def committed(self):
        self._appends, self._trims = {}, {}

    # -- reading (what is committed) ---------------------------------------------------------

    def info(self, name):
        """{fields, next, closed, trimmed, id} of output `name`, or None if never declared."""
        return self.meta.get(PREFIX + name)

    def all(self):
        """{name: {fields, next, closed, trimmed, id, length}} of every output kept here."""
        out = {}
        for key, info in self.meta.items(PREFIX).items():
            info["length"] = info["next"] - 1 - info["trimmed"]
            out[key[len(PREFIX):]] = info
        return out

    def read(self, name, after, limit):
        """Up to `limit` (seq, values) of output `name` after seq `after`, oldest first."""
        if self.db is None:
            return []
        prefix = encode(name)
        out = []
        with self.env.reading() as txn:
            cursor = txn.cursor(db=self.db)
            found = cursor.set_range(prefix + SEQ.pack(after + 1))
            while found and len(out) < limit:
                key = cursor.key()
                if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                    break
                out.append((SEQ.unpack(key[len(prefix):])[0], tuple(decode(cursor.value()))))
                found = cursor.next()
        return out

    def consumers(self, name):
        """{consumer: position} of the consumers registered for output `name` (this output, not
        one an earlier state directory at this path held)."""
        info = self._declared.get(name) or self.info(name) or {}
        return consumer_positions(self.state_dir, name, info.get("id"))


# -- consumer registrations: files, so a consumer needs no write access to the producer's log --

def _consumer_dir(state_dir, output):
    return os.path.join(state_dir, "consumers", output)


def register_consumer(state_dir, output, consumer, position, outbox=None):
    """Record (atomically) that `consumer` has committed output `output` up to `position`: the
    producer may trim what every registered consumer has passed. `outbox`: the id of the
    output read (its meta entry's "id"), so that a recreated output ignores old registrations."""
    folder = _consumer_dir(state_dir, output)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{consumer}.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"position": position, "outbox": outbox}, f)
    os.replace(path + ".tmp", path)


def consumer_positions(state_dir, output, outbox=None):
    """{consumer: position} of the consumers registered for `output` in `state_dir`; with
    `outbox` (an output's id), only those that registered a position in that output."""
    folder = _consumer_dir(state_dir, output)
    out = {}
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return out
    for filename in names:
        if filename.endswith(".json"):
            entry = _registration(os.path.join(folder, filename))
            if entry is not None and (outbox is None or entry[1] == outbox):
                out[filename[:-5]] = entry[0]
    return out


def _registration(path):
    """(position, output id) of a registration file, or None while it is being replaced (it
    is read again at the next trim)."""
    try:
        with open(path) as f:
            entry = json.load(f)
        return entry["position"], entry.get("outbox")
    except (OSError, ValueError, KeyError):
        return None
