"""A NATS JetStream sink (nats-py: `pip install 'consecution[nats]'`)."""
import asyncio
import hashlib

from .base import BatchSink, SinkError
from .rabbitmq import json_of_fields

__all__ = ["JetStreamPublish", "message_id"]


def message_id(tup, payload):
    """The `Nats-Msg-Id` of what `tup` publishes: the sequence numbers of the log records whose
    trees it belongs to (`Tuple.seqs`: the same on every replay) and a digest of the payload, so
    that a replay publishes the same id and JetStream's de-duplication drops it; None for a
    tuple that belongs to no tree (reliability "none")."""
    seqs = tup.seqs
    if not seqs:
        return None
    return f"{'.'.join(map(str, sorted(seqs)))}:{hashlib.blake2b(payload, digest_size=12).hexdigest()}"


class JetStreamPublish(BatchSink):
    """Publishes each input on `subject` (a string, or `fn(tup)`) to JetStream, payload
    `encode(tup)` (default: the JSON of its fields), with a `Nats-Msg-Id` derived from the
    records its tree started from and the payload (`message_id`): within the stream's
    de-duplication window (`duplicate_window`, 2 minutes by default) a replay after a failure or a
    crash is dropped by JetStream, so each input is published once. (An input its source
    delivered twice, as a broker does after a crash between the log commit and its
    acknowledgement, is two inputs with two records.) A batch is acked once JetStream
    acknowledged every message of it."""

    def __init__(self, url, subject, encode=None, batch=500, retry_for=60.0, flush_interval=0.2):
        super().__init__(batch, retry_for, flush_interval)
        self.url, self.subject = url, subject
        self.encode = encode or json_of_fields

    def connect(self):
        from consecution.spouts.jetstream import NatsLoop, _nats
        nats = _nats()
        self.transient = (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, nats.errors.NoRespondersError,
                          asyncio.TimeoutError, TimeoutError, ConnectionError)
        try:
            return NatsLoop(self.url, f"consecution-{self.context.topology}-{self.context.component}")
        except Exception as exc:  # noqa: BLE001 - nats-py raises its own errors, or OSError
            raise ConnectionError(f"JetStreamPublish: cannot connect to {self.url}: {type(exc).__name__} {exc}") \
                from None

    def write(self, tuples):
        from consecution.spouts.jetstream import _nats
        nats = _nats()
        js = self.connection.js
        publishes = []
        for tup in tuples:
            payload = self.encode(tup)
            subject = self.subject(tup) if callable(self.subject) else self.subject
            msg_id = message_id(tup, payload)
            publishes.append(js.publish(subject, payload, timeout=10,
                                        headers={"Nats-Msg-Id": msg_id} if msg_id is not None else None))

        async def publish_all():
            return await asyncio.gather(*publishes)
        try:
            self.connection.call(publish_all(), 60)
        except nats.js.errors.NoStreamResponseError:
            raise SinkError(f"JetStreamPublish: no stream takes subject {self.subject!r}") from None

    def close_connection(self):
        self.connection.stop()
