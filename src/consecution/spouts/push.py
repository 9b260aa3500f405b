"""Push: a spout that your own code feeds from another thread."""
from consecution.topology import ComponentError

from .inbox import DEFAULT_LIMIT, Closed, Full, Inbox, InboxSpout

__all__ = ["Push", "Full", "Closed"]


class Push(InboxSpout):
    """Values handed over with `push(values)` from any thread, one tuple each.

        feed = Push(fields=("order",))
        topology = Topology("orders", feed | store)
        runner = threading.Thread(target=run, args=(topology,)); runner.start()
        feed.push(({"id": 1},))        # blocks while max_pending records are pending
        feed.end()                      # no more: the run finishes once everything is done

    `push` returns once the values are queued, not once they are logged: what is queued in
    memory when the process dies is lost (at most `maxsize` records, default the run's
    `max_pending`, else 1000). Once emitted, a tuple is logged and replayed like any other.
    `push(values, block=False)` raises `Full` instead of waiting; `timeout=` waits that long,
    then raises `Full`. After `end()`, or once the run has stopped, `push` raises `Closed`.
    A Push runs as one task, and feeds one run.
    """

    def __init__(self, fields=None, maxsize=None):
        self.fields = fields
        self.limit = maxsize
        self.inbox = Inbox(maxsize or DEFAULT_LIMIT)  # push() may come before the run opens the spout

    def _make_inbox(self, context):
        if self.limit is None and context.max_pending is not None:
            with self.inbox.cond:
                self.inbox.limit = context.max_pending
                self.inbox.cond.notify_all()
        return self.inbox

    def push(self, values, block=True, timeout=None):
        """Queue one tuple's values (a tuple; anything else is a 1-tuple). Waits while the
        spout holds `maxsize` records (`block=False`: raises `Full`)."""
        values = values if values.__class__ is tuple else (values,)
        self.inbox.offer([(values, None)], block=block, timeout=timeout)

    def end(self):
        """No more values: the spout is exhausted once it has emitted what was pushed."""
        self.inbox.seal()

    def next_tuple(self):
        if self.inbox.drained():
            raise StopIteration
        super().next_tuple()

    def close(self):
        self.inbox.close()

    def __deepcopy__(self, memo):
        raise ComponentError("a Push spout runs as one task and feeds one run: give it parallelism 1 "
                             "and use it in one place")
