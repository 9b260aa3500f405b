"""Output: read a named output of another topology (`Topology.output`), exactly once.

The producing topology appends each output tuple to an outbox in its state directory, in the
transaction that completes the trees that made it, under a sequence number (1, 2, 3...). This
spout reads the outbox in order and emits each entry once; its position is the sequence number
of the last entry it emitted (and the outbox's id), stored in this topology's own log with the
records it emitted.
A restart seeks there: each entry enters the consuming topology's log exactly once, across
crashes of either side (reliability "replay" with a state directory, as under `consecution
run`). After each commit of its own log the spout registers how far it got in
`<producer state dir>/consumers/<output>/<topology>.<spout>.json`; the producer trims what
every registered consumer has passed.

When the producer is a finite run that completed, its outputs are *closed*: the spout is
exhausted once it has emitted the last entry (the consuming run can finish). Until then it
waits for more, polling every `poll` seconds; it may start before the producer has ever run.

Declaring the spout does no I/O (a module may declare the producer and the consumer both: the
producer's run never opens its own log through the consumer's spout). The output's fields are
read when the consuming topology is validated (`resolve_fields`): a run of a consumer without
`fields=` waits there until the producer's log declares the output (`output.waiting`).

The producer and the consumer must run in separate processes (as two `consecution run`
commands do): LMDB allows one open environment per file per process.
"""
import collections
import os
import time

import lmdb

from consecution.runtime.logs import logger
from consecution.storage import DurableLog, StorageError, register_consumer
from consecution.topology import ComponentError, FieldsNotKnown, Spout

from .files import SourceError

__all__ = ["Output"]

REGISTER_EVERY = 0.5  # seconds between two updates of the consumer's registration
UNREADABLE_GRACE = 1.0  # seconds a producer's log may fail to open before resolve_fields says so


