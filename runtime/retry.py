"""When to replay a failed tree: exponential backoff with jitter, up to `max_retries`.

`delay(attempts)` is the wait before attempt `attempts + 1`: `backoff * 2 ** (attempts - 1)`,
capped at `cap` seconds, times a random factor in [0.5, 1) so that records failed together do
not all come back at once ("equal jitter"). `None` means give up.
"""
import random


class Backoff:
    def __init__(self, max_retries, backoff, cap=60.0, rand=random.random):
        self.max_retries = max_retries
        self.backoff = backoff
        self.cap = cap
        self.rand = rand

    def delay(self, attempts):
        """Seconds to wait before replaying a record that has had `attempts` attempts, or None."""
        if attempts > self.max_retries:
            return None
        base = min(self.cap, self.backoff * 2 ** (attempts - 1))
        return base * (0.5 + self.rand() / 2)


class NoRetry:
    """"confirm" and "track": a failed tree is given up at once."""

    max_retries = 0

    def delay(self, attempts):
        return None
