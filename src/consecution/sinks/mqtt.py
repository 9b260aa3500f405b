"""An MQTT sink (paho-mqtt: `pip install 'consecution[mqtt]'`)."""
from .base import BatchSink
from .rabbitmq import json_of_fields

__all__ = ["MqttPublish"]


class MqttPublish(BatchSink):
    """Publishes each input on `topic` (a string, or `fn(tup)`) with QoS 1, payload
    `encode(tup)` (default: the JSON of its fields); a batch is acked once the broker
    acknowledged every message of it (PUBACK)."""

    def __init__(self, host, port, topic, encode=None, client_id=None, batch=500, retry_for=60.0,
                 flush_interval=0.2, timeout=10.0):
        super().__init__(batch, retry_for, flush_interval)
        self.host, self.port, self.topic = host, port, topic
        self.encode = encode or json_of_fields
        self.client_id = client_id
        self.timeout = timeout

    def connect(self):
        from consecution.spouts.mqtt import connected
        c = self.context
        return connected("MqttPublish", self.host, self.port,
                         self.client_id or f"consecution-{c.topology}-{c.component}-{c.task_index}")

    def write(self, tuples):
        infos = []
        for tup in tuples:
            topic = self.topic(tup) if callable(self.topic) else self.topic
            info = self.connection.publish(topic, self.encode(tup), qos=1)
            if info.rc != 0:
                raise ConnectionError(f"MqttPublish: publish failed (rc {info.rc}): not connected")
            infos.append(info)
        for info in infos:
            info.wait_for_publish(self.timeout)
            if not info.is_published():
                raise ConnectionError(f"MqttPublish: the broker did not acknowledge within {self.timeout:g} s")

    def close_connection(self):
        self.connection.loop_stop()
        self.connection.disconnect()
