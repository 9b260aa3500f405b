"""JetStream: the messages of a NATS JetStream stream, through a durable pull consumer (nats-py:
`pip install 'consecution[nats]'`)."""
import asyncio
import threading
import time

from consecution.runtime.logs import logger
from consecution.topology import ComponentError

from .brokers import BrokerSpout, client_library
from .files import SourceError

__all__ = ["JetStream"]


def _nats():
    return client_library("nats", "nats")


class NatsLoop:
    """A NATS connection on an asyncio loop of its own thread, for code that is not async (a
    spout's calls, a sink's writes): `call(coroutine)` runs it there and waits for the result."""

    def __init__(self, url, name, on_disconnect=None):
        nats = _nats()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"consecution-{name}", daemon=True)
        self.thread.start()

        async def disconnected():
            if on_disconnect is not None:
                on_disconnect()

        async def connect():
            return await nats.connect(url, name=name, connect_timeout=5, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.5, allow_reconnect=True,
                                      disconnected_cb=disconnected)
        try:
            self.nc = self.call(connect(), 15)
        except Exception:
            self.stop()
            raise
        self.js = self.nc.jetstream()

    def call(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        nc = getattr(self, "nc", None)
        if nc is not None:
            try:
                self.call(nc.close(), 10)
            except Exception:  # noqa: BLE001 - closing what is gone
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class JetStream(BrokerSpout):
    """One tuple per message of the JetStream `stream` (filtered by `subject` when given), read
    by the durable pull consumer `durable` (created when missing); field `body`: the message's
    bytes, or `decode(body)`.

    A message is acknowledged only once it is safe here: with reliability "replay" and a state
    directory, once it is in a committed log transaction; with "confirm" or "track", once its
    tree completed (given up: terminated, so JetStream does not deliver it again; it is a dead
    letter here). JetStream delivers again what was not acknowledged within `ack_wait` seconds
    (default 30), also after a crash (at least once): what a crash caught fetched and not yet
    committed comes back that long after. With "replay" a message is held only until the next
    commit (milliseconds); with "confirm" or "track" until its tree completes, so make
    `ack_wait` longer than a tree may take with its retries, or JetStream delivers it again
    meanwhile. `ack_wait` is set when the durable consumer is created (its first run).

    The client reconnects by itself (every 0.5 s); a lost connection is logged as
    `spout.retrying`. A server not reachable at `open`, or a stream that does not exist, is an
    error naming it. It never ends by itself.
    """

    fields = ("body",)

    def __init__(self, url, stream, durable, subject=None, decode=None, ack_wait=30.0, batch=100):
        if not stream or not durable:
            raise ComponentError("JetStream: name the stream and the durable consumer")
        self.url, self.stream, self.durable_name, self.subject = url, stream, durable, subject
        self.decode, self.ack_wait, self.batch = decode, ack_wait, batch

    def open(self, context):
        nats = _nats()
        from nats.js.api import ConsumerConfig
        self.acknowledge_when(context)
        self.held = {}  # ack subject -> the message, until it is acknowledged
        try:
            self.nats = NatsLoop(self.url, f"consecution-{self.stream}", self._lost)
        except Exception as exc:  # noqa: BLE001 - nats-py raises its own errors, or OSError
            raise SourceError(f"JetStream({self.stream!r}): cannot connect to {self.url}: {type(exc).__name__} "
                              f"{exc}") from None
        try:
            self.nats.call(self.nats.js.stream_info(self.stream))
            self.sub = self.nats.call(self.nats.js.pull_subscribe(
                self.subject, durable=self.durable_name, stream=self.stream,
                config=ConsumerConfig(ack_wait=self.ack_wait)))
        except nats.js.errors.NotFoundError:
            self.nats.stop()
            raise SourceError(f"JetStream: no stream {self.stream!r} at {self.url}") from None

    def _lost(self):
        logger().warning("spout.retrying", spout="JetStream", stream=self.stream, url=self.url,
                         error="disconnected", retry_in=0.5)

    def next_tuple(self):
        nats = _nats()
        try:
            messages = self.nats.call(self.sub.fetch(self.batch, timeout=0.05), 10)
        except (nats.errors.TimeoutError, asyncio.TimeoutError, TimeoutError):
            return  # nothing new
        except (nats.errors.ConnectionClosedError, nats.errors.NoRespondersError, nats.errors.Error) as exc:
            logger().warning("spout.retrying", spout="JetStream", stream=self.stream, url=self.url,
                             error=f"{type(exc).__name__}: {exc}", retry_in=0.5)
            time.sleep(0.5)
            return
        again = sum(1 for m in messages if m.metadata.num_delivered > 1)
        if again:  # not acknowledged in time, or before a crash: JetStream delivers them again
            logger().info("spout.redelivered", spout="JetStream", stream=self.stream, messages=again)
        for message in messages:
            self.held[message.reply] = message
            self.emit((self.decode(message.data) if self.decode is not None else message.data,),
                      msg_id=message.reply)

    def confirm(self, msg_ids):
        self._settle(msg_ids, "ack")

    def reject(self, msg_id):  # given up: terminated, so JetStream does not deliver it again
        self._settle([msg_id], "term")

    def _settle(self, msg_ids, how):
        messages = [m for m in map(self.held.pop, msg_ids, [None] * len(msg_ids)) if m is not None]
        if not messages:
            return  # an earlier run's: JetStream delivers them again after ack_wait

        async def settle_all():
            await asyncio.gather(*(getattr(m, how)() for m in messages))
            await self.nats.nc.flush()  # out of the client's buffer: a kill now cannot take them
        try:
            self.nats.call(settle_all(), 30)
        except Exception as exc:  # noqa: BLE001 - not acknowledged: JetStream delivers them again
            logger().warning("spout.ack_lost", spout="JetStream", stream=self.stream, messages=len(messages),
                             error=f"{type(exc).__name__}: {exc}")

    def close(self):
        if getattr(self, "nats", None) is not None:
            self.nats.stop()
