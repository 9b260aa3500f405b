"""Spouts for common sources, each with the durable-log guarantee as strong as its source allows.

    from consecution.spouts import Stdin, File, Tcp, Http, Interval, Cron, Query, Push

| spout | what can be lost at most |
|---|---|
| `Stdin()` | lines read from the pipe and not yet committed when the process dies (a pipe cannot be read twice) |
| `File(path, follow=False)` | nothing: the byte offset is the position |
| `Tcp(host, port)` | nothing the client got `ok` for; a client resends what was not confirmed |
| `Http(host, port, path)` | nothing that got `202 Accepted`; a client resends what did not |
| `Interval(every, fn)`, `Cron(expr, fn)` | a tick's output not yet committed; the tick is not run again |
| `Query(factory, sql, key)` | nothing: the last key is the position |
| `Push()` | what `push()` queued and the spout had not yet emitted and committed |
| `Output(state_dir, name)` | nothing: the producer's outbox keeps each entry until every registered consumer has committed it |
| `JetStream(url, stream, durable)` | nothing: a message is acknowledged once committed to the log; JetStream delivers again what was not acknowledged within `ack_wait` (at least once) |
| `Mqtt(host, port, topic, client_id)` | nothing the broker kept for the session: a message is acknowledged once committed to the log; the broker delivers again what was not (at least once) |
| `RabbitMQ(url, queue)` | nothing: a message is acknowledged once committed to the log; a crash before that makes the broker deliver it again (at least once) |
| `RedisStream(url, stream, group)` | nothing: an entry is XACKed once committed to the log; a crash before the XACK gives it again (at least once) |

Every spout logs what it emits before any bolt sees it (reliability "replay"), and runs in the
supervising process in every mode. See each class for the details, and the README's table.
"""
from .files import File, SourceError, Stdin
from .inbox import Closed, Full
from .jetstream import JetStream
from .http import Http
from .net import Tcp
from .mqtt import Mqtt
from .output import Output
from .push import Push
from .query import Query
from .rabbitmq import RabbitMQ
from .redis_stream import RedisStream
from .timers import Cron, Interval

__all__ = ["Closed", "Cron", "File", "Full", "Http", "Interval", "JetStream", "Mqtt", "Output", "Push", "Query", "RabbitMQ", "RedisStream",
           "SourceError", "Stdin", "Tcp"]
