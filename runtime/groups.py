"""Record groups: the records of one log commit queued at once for a plain-function task in a
worker (process and ray mode), tracked by the acker as one tree.

Each record of a group keeps its own tree root: what its tuples carry, what a failure names,
what the record is found by (`core.trees`). The acker holds one entry for the whole group
(`Acker.init_group`), whose XOR everything done for its records settles:

  - a worker acks each part of a group it ran (a frame's share) once: the part's id XOR what
    its records queued (`Chains.run_roots`); a record that raises is failed alone, and what
    it queued before it raised is in that XOR all the same;
  - a worker that sends a group's tuples on through a crossing makes the group the ack
    target of their runs (`EventSink._runs`), so the receiver acks the group too;
  - any other ack of a member's root (a bolt that acks by hand, a tuple queued for a task
    that is not fused) is resolved to its group here (`resolve`), and a failed
    tuple's unacked XOR (`settle`, carried by the failure) goes to its group as well.

An ack that names several roots (a tuple anchored to several inputs) counts once per distinct
group or tree it resolves to: two members of one group must not cancel each other's ids out.

The group completes when its XOR returns to 0; its members still in `core.trees` complete
together (one that failed alone went to its retry or dead letter at once). A group that times
out fails every member still in flight; a dead worker fails all of them (the recovery runs
them again). The acker counts a group as its records, one less per member that failed alone
(`Acker.shrink`), so max_pending holds per record.

What this saves: the supervisor handles two or three acks per commit and worker instead of
one or two per record, and a commit's records leave the log together, in one delete.
"""
from itertools import repeat

from consecution.acker import new_id
from consecution.storage.pending import drop


class Groups:
    """The groups in flight: their members, and each member's group."""

    def __init__(self, acker):
        self.acker = acker
        self.members = {}   # group id -> [member root, ...]
        self.group_of = {}  # member root -> group id

    def start(self, roots, spout_task, now):
        """A new group of the trees `roots` (started already, in `core.trees`), from `spout_task`:
        its id, which is also the id of its first tuple (the acker's value at start)."""
        group = new_id()
        self.members[group] = roots
        self.group_of.update(zip(roots, repeat(group)))
        self.acker.init_group(group, len(roots), spout_task, now)
        return group

    def resolve(self, acks, several=()):
        """The acks [root, xor, ...] and [[roots, xor], ...] (acks naming several roots) as
        one flat [target, xor, ...] with one entry per tree or group: each member's root
        replaced by its group, an ack of several roots counted once on each distinct target.
        Combined before the acker sees them, so that no part of a worker's reply can bring a
        target to 0 that the rest of it takes away from 0 again."""
        get, combined = self.group_of.get, {}
        for roots, xor in several:
            for target in self.targets(roots):
                combined[target] = combined.get(target, 0) ^ xor
        for i in range(0, len(acks), 2):
            target = get(acks[i], acks[i])
            combined[target] = combined.get(target, 0) ^ acks[i + 1]
        out = []
        for target, xor in combined.items():
            if xor:
                out += (target, xor)
        return out

    def targets(self, roots):
        """The distinct trees and groups that an ack of `roots` goes to, in order."""
        get = self.group_of.get
        return list(dict.fromkeys(get(root, root) for root in roots))

    def settle(self, roots, xor):
        """[group, xor, ...] for the groups among `roots` (a failed tuple's XOR left unacked)."""
        out = []
        for target in self.targets(roots):
            if target in self.members:
                out += (target, xor)
        return out

    def shrink(self, root):
        """Member `root` failed alone: its group counts one record less."""
        group = self.group_of.get(root)
        if group is not None:
            self.acker.shrink(group)

    def expand(self, roots):
        """`roots` (completed or expired) with each group's id replaced by its members, the
        group forgotten."""
        out = []
        for root in roots:
            if root in self.members:
                out += self.forget(root)
            else:
                out.append(root)
        return out

    def forget(self, group):
        """The members of `group`, which is forgotten (done, failed or expired)."""
        roots = self.members.pop(group)
        drop(self.group_of, roots)
        return roots

    def fail_all(self):
        """Every group leaves the acker (a worker died: its records go to the recovery)."""
        for group in self.members:
            self.acker.fail(group)
        self.members.clear()
        self.group_of.clear()
