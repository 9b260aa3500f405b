"""Recovery: the records an earlier run, or a worker process that died, left in flight.

After a clean stop (the run closed its log: it completed, user code failed outside a tuple, or
a signal stopped it), the records still pending start again, oldest first, at the attempt
they had, before any new spout tuple: an interrupted attempt is not a failed one.

After a crash (the run ended without closing its log: SIGKILL, a segfault, the OOM killer,
power loss, `SystemExit` or `KeyboardInterrupt` out of user code), or when a worker process
dies, one of the records in flight may have caused it. A crash is charged only to a record
shown to cause it:

- The records pending after a crash, or in flight when a worker died, are *suspects*. They run
  in *trials*: a group of them with nothing else in flight (no new spout tuple, no replay of
  an earlier failure), until none of it is in flight and, with stateful bolts, its epoch is
  checkpointed. Then the trial has *passed* and its records are suspects no more, whatever
  became of them (completed, failed as usual and waiting for their replay, given up).
- The suspects a crash happened among are *known* to hold a culprit. The first half of them is
  the next trial: if it passes, the culprit is in the other half; if it crashes, in this one
  (a failing batch bisected). A culprit among n suspects runs alone after about log2(n)
  trials, at most as many crashes.
- A record that crashes while it runs alone has failed that attempt. It runs alone again with
  one more attempt, committed before it starts; after `max_retries` + 1 crashes alone it is
  given up: one dead letter, whose error names the crash. Then the other suspects go on.
- No record is charged otherwise. Crashes from outside (a SIGKILL loop, the OOM killer taking
  the process for another's memory) cost trials, not records, unless one of them hits the
  same record while it runs alone `max_retries` + 1 times.

Where the isolation stands is in the log, the meta entry "isolation": [the suspects in order,
how many of the first are known to hold a culprit, how many of the first are the trial that
runs]. It is written in the commit before a trial starts, with the attempt charged, so a run
killed at any moment finds where it stood, and the run after a crash in a trial knows that
trial crashed. The meta entry "run" says whether the last run closed its log: "open" from a
run's first commit, before anything runs, until its close writes "closed".
"""
import itertools

from consecution.errors import ConsecutionError

RUN, ISOLATION = "run", "isolation"
CHUNK = 512               # records read from the log and started at once
RESTARTED = "the process ended without closing its log"  # the cause of a crash found on start


