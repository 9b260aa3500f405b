"""Mqtt: the messages of an MQTT topic, QoS 1 in a persistent session (paho-mqtt:
`pip install 'consecution[mqtt]'`)."""
import collections
import threading
import time

from consecution.runtime.logs import logger
from consecution.topology import ComponentError

from .brokers import BrokerSpout, client_library
from .files import SourceError

__all__ = ["Mqtt"]


def connected(who, host, port, client_id, clean_session=True, setup=None):
    """A paho client of `client_id`, `setup(client)` called before it connects to host:port,
    its network thread started; a broker it cannot reach is a ConnectionError naming it."""
    mqtt = client_library("paho.mqtt.client", "mqtt")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    if setup is not None:
        setup(client)
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        raise ConnectionError(f"{who}: cannot connect to the broker at {host}:{port}: {exc.strerror or exc}") \
            from None
    client.loop_start()
    return client


class Mqtt(BrokerSpout):
    """One tuple per message on `topic` (wildcards allowed), subscribed with QoS 1 in a
    persistent session of `client_id` (the broker keeps what arrives while the run is down);
    field `body`: the payload's bytes, or `decode(body)`.

    A message is acknowledged (PUBACK) only once it is safe here: with reliability "replay" and
    a state directory, once it is in a committed log transaction; with "confirm" or "track",
    once its tree completed or was given up. The broker delivers again, after a reconnect or a
    restart, what was not acknowledged (at least once). Keep `client_id` the same at every start:
    the session is the broker's memory of what this spout has not taken yet. Messages published
    before the session first subscribed are not kept by MQTT. The broker limits how many
    messages it keeps for a disconnected session and how many it sends unacknowledged (mosquitto:
    `max_queued_messages`, 1000, and `max_inflight_messages`, 20, by default).

    paho's network thread reconnects by itself (1 s, doubling to 30 s); losing the connection is
    logged as `spout.retrying`. A broker not reachable at `open` is an error naming it. It never
    ends by itself.
    """

    fields = ("body",)

    def __init__(self, host, port, topic, client_id, decode=None):
        if not topic or not client_id:
            raise ComponentError("Mqtt: name the topic and the client_id")
        self.host, self.port, self.topic, self.client_id, self.decode = host, port, topic, client_id, decode

    def open(self, context):
        self.acknowledge_when(context)
        self.received = collections.deque()
        self.generation = 0  # which connection a packet id belongs to
        self.lock = threading.Lock()
        try:
            self.client = connected(f"Mqtt({self.topic!r})", self.host, self.port, self.client_id,
                                    clean_session=False, setup=self._setup)
        except ConnectionError as exc:
            raise SourceError(str(exc)) from None

    def _setup(self, client):
        client.manual_ack_set(True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message

    def _connected(self, client, userdata, flags, reason, properties):
        with self.lock:
            self.generation += 1
        client.subscribe(self.topic, qos=1)

    def _disconnected(self, client, userdata, flags, reason, properties):
        logger().warning("spout.retrying", spout="Mqtt", topic=self.topic, broker=f"{self.host}:{self.port}",
                         error=str(reason))

    def _message(self, client, userdata, message):
        with self.lock:
            self.received.append((self.generation, message.mid, message.payload))

    def next_tuple(self):
        if not self.received:
            time.sleep(0.005)
            return
        while self.received:
            generation, mid, body = self.received.popleft()
            self.emit((self.decode(body) if self.decode is not None else bytes(body),), msg_id=[generation, mid])

    def confirm(self, msg_ids):  # a given-up message too: a dead letter here (MQTT has no rejection)
        for msg_id in msg_ids:
            if isinstance(msg_id, list) and msg_id[0] == self.generation:  # else: redelivered since
                self.client.ack(msg_id[1], 1)

    def close(self):
        client = getattr(self, "client", None)
        if client is not None:
            client.loop_stop()
            client.disconnect()
