"""Run metadata and spout positions.

    positions    "spout/task" -> the spout task's position
    meta         name, fingerprint, shape, format -> the topology the state directory belongs to
                 next_root -> the next sequence number to hand out
                 finished, "output:<name>", ... -> entries the runtime and the outputs keep
"""
import json

from .codec import CodecError, decode, encode
from .errors import TopologyMismatch

FORMAT = 3      # 3: batches with runs, 2: pending records in batches (pending.py); 1 and 2 are read and upgraded
READS = (1, 2, 3)
NEXT_SEQ = b"next_root"  # the key of the first version, kept so that its state directories open


class MetaStore:
    """The `positions` and `meta` databases: writes buffered until the log commits (except
    `record_now`), reads of what is committed."""

    def __init__(self, env):
        self.env = env
        self.positions_db = env.database(b"positions")
        self.db = env.database(b"meta")
        self._positions = {}  # (spout, task) -> position
        self._values = {}     # name -> value
        self.next_seq = self._get(NEXT_SEQ) or 1

    def new_seq(self):
        """The next sequence number; stored with the next commit."""
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    def new_seqs(self, n):
        """The first of the next `n` sequence numbers."""
        seq = self.next_seq
        self.next_seq = seq + n
        return seq

    # -- buffered writes ---------------------------------------------------------------------

    def put(self, name, value):
        self._values[name] = value

    def position(self, spout, task, position):
        """Raises CodecError naming the spout when `position` cannot be stored."""
        if position.__class__ is not int:
            try:
                encode(position)
            except (TypeError, ValueError, OverflowError) as exc:
                raise CodecError(f"spout {spout!r}: position {position!r} cannot be stored as msgpack "
                                 f"({exc})") from None
        self._positions[spout, task] = position

    @property
    def buffered(self):
        return len(self._positions) + len(self._values)

    def write(self, txn):
        """Write the buffered entries, and the next sequence number, in the log's commit."""
        for (spout, task), position in self._positions.items():
            txn.put(f"{spout}/{task}".encode(), encode(position), db=self.positions_db)
        for name, value in self._values.items():
            txn.put(name.encode(), encode(value), db=self.db)
        txn.put(NEXT_SEQ, encode(self.next_seq), db=self.db)

    def committed(self):
        self._positions, self._values = {}, {}

    def record_now(self, **values):
        """Write meta entries in a transaction of their own, at once."""
        def fill(txn):
            for name, value in values.items():
                txn.put(name.encode(), encode(value), db=self.db)
        self.env.write(fill)

    # -- reading (what is committed) ---------------------------------------------------------

    def get(self, name):
        return self._get(name.encode())

    def _get(self, key):
        with self.env.reading() as txn:
            value = txn.get(key, db=self.db)
        return None if value is None else decode(value)

    def items(self, prefix):
        """{name: value} of the entries whose name starts with `prefix`."""
        start = prefix.encode()
        with self.env.reading() as txn:
            return {key.decode(): decode(value) for key, value in txn.cursor(db=self.db)
                    if key.startswith(start)}

    def get_position(self, spout, task):
        with self.env.reading() as txn:
            value = txn.get(f"{spout}/{task}".encode(), db=self.positions_db)
        return None if value is None else decode(value)

    def positions(self):
        """{"spout/task": position} of every spout task that stored one."""
        with self.env.reading() as txn:
            return {k.decode(): decode(v) for k, v in txn.cursor(db=self.positions_db)}


def check_topology(get, record, held, place, name, fingerprint, shape):
    """Refuse another topology, or a changed shape while records are pending or state is kept;
    record the topology on a new log. Returns the stored shape when it changed (the caller
    logs it), else None.

    `get(name)` reads a meta entry, `record(**entries)` writes meta entries at once, `held()`
    returns (pending records, state rows), `place` names the log in messages."""
    stored = get("name")
    if stored is None:
        record(name=name, fingerprint=fingerprint, shape=shape, format=FORMAT)
        return None
    if stored != name:
        raise TopologyMismatch(f"{place} belongs to topology {stored!r}, not {name!r}; "
                               "give this topology its own --state-dir")
    if get("format") not in READS:
        raise TopologyMismatch(f"{place} has log format {get('format')!r}; this version reads "
                               f"{' and '.join(map(str, READS))}")
    if get("format") != FORMAT:  # a version that reads only the older format must refuse it from now on
        record(format=FORMAT)
    if get("fingerprint") == fingerprint:
        return None
    old = get("shape") or {}
    pending, kept = held()
    if pending or kept:
        raise TopologyMismatch(
            f"topology {name!r} changed since its {place} was written, and {_held(pending, kept)} "
            f"there; the change: {describe_change(old, shape)}. Run the previous version until "
            "nothing is pending (consecution status), or start this one on a new --state-dir")
    record(fingerprint=fingerprint, shape=shape)
    return old


def _held(pending, kept):
    return " and ".join(part for part in (
        f"{pending} records are pending" if pending else "",
        f"stateful bolts keep {kept} state entries" if kept else "") if part)


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