class Recovery:
    """The core's recovery (see the module docstring). The core calls `opened()` once the log,
    spouts and executor are ready, `step()` from its loop (True when it started something),
    `worker_died(...)`; new spout tuples wait while `active`, replays while `isolating`."""

    def __init__(self, core):
        self.core = core
        self.suspects = []     # seqs, in trial order
        self.known = 0         # the first `known` suspects hold a culprit (0: not known)
        self.trial = 0         # the first `trial` suspects are the trial that runs (0: none)
        self.isolating = False
        self.to_start = None   # the trial's records not started yet (an iterator)
        self.pending = None    # the records pending after a clean stop, not started yet
        self.records = {}      # seq -> Record, of suspects known here (a dead worker's trees)
        self.trials = self.crashes = 0
        self.flushed = False   # the bolts that hold inputs were asked to flush for this trial
        self.marked = False    # this run wrote RUN "open" (its close writes "closed")

    @property
    def active(self):
        return self.isolating or self.pending is not None

    def opened(self):
        """See how the last run ended and mark this one open, in one commit before anything
        runs: pending records after a clean stop are started again as they are; after a crash
        they are suspects (and a trial that crashed is narrowed down, or its record charged)."""
        core = self.core
        log = core.log
        if not core.tracking:
            return
        crashed = log.get_meta(RUN) == "open"
        stored = log.get_meta(ISOLATION)
        log.put_meta(RUN, "open")
        self.marked = True
        if stored is None and not crashed:
            if len(log):
                self.pending = iter(log.iter_pending())
            log.commit()
            return
        pending = log.pending_seqs()
        old, known, trial = stored or ([], 0, 0)
        before = set(old)
        self.suspects = [seq for seq in old if seq in pending] + sorted(pending - before)
        self.known = sum(1 for seq in old[:known] if seq in pending)
        self.trial = trial
        self.isolating = True
        if crashed:
            group = [seq for seq in old[:trial] if seq in pending] if trial else sorted(pending - before)
            self._crashed(group, RESTARTED)
        self.trial = 0
        self._next_trial()

    def worker_died(self, in_flight, held, cause):
        """A worker process died: the records `in_flight` are the suspects a crash happened among;
        `held` (completed, their epoch lost with the worker) run again as suspects too."""
        if not self.core.tracking:
            return
        for record in itertools.chain(in_flight, held):
            self.records[record.seq] = record
        if not self.isolating:
            self.isolating, self.suspects, self.known, self.trial = True, [], 0, 0
        listed = set(self.suspects)
        self.suspects += [r.seq for r in itertools.chain(in_flight, held) if r.seq not in listed]
        self.to_start = None  # the trial's records not started stay suspects
        self._crashed(sorted(r.seq for r in in_flight), cause)
        # the next trial starts from step(), once nothing is in flight and the epoch rolled back

    def step(self):
        """Start what is due: a batch of the trial's records, the next trial once the one before
        passed, or a batch of the records pending after a clean stop. True if it did."""
        core = self.core
        if self.isolating:
            if self.to_start is not None:
                return self._start_some("to_start")
            if core.trees or core.unlogged or core.executor.busy() or not core.completion.settled():
                if core.trees and not self.flushed and not core.executor.busy():
                    self.flushed = True  # only inputs a bolt holds (chunk) keep the trial open
                    return core.finish.flush_holders()
                return False  # the trial runs
            if self.trial:
                done, self.suspects = self.suspects[:self.trial], self.suspects[self.trial:]
                for seq in done:
                    self.records.pop(seq, None)
                self.known = max(0, self.known - self.trial)
                self.trial = 0
            self._next_trial()
            return True
        if self.pending is not None:
            return self._start_some("pending")
        return False

    def _crashed(self, group, cause):
        """A crash happened while the records `group` (seqs, in order) were in flight: charge
        the record that ran alone, or make the group the known culprits' first."""
        core = self.core
        self.crashes += 1
        charged = None
        if self.trial == 1 and group == self.suspects[:1]:
            charged = group[0]
            self._charge(charged, cause)
        elif group:
            first = set(group)
            self.suspects = group + [seq for seq in self.suspects if seq not in first]
            self.known = len(group)
        core.logger.warning("recovery.crashed", topology=core.topology.name, cause=cause, in_flight=len(group),
                            trial=self.trial, suspects=len(self.suspects), charged=charged)
        self.trial = 0

    def _charge(self, seq, cause):
        core = self.core
        found = self._fetch([seq])
        record = next(found, None)
        if record is None:  # no longer pending
            del self.suspects[0]
            self.known = 0
            return
        if core.retries.policy.delay(record.attempts) is not None:
            record.attempts += 1
            core.log.append(record)  # committed with the trial that runs it alone again
            self.known = 1
            return
        del self.suspects[0]
        self.records.pop(seq, None)
        self.known = 0
        core.retries.give_up(record, f"{cause} while this record ran alone (attempt {record.attempts})",
                             None, None, None)

    def _next_trial(self):
        core, log = self.core, self.core.log
        if not self.suspects:
            self.isolating = False
            self.records.clear()
            log.put_meta(ISOLATION, None)
            log.commit()
            core.logger.info("run.recovered", topology=core.topology.name, replayed=core.result.recovered,
                             trials=self.trials, crashes=self.crashes)
            return
        self.trial = max(1, self.known // 2) if self.known else len(self.suspects)
        self.trials += 1
        log.put_meta(ISOLATION, [self.suspects, self.known, self.trial])
        log.commit()
        core.logger.info("recovery.isolating", topology=core.topology.name, suspects=len(self.suspects),
                         known=self.known, trial=self.trial)
        self.to_start = self._fetch(self.suspects[:self.trial])
        self.flushed = False

    def _fetch(self, seqs):
        """The records of `seqs` still pending (those known here first, else from the log)."""
        for i in range(0, len(seqs), CHUNK):
            chunk = seqs[i:i + CHUNK]
            here = self.records
            found = {r.seq: r for r in self.core.log.records([seq for seq in chunk if seq not in here])}
            for seq in chunk:
                record = here.get(seq) or found.get(seq)
                if record is not None:
                    yield record

    def _start_some(self, name):
        core = self.core
        if not core.completion.admits() or (core.max_pending is not None and core.trees_in_flight() >= core.max_pending):
            return False
        batch = list(itertools.islice(getattr(self, name), CHUNK))
        if not batch:
            setattr(self, name, None)
            if name == "pending":
                core.logger.info("run.recovered", topology=core.topology.name, replayed=core.result.recovered)
            return True
        for record in batch:
            if record.spout not in core.tasks_by_component:
                raise ConsecutionError(f"pending record {record.seq} comes from {record.spout!r}, "
                                       "which this topology does not have")
        core.result.recovered += len(batch)
        core._start_all(batch)
        return True
