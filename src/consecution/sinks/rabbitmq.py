"""A RabbitMQ sink (pika: `pip install 'consecution[rabbitmq]'`)."""
import json

from .base import BatchSink, SinkError

__all__ = ["RabbitPublish", "json_of_fields"]


def json_of_fields(tup):
    """The default `encode`: the JSON of the tuple's fields, as bytes."""
    return json.dumps(dict(zip(tup.fields, tup.values)), default=str).encode()


class RabbitPublish(BatchSink):
    """Publishes each input to `exchange` with `routing_key` (a string, or `fn(tup)`), as a
    persistent message whose body is `encode(tup)` (default: the JSON of its fields), with
    publisher confirms: an input is acked once the broker confirmed its message. A message the
    broker cannot route (no queue bound) is refused (mandatory), and fails its input."""

    def __init__(self, url, exchange, routing_key, encode=None, batch=500, retry_for=60.0, flush_interval=0.2):
        super().__init__(batch, retry_for, flush_interval)
        self.url, self.exchange, self.routing_key = url, exchange, routing_key
        self.encode = encode or json_of_fields

    def connect(self):
        from consecution.spouts.rabbitmq import _pika, _safe, parameters
        pika = _pika()
        self.transient = (pika.exceptions.AMQPConnectionError, pika.exceptions.ChannelWrongStateError,
                          pika.exceptions.StreamLostError, pika.exceptions.ConnectionClosed, ConnectionError)
        try:
            connection = pika.BlockingConnection(parameters(self.url))
        except pika.exceptions.AMQPConnectionError as exc:
            raise ConnectionError(f"RabbitPublish: cannot connect to {_safe(self.url)}: {type(exc).__name__} {exc}") \
                from None
        self.channel = connection.channel()
        self.channel.confirm_delivery()
        return connection

    def write(self, tuples):
        from consecution.spouts.rabbitmq import _pika
        pika = _pika()
        persistent = pika.BasicProperties(delivery_mode=2)
        for tup in tuples:
            key = self.routing_key(tup) if callable(self.routing_key) else self.routing_key
            try:
                self.channel.basic_publish(self.exchange, key, self.encode(tup), persistent, mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
                raise SinkError(f"RabbitPublish: the broker refused the message to {self.exchange!r}/{key!r}: "
                                f"{type(exc).__name__}") from None
            except pika.exceptions.ChannelClosedByBroker as exc:
                raise SinkError(f"RabbitPublish: {exc.reply_text}") from None
