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

The producer and the consumer must run in separate processes (as two `consecution run`
commands do): LMDB allows one open environment per file per process.
"""
import collections
import os
import time

from consecution.runtime.logs import logger
from consecution.storage import DurableLog, StorageError, register_consumer
from consecution.topology import ComponentError, Spout

from .files import SourceError

__all__ = ["Output"]

REGISTER_EVERY = 0.5  # seconds between two updates of the consumer's registration


class Output(Spout):
    """The entries of output `name` of the topology whose state directory is `state_dir`.

    `fields`: the output's fields; by default read from the producer's state directory, so give
    them when the consumer is built before the producer has ever run. `batch`: entries read from
    the outbox at a time; one is emitted per call, so `max_pending` bounds what is in flight.

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
        try:
            stored, declared = self._stored_fields()
        except StorageError as exc:  # with fields, the run says so and keeps trying
            if fields is None:
                raise ComponentError(f"Output({state_dir!r}, {name!r}): {exc}") from None
            stored, declared = False, None
        if fields is None and stored is False:
            if declared is not None:
                raise ComponentError(
                    f"Output({state_dir!r}, {name!r}): the topology whose state is there declares no output "
                    f"{name!r} (it has: {', '.join(sorted(declared)) or 'none'}); if a new version of it will "
                    "declare it, give the fields: Output(state_dir, name, fields=(...))")
            raise ComponentError(
                f"Output({state_dir!r}, {name!r}): the producer has not run there yet, so the output's "
                "fields are unknown; give them: Output(state_dir, name, fields=(...))")
        if fields is not None and stored not in (False, None) and tuple(fields) != tuple(stored):
            raise ComponentError(
                f"Output({state_dir!r}, {name!r}): fields {tuple(fields)!r} differ from the output's "
                f"{tuple(stored)!r}")
        self.fields = tuple(fields) if fields is not None else (tuple(stored) if stored else None)

    def _stored_fields(self):
        """(the output's fields as the producer stored them, or False if it never declared it;
        the outputs the producer declares, or None if it never ran there)."""
        if not os.path.exists(os.path.join(self.state_dir, "log", "data.mdb")):
            return False, None
        log = DurableLog(self.state_dir, readonly=True)
        try:
            declared = log.outputs()
        finally:
            log.close()
        if self.name not in declared:
            return False, declared
        return declared[self.name]["fields"], declared

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
                self.log = DurableLog(self.state_dir, readonly=True)
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
