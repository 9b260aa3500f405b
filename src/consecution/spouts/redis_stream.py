"""RedisStream: the entries of a Redis stream, read through a consumer group (redis-py:
`pip install 'consecution[redis]'`)."""
import time

from consecution.runtime.logs import logger
from consecution.topology import ComponentError

from .brokers import BrokerSpout, client_library
from .files import SourceError

__all__ = ["RedisStream"]


class RedisStream(BrokerSpout):
    """One tuple per entry of `stream`, read as consumer `consumer` of the consumer group `group`
    (created at the stream's start if missing, with the stream); field `body`: the entry's
    fields, a dict of str (`decode(body)` maps it first, when given).

    An entry is acknowledged to Redis (`XACK`) only once it is safe here: with reliability
    "replay" and a state directory, once it is in a committed log transaction (the log then
    replays it, also after a crash); with "confirm" or "track", once its tree completed, or was
    given up (then it is a dead letter here). Until then it stays in the group's pending
    entries of this consumer, which a restart reads first and emits again: a crash between the
    log commit and the XACK gives those entries twice (at least once, never lost). The consumer
    name must be the same at every start for that: the default is `<topology>.<component>.<task
    index>`.

    A connection that fails is tried again (0.1 s, doubling to 5 s; `spout.retrying` logs it);
    acknowledgements that could not be sent are sent when it is back, and this consumer's
    pending entries are read again from the start then (a read whose reply the failure cut off
    left its entries pending here), skipping those this run emitted already. A Redis not reachable at
    `open` is an error naming it. The spout reads `count` entries at a time and waits at most
    `block` seconds for new ones; it never ends by itself (stop the run with SIGTERM).
    """

    fields = ("body",)

    def __init__(self, url, stream, group, consumer=None, decode=None, count=100, block=0.1):
        if not stream or not group:
            raise ComponentError("RedisStream: name the stream and the consumer group")
        self.url, self.stream, self.group, self.consumer = url, stream, group, consumer
        self.decode = decode
        self.count = count
        self.block = block

    def open(self, context):
        redis = client_library("redis", "redis")
        self.redis = redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        # redis-py's own retries are silent: ours log `spout.retrying` and keep trying
        self.client = redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=10,
                                           socket_connect_timeout=10, client_name=f"consecution:{self.stream}",
                                           retry=Retry(NoBackoff(), 0))
        try:
            self._create_group()
        except redis.ConnectionError as exc:
            raise SourceError(f"RedisStream({self.stream!r}): cannot connect to Redis at {self.url}: {exc}") from None
        if self.consumer is None:
            self.consumer = f"{context.topology}.{context.component}.{context.task_index}"
        self.acknowledge_when(context)
        self.backlog = "0"     # this consumer's pending entries are read first, from the start
        self.unacked = []      # ids whose XACK could not be sent yet
        self.in_flight = set() # ids this run emitted and Redis has not had an XACK for
        self.retry_at = 0.0
        self.pause = 0.1

    def _create_group(self):
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except self.redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def next_tuple(self):
        if time.monotonic() < self.retry_at:
            time.sleep(min(0.05, self.retry_at - time.monotonic()))
            return
        try:
            if self.unacked:
                self._xack(self.unacked)
                self.unacked = []
            if self.backlog is not None:
                self._read_backlog()
            else:
                self._read_new()
        except self.redis.ConnectionError as exc:
            logger().warning("spout.retrying", spout="RedisStream", stream=self.stream, url=self.url,
                             error=f"{type(exc).__name__}: {exc}", retry_in=self.pause)
            self.retry_at = time.monotonic() + self.pause
            self.pause = min(5.0, self.pause * 2)
            self.backlog = "0"  # entries a cut-off read delivered to this consumer: read them again
            return
        self.pause = 0.1

    def _read_backlog(self):
        found = self.client.xreadgroup(self.group, self.consumer, {self.stream: self.backlog}, count=self.count)
        entries = found[0][1] if found else []
        if not entries:
            self.backlog = None
            return
        for entry_id, body in entries:
            if entry_id not in self.in_flight:
                self._emit_entry(entry_id, body)
        self.backlog = entries[-1][0]

    def _read_new(self):
        found = self.client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count,
                                       block=max(1, int(self.block * 1000)))
        for entry_id, body in (found[0][1] if found else []):
            self._emit_entry(entry_id, body)

    def _emit_entry(self, entry_id, body):
        self.in_flight.add(entry_id)
        self.emit((self.decode(body) if self.decode is not None else body,), msg_id=entry_id)

    def _xack(self, ids):
        self.client.xack(self.stream, self.group, *ids)
        self.in_flight.difference_update(ids)

    def confirm(self, ids):
        try:
            self._xack(ids)
        except self.redis.ConnectionError:
            self.unacked.extend(ids)  # sent with the next read that reaches Redis

    def close(self):
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
