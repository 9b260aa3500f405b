"""The hand-over between producer threads (a server, user code) and a spout's `next_tuple`.

Producers `offer` records to an `Inbox`; the spout takes them on the scheduler thread, emits
each with a fresh msg_id, and gets `logged`, `ack` and `fail` back from the runtime. The inbox
counts the records it *owns*: offered and not yet acked or given up (queued, or emitted and in
flight). A producer may offer while that count is below the limit, which defaults to the run's
`max_pending` (`context.max_pending`), so the runtime always has room for what was accepted and
a producer sees the backpressure at once: Http answers 503, Push blocks or raises, Tcp stops
reading its sockets.

With reliability "none" the runtime calls neither `ack` nor `fail`: a record is released as
soon as it is emitted.
"""
import collections
import itertools
import random
import threading

from consecution.errors import ConsecutionError
from consecution.topology import Spout

DEFAULT_LIMIT = 1000  # records owned at most when neither the spout nor the run sets a limit
BATCH = 64            # records emitted per next_tuple call, at most


class Full(ConsecutionError):
    """The spout holds as many records as it may (`max_pending`): try again later."""


class Closed(ConsecutionError):
    """The spout no longer takes records (it was ended, or the run stopped)."""


class Inbox:
    """A queue of (values, on_logged) with a limit on the records owned (see the module docstring)."""

    def __init__(self, limit=None):
        self.limit = limit or DEFAULT_LIMIT
        self.cond = threading.Condition()
        self.queue = collections.deque()
        self.owned = 0
        self.closed = False

    def full(self):
        return self.owned >= self.limit

    def offer(self, items, block=False, timeout=None, force=False):
        """Queue `items` ((values, on_logged) pairs). Unless `force`, wait while the inbox is
        full (`block`), or raise `Full`. Raises `Closed` once the inbox is closed."""
        with self.cond:
            if not force and self.owned >= self.limit:
                if not block:
                    raise Full(f"{self.owned} records are pending (the limit is {self.limit})")
                if not self.cond.wait_for(lambda: self.owned < self.limit or self.closed, timeout):
                    raise Full(f"{self.owned} records still pending after {timeout} s (the limit is "
                               f"{self.limit})")
            if self.closed:
                raise Closed("the spout is closed: it takes no more records")
            self.queue.extend(items)
            self.owned += len(items)

    def take(self, n):
        """Up to `n` queued items, oldest first (never blocks)."""
        queue = self.queue
        with self.cond:
            return [queue.popleft() for _ in range(max(0, min(n, len(queue))))]

    def release(self, n=1):
        """`n` owned records were acked or given up: room for more."""
        with self.cond:
            self.owned -= n
            self.cond.notify_all()

    def seal(self):
        """Take no more records; what is queued is still taken."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def drained(self):
        """Sealed, and everything queued was taken."""
        return self.closed and not self.queue

    def close(self):
        """Take no more records; return the items still queued (never emitted)."""
        with self.cond:
            self.closed = True
            left = list(self.queue)
            self.queue.clear()
            self.owned -= len(left)
            self.cond.notify_all()
            return left


class InboxSpout(Spout):
    """A spout fed through an `Inbox`: emits what producers offered, calls each record's
    `on_logged` (if any) once the record is in a committed log transaction, and releases the
    record when its tree completes or is given up. msg_ids are ints from a random start, so
    that acks of records replayed from an earlier run (whose producers are gone) are told
    apart and ignored."""

    limit = None  # records owned at most; None: the run's max_pending, else DEFAULT_LIMIT

    def open(self, context):
        if context.parallelism != 1:
            raise ConsecutionError(f"{type(self).__name__} runs as one task: give {context.component!r} "
                                   f"parallelism 1, not {context.parallelism}")
        self.inbox = self._make_inbox(context)
        self.releases_on_ack = context.reliability != "none"
        self.ids = itertools.count(random.getrandbits(62))
        self.owned_ids = set()     # msg_ids emitted by this run and not yet acked or given up
        self.on_logged = {}        # msg_id -> callable, until the record is logged

    def _make_inbox(self, context):
        return Inbox(self.limit or context.max_pending)

    def next_tuple(self):
        emit, ids, owned_ids, on_logged = self._emit, self.ids, self.owned_ids, self.on_logged
        room = self.inbox.limit - len(owned_ids)  # a forced offer (Tcp) may hold more than the limit
        for values, callback in self.inbox.take(min(BATCH, room)):
            msg_id = next(ids)
            owned_ids.add(msg_id)
            if callback is not None:
                on_logged[msg_id] = callback
            emit(values, "default", msg_id)

    def logged(self, msg_ids):
        on_logged = self.on_logged
        for msg_id in msg_ids:
            callback = on_logged.pop(msg_id, None)
            if callback is not None:
                callback()
        if not self.releases_on_ack:
            self._release(msg_ids)

    def ack(self, msg_id):
        self._release((msg_id,))

    def fail(self, msg_id, error):
        self._release((msg_id,))

    def _release(self, msg_ids):
        n = 0
        for msg_id in msg_ids:
            if msg_id in self.owned_ids:  # not a record replayed from an earlier run
                self.owned_ids.discard(msg_id)
                n += 1
        if n:
            self.inbox.release(n)