class Output(Spout):
    """The entries of output `name` of the topology whose state directory is `state_dir`.

    `fields`: the output's fields. Without them, they are read from the producer's state
    directory when the consuming topology is validated (`resolve_fields`, which every run does
    first); until the producer has declared the output, `consecution run` waits for it. Given,
    they are checked there against the producer's (a `ComponentError` naming both when they
    differ), and a run does not wait. `batch`: entries read from the outbox at a time; one is
    emitted per call, so `max_pending` bounds what is in flight.

    Entries trimmed before this consumer ever registered (a new consumer of an output whose
    other consumers have moved on, or one whose registration file was deleted) cannot be read:
    the spout raises `SourceError` naming them, unless `skip_trimmed=True`, which logs a
    warning (`output.skipped`) and starts after them.

    Each outbox has an id, kept with the position. If the producer's state directory is
    deleted and its topology runs again, its new outbox numbers from 1 again under another id:
    the spout raises `SourceError` rather than skip or mix entries, unless `follow_reset=True`,
    which logs `output.reset` and reads the new outbox from its start.

    The hand-off is exactly once when this topology runs with reliability "replay" (the
    default) and a state directory. With "track", entries in flight at a crash are not read
    again. Without a state directory, or with "confirm" or "none", no position is kept: each
    run reads the outbox from its start, and the spout does not register (warning
    `output.position_not_kept`), so the producer never trims for it.
    """

    def __init__(self, state_dir, name, fields=None, poll=0.05, batch=512, skip_trimmed=False,
                 follow_reset=False):
        self.state_dir = os.path.abspath(state_dir)
        self.name = name
        self.poll = poll
        self.batch = batch
        self.skip_trimmed = skip_trimmed
        self.follow_reset = follow_reset
        self.given = tuple(fields) if fields is not None else None
        self.fields = self.given  # None until resolve_fields() found them

    def resolve_fields(self):
        """The output's fields, from one look at the producer's log (called by
        `Topology.validate`; no waiting here).

        Without `fields=`: the producer's, or `FieldsNotKnown` (event `output.waiting`, with
        the state directory, the output, the producer's topology and the outputs it declares)
        while its log does not declare the output: it has not run there yet, or its topology
        has no output of that name (a typo, or a version not deployed yet); None when the
        producer's stream declares no fields (a plain function's: its entries' fields are
        undeclared here too, a one-value entry is named `value`). With `fields=`: those, and a
        `ComponentError` naming both if the producer declares others. A log that
        cannot be opened for `UNREADABLE_GRACE` seconds is a `ComponentError` without `fields=`;
        with them, the run says so (`output.unreadable`) and keeps trying."""
        try:
            producer, declared = self._look()
        except StorageError as exc:
            if self.given is not None:
                return self.given
            raise ComponentError(f"{self!r}: {exc}") from None
        if self.name not in declared:
            if self.given is not None:
                return self.given
            raise self._not_declared(producer, declared)
        stored = declared[self.name]["fields"]
        if stored is None:  # the producer's stream declares no fields: entries are positional
            return self.given
        stored = tuple(stored)
        if self.given is not None and self.given != stored:
            raise ComponentError(f"{self!r}: fields {self.given!r} differ from the output's {stored!r}")
        self.fields = stored
        return stored

    def _not_declared(self, producer, declared):
        if producer is None:
            why = f"the producer has not run in {self.state_dir} yet"
        else:
            why = (f"the topology whose state is there ({producer!r}) declares no output {self.name!r} "
                   f"(it has: {', '.join(sorted(declared)) or 'none'})")
        return FieldsNotKnown(f"{self!r}: {why}, so the output's fields are not known yet", "output.waiting",
                              state_dir=self.state_dir, output=self.name, producer=producer,
                              outputs=sorted(declared))

    def _look(self):
        """(the producer's topology name, or None if it never ran there; {output: info} of the
        outputs its log declares). A log that fails to open is looked at again for
        UNREADABLE_GRACE seconds: a producer may be creating it at this moment."""
        deadline = time.monotonic() + UNREADABLE_GRACE
        while True:
            try:
                return self._read_declared()
            except StorageError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def _read_declared(self):
        if not os.path.exists(os.path.join(self.state_dir, "log", "data.mdb")):
            return None, {}
        log = _open_readonly(self.state_dir)
        try:
            return log.get_meta("name"), log.outputs()
        finally:
            log.close()

    def open(self, context):
        self.consumer = f"{context.topology}.{context.component}"
        # a consumer whose position is not kept does not register: the producer must not trim
        # for a reader that starts from the beginning at each run
        self.keeps_position = context.state_dir is not None and context.reliability in ("replay", "track")
        if not self.keeps_position:
            logger().warning("output.position_not_kept", output=self.name, consumer=self.consumer,
                             reason="reliability 'replay' or 'track' with a state directory keeps it; "
                                    "this run reads the outbox from its start and does not register")
        self.log = None
        self.unreadable = None  # the error the producer's log gave, once logged
        self.source = None     # the id of the outbox read (a recreated outbox has another)
        self.last = self.committed = 0
        self.reported = (None, 0)
        self.buffer = collections.deque()  # (seq, values) read and not yet emitted
        self.registered = None
        self.next_look = 0.0
        self.next_register = 0.0

    def seek(self, position):
        """The position is [outbox id, last seq emitted]."""
        if isinstance(position, list) and len(position) == 2:
            self.source, self.last = position
            self.committed = self.last
            self.reported = (self.source, self.last)

    def position(self):
        now = (self.source, self.last)
        if now == self.reported:
            return None  # unchanged: nothing to store
        self.reported = now
        return list(now)

    def _open_log(self):
        if self.log is None:
            if not os.path.exists(os.path.join(self.state_dir, "log", "data.mdb")):
                return None
            try:
                self.log = _open_readonly(self.state_dir)
            except StorageError as exc:  # e.g. no permission: say so, and try again at the next poll
                if str(exc) != self.unreadable:
                    self.unreadable = str(exc)
                    logger().warning("output.unreadable", output=self.name, consumer=self.consumer,
                                     state_dir=self.state_dir, error=str(exc))
                return None
        return self.log

    def next_tuple(self):
        """One entry per call, so the runtime's `max_pending` bounds what is in flight; entries
        are read `batch` at a time."""
        if not self.buffer:
            now = time.monotonic()
            if now < self.next_look or not self._read(now):
                return
        seq, values = self.buffer.popleft()
        self.emit(values, msg_id=seq)
        self.last = seq

    def _read(self, now):
        """Fill the buffer with the entries after our position; False if there are none yet.
        Raises StopIteration at the end of a closed output."""
        log = self._open_log()
        info = log.output_info(self.name) if log is not None else None
        if info is None:  # the producer has not run yet
            self.next_look = now + self.poll
            return False
        if info["id"] != self.source:
            if self.source is not None:
                self._recreated()
            self.source = info["id"]
        if self.registered is None:  # register at once, so the producer keeps what we have not read
            self._register(self.last)
        entries = log.read_outbox(self.name, self.last, self.batch)
        if entries and entries[0][0] == self.last + 1:
            self.buffer.extend(entries)
            return True
        if info["trimmed"] > self.last:
            self._trimmed(info["trimmed"])
            return False
        if info["closed"] and self.last >= info["next"] - 1:
            raise StopIteration
        self.next_look = now + self.poll
        return False

    def _recreated(self):
        """The outbox has another id than the one we read: the producer's state directory was
        deleted and its topology ran again, numbering from 1."""
        where = (f"Output({self.state_dir!r}, {self.name!r}): the outbox was recreated (the producer's state "
                 f"directory was reset) after consumer {self.consumer!r} had read it up to entry {self.last}")
        if not self.follow_reset:
            raise SourceError(f"{where}; pass follow_reset=True to read the new outbox from its start")
        logger().warning("output.reset", output=self.name, consumer=self.consumer, read_before=self.last,
                         state_dir=self.state_dir)
        self.last = self.committed = 0
        self.registered = None

    def _trimmed(self, upto):
        """Entries after our position up to `upto` are gone from the outbox."""
        where = (f"Output({self.state_dir!r}, {self.name!r}): entries {self.last + 1} to {upto} were trimmed "
                 f"before consumer {self.consumer!r} registered")
        if not self.skip_trimmed:
            raise SourceError(f"{where}; they cannot be read. Pass skip_trimmed=True to start after them")
        logger().warning("output.skipped", output=self.name, consumer=self.consumer, first=self.last + 1,
                         last=upto, state_dir=self.state_dir)
        self.last = upto

    def logged(self, msg_ids):
        """Our log committed these entries: tell the producer, now and then."""
        self.committed = max(self.committed, max(msg_ids))
        if time.monotonic() >= self.next_register:
            self._register(self.committed)

    def _register(self, position):
        if not self.keeps_position:
            self.registered = position
            return
        register_consumer(self.state_dir, self.name, self.consumer, position, self.source)
        self.registered = position
        self.next_register = time.monotonic() + REGISTER_EVERY

    def close(self):
        log, self.log = getattr(self, "log", None), None
        if log is not None:
            log.close()
        if getattr(self, "registered", None) is not None and self.committed != self.registered:
            self._register(self.committed)  # what the last commits of the run passed

    def __repr__(self):
        return f"Output({self.state_dir!r}, {self.name!r})"


def _open_readonly(state_dir):
    """The producer's log, read-only; a `StorageError` when it cannot be opened (also while the
    producer is creating it: its databases may not exist yet)."""
    try:
        return DurableLog(state_dir, readonly=True)
    except lmdb.Error as exc:
        raise StorageError(f"cannot open the log in {os.path.join(state_dir, 'log')}: {exc}") from None
