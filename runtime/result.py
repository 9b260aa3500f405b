"""What a run reports: counts, failures, and the exit status the CLI returns."""

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GIVEN_UP = 0, 1, 2, 3


class RunResult:
    """The outcome of a run.

    `roots` tuples entered (spout tuples and tuples emitted from `finish`), `completed` trees
    fully processed, `failed` tree failures (each replay counts again), `replayed` replays,
    `given_up` records given up (dead letters), `errors` bolt errors on untracked tuples
    (reliability "none", or unanchored emits). `failures` holds the first 1,000 dead letters
    of this run. `fully_processed` is the answer of reliability "confirm".
    """

    def __init__(self, topology, reliability, mode):
        self.topology = topology
        self.reliability = reliability
        self.mode = mode
        self.status = None  # "complete", "stopped" (signal, graceful) or "aborted" (second signal)
        self.roots = self.completed = self.failed = self.replayed = self.given_up = self.errors = 0
        self.recovered = 0  # pending records of an earlier run, replayed (or given up) on start
        self.rolled_back = 0  # completed trees started again because their epoch was rolled back
        self.pending = 0
        self.dead_letters = 0
        self.failures = []
        self.collected = None  # (component, stream) -> values, with collect=True
        self.elapsed = 0.0

    @property
    def fully_processed(self):
        """Every tuple that entered was fully processed: complete, nothing given up or lost."""
        return self.status == "complete" and not self.given_up and not self.errors and not self.pending

    @property
    def exit_code(self):
        """0 complete or stopped by a signal; 3 when tuples were given up or errors counted."""
        if self.given_up or self.errors or self.dead_letters:
            return EXIT_GIVEN_UP
        return EXIT_OK

    def emitted(self, component, stream="default"):
        """The values a bolt emitted on a stream (needs `collect=True`), in emission order."""
        if self.collected is None:
            raise ValueError("this run did not collect outputs: run it with collect=True")
        return list(self.collected.get((component, stream), []))

    def summary(self):
        return {"status": self.status, "roots": self.roots, "completed": self.completed,
                "failed": self.failed, "replayed": self.replayed, "given_up": self.given_up,
                "errors": self.errors, "recovered": self.recovered, "rolled_back": self.rolled_back, "pending": self.pending,
                "dead_letters": self.dead_letters, "elapsed": round(self.elapsed, 3),
                "fully_processed": self.fully_processed}

    def __repr__(self):
        items = ", ".join(f"{k}={v!r}" for k, v in self.summary().items())
        return f"RunResult({self.topology!r}, {items})"
