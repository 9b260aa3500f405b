"""What waits in the supervisor for a worker's next frame (process and ray mode).

    per worker k    deliveries to its tasks, record groups for its tasks (runtime/groups.py),
                    and blobs of deliveries other workers sent its tasks ([count, blob])
    per shuffle     deliveries and record groups any task of the subscriber may take (a
                    shuffle from the supervisor: spouts, replays, the failure stream), bound to
                    a task of whichever worker takes them first (Storm's load-aware shuffle, by
                    pull: a worker on a busier core asks less often, so it gets less)

`take(k, budget)` fills worker k's next frame: its deliveries, then the shuffles' (up to
`budget` deliveries), then its record groups and the shuffles' (up to what is left of the
budget, a group split where it ends: the ids of a group's parts XOR to the group's id), then
forwarded blobs (up to FORWARD deliveries). The executor (runtime/process.py) decides when a
worker gets a frame and how big its budget is, and counts what is outstanding.
"""
import collections
import itertools

from consecution.acker import new_id

FORWARD = 4096  # forwarded deliveries per frame, at most


class Frames:
    """The queues of what waits for `n` workers; `placement`: task id -> worker."""

    def __init__(self, placement, n):
        self.placement = placement
        self.pending = [[] for _ in range(n)]                      # per worker: deliveries
        self.grouped = [collections.deque() for _ in range(n)]     # per worker: record groups
        self.forwarded = [collections.deque() for _ in range(n)]  # per worker: [count, blob]
        self.shared_queues = []  # per shuffle from here: deliveries any of its tasks may take
        self.shared_groups = []  # per shuffle from here: record groups any of its tasks may take
        self.shared_tasks = []   # per shuffle from here: per worker, its tasks there (a cycle)

    def shared(self, tasks):
        """A stand-in task id (< 0) for "any of `tasks`": a shuffle from the supervisor."""
        n = len(self.pending)
        per_worker = [[t for t in tasks if self.placement[t] == k] for k in range(n)]
        self.shared_queues.append(collections.deque())
        self.shared_groups.append(collections.deque())
        self.shared_tasks.append([itertools.cycle(mine) if mine else None for mine in per_worker])
        return -len(self.shared_queues)

    def delivery(self, task_id, values, stream, source, source_task, tid, roots):
        if task_id < 0:  # any task of a shuffle: the worker that asks first
            self.shared_queues[-1 - task_id].append((values, stream, source, source_task, tid, roots))
        else:
            self.pending[self.placement[task_id]].append((task_id, values, stream, source, source_task, tid, roots))

    def records(self, group):
        """A record group, [task (or a shuffle's stand-in), source, source task, stream,
        values, roots, group id, part id, flat] (see ProcessExecutor.send_records)."""
        task_id = group[0]
        if task_id < 0:
            self.shared_groups[-1 - task_id].append(group)
        else:
            self.grouped[self.placement[task_id]].append(group)

    def forward(self, k, count, blob):
        self.forwarded[k].append((count, blob))

    def take(self, k, budget):
        """Worker k's next frame: (deliveries, record groups, blobs, how many deliveries and
        records in all, how many of them forwarded); three empty lists when nothing waits."""
        batch = self._deliveries(k, budget)
        groups, grouped = self._groups(k, budget - len(batch))
        forwarded, blobs, count = self.forwarded[k], [], 0
        while forwarded and count < FORWARD:
            blob = forwarded.popleft()
            blobs.append(blob)
            count += blob[0]
        return batch, groups, blobs, len(batch) + grouped + count, count

    def put_back(self, k, batch, groups, blobs):
        """A frame that could not be sent: its parts first in line again."""
        self.pending[k][:0] = batch
        self.grouped[k].extendleft(reversed(groups))
        self.forwarded[k].extendleft(reversed(blobs))

    def drop(self, k):
        """Forget what waits for worker k (it died: the recovery runs its trees again):
        (deliveries and records dropped, of which forwarded)."""
        forwarded = sum(count for count, _ in self.forwarded[k])
        lost = len(self.pending[k]) + sum(len(group[4]) for group in self.grouped[k]) + forwarded
        self.pending[k].clear()
        self.grouped[k].clear()
        self.forwarded[k].clear()
        return lost, forwarded

    def _deliveries(self, k, budget):
        """Deliveries addressed to worker k's tasks, then those of shuffles any of its tasks
        may take, up to `budget`."""
        pending = self.pending[k]
        batch = pending[:budget]
        del pending[:budget]
        for queue, tasks in zip(self.shared_queues, self.shared_tasks):
            mine = tasks[k]
            while queue and mine is not None and len(batch) < budget:
                batch.append((next(mine), *queue.popleft()))
        return batch

    def _groups(self, k, budget):
        """Record groups for worker k, up to `budget` records: its own, then those of shuffles
        any of its tasks may take (a group split where the budget ends). (groups, how many
        records they hold)."""
        taken, n = [], 0
        sources = [(self.grouped[k], None)] + [(queue, tasks[k]) for queue, tasks in
                                               zip(self.shared_groups, self.shared_tasks) if tasks[k] is not None]
        for queue, mine in sources:
            while queue and n < budget:
                group = queue[0]
                room = budget - n
                if len(group[4]) > room:  # the rest stays for the next frame
                    part_id = new_id() if group[6] else 0
                    part = group[:4] + [group[4][:room], group[5][:room], group[6], part_id, group[8]]
                    group[4], group[5], group[7] = group[4][room:], group[5][room:], group[7] ^ part_id
                    group = part
                else:
                    queue.popleft()
                if mine is not None:
                    group = [next(mine)] + group[1:]
                taken.append(group)
                n += len(group[4])
        return taken, n
