"""Orders from a broker into a database, with guaranteed processing at both ends.

    pip install 'consecution[postgres,rabbitmq,redis,mqtt,nats]'
    consecution run examples/brokers.py            # the servers on 127.0.0.1, or set the variables below

Orders arrive as JSON on the RabbitMQ queue `orders` (ORDERS_SOURCE=rabbitmq, the default),
on the Redis stream `orders` (ORDERS_SOURCE=redis, consumer group `brokers`), on the MQTT
topic `shop/orders` (ORDERS_SOURCE=mqtt) or on the subject `orders.new` of the JetStream stream
`orders` (ORDERS_SOURCE=nats, durable consumer `brokers`; create the stream first:
`nats stream add orders --subjects 'orders.>'`). Each is validated, upserted into the PostgreSQL
table `orders` by id, counted per customer in the Redis hash `orders:per_customer`, and a
large one is published on the MQTT topic `shop/large-orders`.

A message is acknowledged to its broker only once it is in the run's committed log, and a
sink acks an order only once its server confirmed the write: kill the run at any moment
(kill -9 included) and start it again, and every order ends in the table, once (upsert by
id); the counter and the alerts are at least once. An order that fails validation ends as a
dead letter (`consecution dead-letters --state-dir .consecution/brokers`).

    ORDERS_RABBIT  amqp://guest:guest@127.0.0.1:5672/%2F     ORDERS_PG     host=127.0.0.1 user=postgres dbname=test
    ORDERS_REDIS   redis://127.0.0.1:6379/0                  ORDERS_MQTT   127.0.0.1:1883
    ORDERS_NATS    nats://127.0.0.1:4222
    ORDERS_TABLE   orders (created if missing)               ORDERS_NAME   the queue, stream, topic and hash prefix
"""
import json
import os

from consecution import Topology
from consecution.sinks import MqttPublish, PostgresUpsert, RedisCommand
from consecution.spouts import JetStream, Mqtt, RabbitMQ, RedisStream

NAME = os.environ.get("ORDERS_NAME", "orders")
RABBIT = os.environ.get("ORDERS_RABBIT", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS = os.environ.get("ORDERS_REDIS", "redis://127.0.0.1:6379/0")
PG = os.environ.get("ORDERS_PG", "host=127.0.0.1 port=5432 user=postgres dbname=test")
TABLE = os.environ.get("ORDERS_TABLE", "orders")
MQTT_HOST, MQTT_PORT = os.environ.get("ORDERS_MQTT", "127.0.0.1:1883").rsplit(":", 1)
NATS = os.environ.get("ORDERS_NATS", "nats://127.0.0.1:4222")
LARGE = 100_000  # cents: an order this large is published as an alert


def source(kind):
    if kind == "rabbitmq":
        return RabbitMQ(RABBIT, NAME)
    if kind == "redis":
        return RedisStream(REDIS, NAME, group="brokers", decode=lambda fields: fields["order"])
    if kind == "mqtt":
        return Mqtt(MQTT_HOST, int(MQTT_PORT), f"shop/{NAME}", client_id=f"brokers-{NAME}")
    if kind == "nats":
        return JetStream(NATS, NAME, durable="brokers", subject=f"{NAME}.new")
    raise ValueError(f"ORDERS_SOURCE must be rabbitmq, redis, mqtt or nats, got {kind!r}")


def validate(body):
    order = json.loads(body)
    if not isinstance(order.get("id"), int) or not isinstance(order.get("cents"), int) or order["cents"] < 0:
        raise ValueError(f"not a valid order: {order!r}")
    return order["id"], str(order.get("customer", "")), order["cents"]


validate.fields = ("id", "customer", "cents")


def large(id, customer, cents):
    if cents >= LARGE:
        return id, customer, cents


large.fields = ("id", "customer", "cents")


class Store(PostgresUpsert):
    """The upsert, into a table it creates when missing (on each connection of its task)."""

    def connect(self):
        connection = super().connect()
        with connection.transaction():
            connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, customer text, cents bigint)")
        return connection


topology = Topology("brokers")
topology.spout("orders", source(os.environ.get("ORDERS_SOURCE", "rabbitmq")))
topology.bolt("validate", validate, parallelism=2).shuffle_grouping("orders")
topology.bolt("store", Store(PG, TABLE, key="id")).fields_grouping("validate", "id")
topology.bolt("count", RedisCommand(REDIS, lambda tup: ("HINCRBY", f"{NAME}:per_customer", tup["customer"], 1))) \
    .shuffle_grouping("validate")
topology.bolt("large", large).shuffle_grouping("validate")
topology.bolt("alert", MqttPublish(MQTT_HOST, int(MQTT_PORT), f"shop/{NAME}-large")).shuffle_grouping("large")
