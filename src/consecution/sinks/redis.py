"""A Redis sink (redis-py: `pip install 'consecution[redis]'`)."""
from .base import BatchSink, SinkError

__all__ = ["RedisCommand"]


def redis_module():
    from consecution.spouts.brokers import client_library
    return client_library("redis", "redis")


class RedisCommand(BatchSink):
    """Runs one Redis command per input, `fn(tup)` giving its arguments (e.g. `("HSET", "user:7",
    "name", "Ann")`), pipelined per batch in a MULTI/EXEC transaction: the batch is acked once
    Redis executed all of it."""

    def __init__(self, url, fn, batch=500, retry_for=60.0, flush_interval=0.2):
        super().__init__(batch, retry_for, flush_interval)
        if not callable(fn):
            raise ValueError(f"RedisCommand: fn must be callable (tup -> command arguments), got {fn!r}")
        self.url = url
        self.fn = fn

    def connect(self):
        redis = redis_module()
        self.transient = (redis.ConnectionError, redis.TimeoutError, ConnectionError)
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        client = redis.Redis.from_url(self.url, socket_timeout=30, socket_connect_timeout=10,
                                      retry=Retry(NoBackoff(), 0))  # BatchSink retries, and logs it
        try:
            client.ping()
        except redis.ConnectionError as exc:
            raise ConnectionError(f"RedisCommand: cannot connect to Redis at {self.url}: {exc}") from None
        return client

    def write(self, tuples):
        redis = redis_module()
        pipe = self.connection.pipeline(transaction=True)
        for tup in tuples:
            pipe.execute_command(*self.fn(tup))
        try:
            pipe.execute()
        except redis.ResponseError as exc:  # a wrong command: trying again cannot help
            raise SinkError(f"RedisCommand: {exc}") from None
