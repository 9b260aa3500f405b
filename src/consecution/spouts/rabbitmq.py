"""RabbitMQ: the messages of a RabbitMQ queue (pika: `pip install 'consecution[rabbitmq]'`)."""
import collections
import time

from consecution.runtime.logs import logger
from consecution.topology import ComponentError

from .brokers import BrokerSpout, client_library
from .files import SourceError

__all__ = ["RabbitMQ"]


def _pika():
    return client_library("pika", "rabbitmq")


class RabbitMQ(BrokerSpout):
    """One tuple per message of `queue` (which must exist); field `body`: the message's bytes,
    or `decode(body)`.

    The broker hands over at most `prefetch` unacknowledged messages (default: the run's
    `max_pending`, else 1000). A message is acknowledged to the broker only once it is safe
    here: with reliability "replay" and a state directory, once it is in a committed log
    transaction; with "confirm" or "track", once its tree completed. A message given up (a dead
    letter here) is then rejected without requeueing: the queue's dead-letter exchange gets it
    when one is configured. With "replay" it was acknowledged at the commit, and it is our dead
    letter only. A crash before the acknowledgement makes the broker deliver the message again
    (at least once, never lost).

    A connection that fails is opened again (0.1 s, doubling to 5 s; `spout.retrying` logs it);
    the broker redelivers what was not acknowledged on the old one. A broker not reachable at
    `open`, or a queue that does not exist, is an error naming it. It never ends by itself.
    """

    fields = ("body",)

    def __init__(self, url, queue, decode=None, prefetch=None):
        if not queue:
            raise ComponentError("RabbitMQ: name the queue")
        self.url, self.queue, self.decode, self.prefetch = url, queue, decode, prefetch

    def open(self, context):
        self.pika = _pika()
        self.acknowledge_when(context)
        self.limit = self.prefetch or context.max_pending or 1000
        self.generation = 0   # which connection a delivery tag belongs to (tags restart with it)
        self.received = collections.deque()
        self.retry_at = 0.0
        self.pause = 0.1
        self.connection = None
        try:
            self._connect()
        except self.pika.exceptions.ChannelClosedByBroker as exc:
            raise SourceError(f"RabbitMQ({self.queue!r}): {exc.reply_text}") from None
        except self.pika.exceptions.AMQPError as exc:
            raise SourceError(f"RabbitMQ({self.queue!r}): cannot connect to {_safe(self.url)}: "
                              f"{type(exc).__name__} {exc}") from None

    def _connect(self):
        pika = self.pika
        self.connection = pika.BlockingConnection(parameters(self.url))
        self.channel = self.connection.channel()
        self.channel.queue_declare(self.queue, passive=True)  # it must exist: say so if it does not
        self.channel.basic_qos(prefetch_count=self.limit)
        self.generation += 1
        generation = self.generation
        self.channel.basic_consume(self.queue, lambda channel, method, properties, body: self.received.append(
            (generation, method.delivery_tag, body)))

    def next_tuple(self):
        if time.monotonic() < self.retry_at:
            time.sleep(min(0.05, self.retry_at - time.monotonic()))
            return
        try:
            if self.connection is None:
                self._connect()
            self.connection.process_data_events(time_limit=0 if self.received else 0.05)
        except self.pika.exceptions.AMQPError as exc:
            self._lost(exc)
            return
        self.pause = 0.1
        while self.received:
            generation, tag, body = self.received.popleft()
            self.emit((self.decode(body) if self.decode is not None else body,), msg_id=[generation, tag])

    def _lost(self, exc):
        logger().warning("spout.retrying", spout="RabbitMQ", queue=self.queue, url=_safe(self.url),
                         error=f"{type(exc).__name__}: {exc}", retry_in=self.pause)
        try:
            if self.connection is not None and self.connection.is_open:
                self.connection.close()
        except self.pika.exceptions.AMQPError:
            pass
        self.connection = None
        self.received.clear()  # unacknowledged: the broker delivers them again
        self.retry_at = time.monotonic() + self.pause
        self.pause = min(5.0, self.pause * 2)

    def _settle(self, msg_id, ack):
        if not isinstance(msg_id, list) or msg_id[0] != self.generation or self.connection is None:
            return  # a delivery of an earlier connection (or run): the broker redelivered it
        try:
            if ack:
                self.channel.basic_ack(msg_id[1])
            else:
                self.channel.basic_reject(msg_id[1], requeue=False)
        except self.pika.exceptions.AMQPError as exc:
            self._lost(exc)

    def confirm(self, msg_ids):
        for msg_id in msg_ids:
            self._settle(msg_id, True)

    def reject(self, msg_id):  # given up: to the dead-letter exchange, if the queue has one
        self._settle(msg_id, False)

    def close(self):
        try:
            if getattr(self, "connection", None) is not None and self.connection.is_open:
                self.connection.close()
        except Exception:  # noqa: BLE001 - closing what is gone
            pass


def parameters(url):
    """pika's parameters for `url`, with heartbeats every 5 s (unless the URL sets them): a peer
    that went silent is noticed within seconds, not after the broker's default minute."""
    params = _pika().URLParameters(url)
    if "heartbeat=" not in url:
        params.heartbeat = 5
    if "blocked_connection_timeout=" not in url:
        params.blocked_connection_timeout = 15
    return params


def _safe(url):
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':')[0]}@{host}"
    return url
