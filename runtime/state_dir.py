"""A run's state directory: its lock, its durable log, its topology check, the state of its
stateful bolts; and what a run leaves there when it ends."""
import os
import shutil
import time

import lmdb

from consecution.storage import DurableLog, StateLock, StorageError

from .recovery import RUN
from .state import state_for, state_where

ENDED = "ended"  # meta: when the last run closed its log (wall time), for `run.started`


def open_state(core):
    """Lock the state directory and open the durable log there (reliability "replay" or
    "track"), refusing another topology (the log says so)."""
    if core.state_dir is None:
        return
    core.lock = StateLock(core.state_dir).acquire()
    if core.fresh:
        _start_over(core)
    if not core.durable:
        return
    topology = core.topology
    try:
        if core.reliability == "track":  # failures only: nothing pending is replayed
            core.log = DurableLog(core.state_dir, durability=core.durability, keep_pending=False,
                                  keep_dead=core.settings["track_last"])
        else:
            core.log = DurableLog(core.state_dir, durability=core.durability)
        changed = core.log.check_topology(topology.name, topology.fingerprint(), topology.shape())
        core.log.declare_outputs({name: topology.output_fields(name) for name in topology.outputs})
    except BaseException:
        close_state(core)
        raise
    if changed is not None:
        core.logger.warning("topology.changed", topology=topology.name, state_dir=core.state_dir,
                            fingerprint=topology.fingerprint())


def _start_over(core):
    """--fresh: delete the log (the lock is held), saying what it held. Registrations of the
    consumers of named outputs stay: the outputs are made again with new ids, which tells
    their consumers that they were recreated (storage/outputs.py)."""
    where = os.path.join(core.state_dir, "log")
    if not os.path.isdir(where):
        return
    held = {}
    try:
        log = DurableLog(core.state_dir, readonly=True)
        try:
            held = {"pending": len(log), "dead_letters": log.dead_count(), "positions": len(log.positions()),
                    "state_rows": log.state_count()}
        finally:
            log.close()
    except (StorageError, lmdb.Error) as exc:  # a damaged log is deleted all the same
        held = {"unreadable": str(exc)}
    shutil.rmtree(where)
    core.logger.warning("state.cleared", topology=core.topology.name, state_dir=core.state_dir, **held)


def resumed_from(core):
    """What this run takes over from earlier ones, for `run.started`: spout positions, pending
    records, state rows, an unfinished finish phase, and when the last run ended; {} when it
    starts afresh."""
    log = core.log
    if not log.durable:
        return {}
    resumed = {"positions": len(log.positions()), "pending": len(log), "state_rows": log.state_count(),
               "finished_tasks": len(core.finish.marks)}
    resumed = {name: n for name, n in resumed.items() if n}
    ended = log.get_meta(ENDED)
    if resumed and ended is not None:
        resumed["last_run"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended))
    return resumed


def load_state(core):
    """Give each stateful bolt task its checkpointed state (process mode: to the workers)."""
    for task_id, task in core.stateful.items():
        if task_id in core.named_outputs.writers:  # an output's writer starts each run with no entries
            if task.obj is not None:  # (a worker process makes its own)
                task.obj.state = state_for(task.obj, None, state_where(task), core.epochs)
            continue
        data = core.log.load_state(task.component, task.context.task_index)
        if task.obj is None:
            core.initial_state[task_id] = data
        else:
            task.obj.state = state_for(task.obj, data, state_where(task), core.epochs)


def close_state(core, clean=True):
    """Commit what is buffered (and, when `clean`, that this run closed its log: recovery.py),
    count what is pending and dead, close the log, unlock."""
    try:
        if clean and core.recovery.marked:
            core.log.put_meta(RUN, "closed")
        if core.log.durable:
            core.log.put_meta(ENDED, core.wall())
        core.log.commit()
        core.result.pending = len(core.log)
        core.result.dead_letters = core.log.dead_count()
        core.log.close()
    finally:
        if core.lock is not None:
            core.lock.release()
            core.lock = None
