"""BatchSink: a bolt that writes its inputs in batches and acks each only once its batch's write
was confirmed."""
import time

from consecution.runtime.logs import logger
from consecution.topology import Bolt

__all__ = ["BatchSink", "SinkError"]


class SinkError(Exception):
    """A write that cannot succeed by trying again (bad SQL, a missing table, a value the server
    refuses): the batch is written again one input at a time, so that only the inputs the
    server refuses fail (replayed, then dead-lettered with this message)."""


class BatchSink(Bolt):
    """Holds its inputs un-acked, writes them `batch` at a time, then acks them; a write that
    fails fails their trees (replayed, or given up as dead letters): nothing is acked that the
    server did not confirm. Subclasses implement `connect()`, `write(tuples)` (one batch, all or
    nothing, e.g. one transaction) and `close_connection()`, and name in `transient` the
    exception classes of a connection that went away.

    A connection error is retried: the sink logs `sink.retrying`, waits (0.1 s, doubling to
    5 s), connects again and writes the batch again, for up to `retry_for` seconds; then the
    batch fails (its trees are replayed as the topology's retries say). Meanwhile the bolt holds
    its task, so the run slows down instead of failing what it could write a moment later.

    A batch is written when it is full, when the runtime flushes held inputs (the input ended,
    an epoch waits, or the run has been idle `flush_interval` seconds: see ARCHITECTURE.md), and
    at `finish`. `max_pending` must leave room for a batch; the default `batch` fits the default
    limits.
    """

    auto_ack = False
    transient = (ConnectionError, TimeoutError)

    def __init__(self, batch=500, retry_for=60.0, flush_interval=0.2):
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"{type(self).__name__}: batch must be a positive int, got {batch!r}")
        self.batch = batch
        self.retry_for = retry_for
        self.flush_interval = flush_interval
        self.held = []
        self.connection = None

    def prepare(self, context):
        self.context = context
        self.held = []
        self.written = 0  # batches written (for tests and logs)
        self.connection = self.connect()

    def process(self, tup):
        self.held.append(tup)
        if len(self.held) >= self.batch:
            self.flush()

    def flush(self):
        if not self.held:
            return
        held, self.held = self.held, []
        try:
            self._write_retrying(held)
        except SinkError as exc:
            if len(held) == 1:
                self._fail_all(held, exc)
                return
            for tup in held:  # the server refuses one of them: one at a time, so only it fails
                self._write_alone(tup)
            return
        except Exception as exc:  # noqa: BLE001 - every input of the batch fails with it
            self._fail_all(held, exc)
            return
        self.written += 1
        for tup in held:
            self.ack(tup)

    def _write_alone(self, tup):
        try:
            self._write_retrying([tup])
        except Exception as exc:  # noqa: BLE001 - the input fails with it
            self._fail_all([tup], exc)
            return
        self.written += 1
        self.ack(tup)

    def _fail_all(self, tuples, exc):
        error = f"{type(exc).__name__}: {exc}"
        for tup in tuples:
            self.fail(tup, error)

    def _write_retrying(self, tuples):
        deadline = time.monotonic() + self.retry_for
        pause = 0.1
        while True:
            try:
                if self.connection is None:
                    self.connection = self.connect()
                self.write(tuples)
                return
            except self.transient as exc:
                self._drop_connection()
                if time.monotonic() + pause > deadline:
                    raise
                logger().warning("sink.retrying", sink=type(self).__name__, error=f"{type(exc).__name__}: {exc}",
                                 retry_in=pause, tuples=len(tuples))
                time.sleep(pause)
                pause = min(5.0, pause * 2)

    def _drop_connection(self):
        try:
            if self.connection is not None:
                self.close_connection()
        except Exception:  # noqa: BLE001 - it is gone already
            pass
        self.connection = None

    def finish(self):
        self.flush()

    def cleanup(self):
        self._drop_connection()

    # -- what a sink implements --------------------------------------------------------------

    def connect(self):
        raise NotImplementedError

    def write(self, tuples):
        raise NotImplementedError

    def close_connection(self):
        self.connection.close()
