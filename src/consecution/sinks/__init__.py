"""Sinks: bolts that write their inputs to a database or a broker in batches, and ack each input
only once its batch's write was confirmed; a write that fails fails those inputs' trees, which
are replayed (or given up as dead letters). Each needs its client library, an extra:

    pip install 'consecution[postgres]'    PostgresUpsert, PostgresExecute
    pip install 'consecution[redis]'       RedisCommand
    pip install 'consecution[rabbitmq]'    RabbitPublish
    pip install 'consecution[mqtt]'        MqttPublish
    pip install 'consecution[nats]'        JetStreamPublish

| sink | duplicates after a crash or a replay |
|---|---|
| `PostgresUpsert(dsn, table, key)` | none in the table: a replayed row is written again under its key |
| `PostgresExecute(dsn, sql)` | the statement runs again for replayed inputs: make it idempotent |
| `RabbitPublish(url, exchange, routing_key)` | the messages of replayed inputs are published again |
| `JetStreamPublish(url, subject)` | none from replays within the stream's de-duplication window: the message id comes from the log records (`Tuple.seqs`) and the payload, the same on a replay (an input a broker delivered twice is two inputs) |
| `MqttPublish(host, port, topic)` | the messages of replayed inputs are published again (QoS 1: at least once) |
| `RedisCommand(url, fn)` | the commands of replayed inputs run again (SET, HSET are idempotent; INCR is not) |

See `BatchSink` for how batches are written, retried and acked.
"""
from .base import BatchSink, SinkError
from .jetstream import JetStreamPublish
from .mqtt import MqttPublish
from .postgres import PostgresExecute, PostgresUpsert
from .rabbitmq import RabbitPublish
from .redis import RedisCommand

__all__ = ["BatchSink", "JetStreamPublish", "MqttPublish", "PostgresExecute", "PostgresUpsert", "RabbitPublish", "RedisCommand", "SinkError"]
