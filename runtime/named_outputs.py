"""Named outputs (`Topology.output`) at run time: their hidden writer tasks, closing, trimming.

Each output has a hidden stateful writer task (`OutputBolt`) whose state is the entries it
received in the current epoch; a checkpoint hands them to the log (`take`), in the transaction
that releases the trees that made them. A completed finite run closes its outputs (consumers at
the end are done); new spout input opens them again. Entries that every registered consumer
has read are trimmed at the start of each run and every TRIM_EVERY seconds at a checkpoint.
"""
TRIM_EVERY = 1.0  # seconds between two looks at the consumers of named outputs


class NamedOutputs:
    def __init__(self, core, writers):
        self.core = core
        self.writers = writers  # task id of a hidden writer -> its output's name
        self.last_trim = 0.0
        self.closed = False     # a declared output was closed by a completed run

    def opened(self):
        """The run's log is open: say whether outputs are kept, trim, see whether closed."""
        core = self.core
        names = core.topology.outputs
        if names and not core.durable:
            core.logger.warning("outputs.not_kept", topology=core.topology.name, outputs=sorted(names),
                                reason="named outputs are kept only with a state directory and reliability "
                                       "'replay' or 'track'")
        if self.writers and core.durable:
            self.trim()  # what consumers read since the last run
        self.closed = any((core.log.get_meta(f"output:{name}") or {}).get("closed") for name in names)

    def take(self, task_id, rows):
        """A checkpoint's rows of task `task_id`: True if they are an output's entries (then
        put in the log), False if they are state changes."""
        name = self.writers.get(task_id)
        if name is None:
            return False
        self.core.log.put_outbox(name, rows)
        return True

    def trim_if_due(self, now):
        if self.writers and self.core.log.durable and now - self.last_trim >= TRIM_EVERY:
            self.trim()

    def trim(self):
        """Trim each output up to what every registered consumer has committed (with no consumer
        registered, everything is kept)."""
        log = self.core.log
        self.last_trim = self.core.now
        log.clear_stale_readers()
        for output in self.writers.values():
            positions = log.consumers(output)
            if positions:
                log.trim_outbox(output, min(positions.values()))

    def reopen(self):
        """New spout input: the outputs are open for what it brings."""
        if self.closed:
            self.closed = False
            self.core.log.close_outputs(False)

    def close(self):
        """A finite run completed: consumers that reach the end are done."""
        if self.core.topology.outputs:
            self.core.log.close_outputs(True)
