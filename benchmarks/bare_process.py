"""Calibration for process mode: W on two worker processes with no framework, against
consecution's replay in single mode, in one run.

    python -m benchmarks.bare_process [--lines N]

What the bare version keeps of the real work: each batch of 512 lines is logged in LMDB before
it is handed out and deleted when done (no fsync, as durability "kill"); the user's calls are
the same (the `split` generator, `lower`, `Count.process` on a reused `Tuple`); words are
routed by a fields grouping (crc32 of the word, remembered per word). What it leaves out is
what process mode would have to do in about the same cost to reach issue 13's 1.4x: a worker
sends the other worker's words straight to it (a pipe between workers, not through the
supervisor), and acks go per batch and worker (two per batch), not per record; no failure
isolation, no retries, no recovery. The ratio it prints is an upper bound for the design, not
a figure of consecution.
"""
import argparse
import collections
import os
import queue
import shutil
import tempfile
import threading
import time
import zlib

import lmdb
import msgpack
import multiprocess
from multiprocess.connection import wait

from consecution.runtime.logs import configure
from consecution.topology import Tuple

from .__main__ import lower, make_lines, plain, run_consecution, split

BATCH = 512


class Count:
    def __init__(self):
        self.counts = collections.Counter()

    def process(self, tup):
        self.counts[tup[0]] += 1


def worker(k, supervisor, from_peer, to_peer):
    """Worker k: counts its words of each batch it gets and sends the rest to the other
    worker; counts what the other worker sends; reports each part done to the supervisor."""
    count, memo = Count(), {}
    process = count.process
    tup = Tuple((), "default", "lower", 0, 0, (), None)
    outbox = queue.SimpleQueue()  # a thread writes to the peer: two workers never block on each other

    def pump():
        for message in iter(outbox.get, None):
            to_peer.send_bytes(message)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    stopped = peer_done = False
    while not (stopped and peer_done):
        for conn in wait([supervisor, from_peer]):
            message = conn.recv_bytes()
            if conn is supervisor and message == b"stop":
                stopped = True
                outbox.put(b"end")
            elif conn is supervisor:
                batch, lines = msgpack.unpackb(message)
                theirs = []
                for line in lines:
                    for word in split(line):
                        value = lower(word)
                        task = memo.get(value)
                        if task is None:
                            task = memo[value] = zlib.crc32(value.encode()) % 2
                        if task == k:
                            tup.values = (value,)
                            process(tup)
                        else:
                            theirs.append(value)
                outbox.put(msgpack.packb([batch, theirs]))
                supervisor.send_bytes(msgpack.packb([batch, "own"]))
            elif message == b"end":
                peer_done = True
            else:
                batch, words = msgpack.unpackb(message)
                for value in words:
                    tup.values = (value,)
                    process(tup)
                supervisor.send_bytes(msgpack.packb([batch, "forwarded"]))
    outbox.put(None)
    pumping.join()
    supervisor.send_bytes(msgpack.packb(dict(count.counts)))


def run_bare(lines):
    """(counts, seconds): W through the supervisor and two workers."""
    folder = tempfile.mkdtemp(prefix="consecution-bare-")
    env = lmdb.open(folder, map_size=2**30, sync=False, metasync=False)
    ctx = multiprocess.get_context("fork")
    a_in, b_out = ctx.Pipe(False)
    b_in, a_out = ctx.Pipe(False)
    conns, procs = [], []
    for k, (from_peer, to_peer) in enumerate([(a_in, a_out), (b_in, b_out)]):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(k, theirs, from_peer, to_peer), daemon=True)
        proc.start()
        conns.append(mine)
        procs.append(proc)
    started = time.perf_counter()
    parts_left, in_flight, batch = {}, [0, 0], 0

    def receive(timeout):
        for conn in wait(conns, timeout):
            done, part = msgpack.unpackb(conn.recv_bytes())
            if part == "own":
                in_flight[conns.index(conn)] -= 1
            parts_left[done] -= 1
            if not parts_left[done]:
                del parts_left[done]
                with env.begin(write=True) as txn:
                    txn.delete(done.to_bytes(8, "big"))

    for start in range(0, len(lines), BATCH):
        k = 0 if in_flight[0] <= in_flight[1] else 1
        while in_flight[k] >= 2:  # at most two batches in flight per worker
            receive(None)
            k = 0 if in_flight[0] <= in_flight[1] else 1
        batch += 1
        data = msgpack.packb([batch, lines[start:start + BATCH]])
        with env.begin(write=True) as txn:
            txn.put(batch.to_bytes(8, "big"), data)
        parts_left[batch] = 2
        in_flight[k] += 1
        conns[k].send_bytes(data)
        receive(0)
    while parts_left:
        receive(None)
    for conn in conns:
        conn.send_bytes(b"stop")
    counts = collections.Counter()
    for conn in conns:
        counts.update(msgpack.unpackb(conn.recv_bytes()))
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join()
    env.close()
    shutil.rmtree(folder)
    return counts, elapsed


def main(argv=None):
    p = argparse.ArgumentParser(description="process mode's bound: W on two bare worker processes")
    p.add_argument("--lines", type=int, default=200_000)
    args = p.parse_args(argv)
    configure("json", level="error")
    lines = make_lines(args.lines)
    expected = plain(lines)
    best = {}
    for _ in range(3):
        counts, elapsed = run_bare(lines)
        assert counts == expected, "bare: wrong counts"
        best["bare, 2 workers"] = min(best.get("bare, 2 workers", elapsed), elapsed)
        started = time.perf_counter()
        assert run_consecution(lines, "replay", "single") == expected
        elapsed = time.perf_counter() - started
        best["replay, single"] = min(best.get("replay, single", elapsed), elapsed)
    words = args.lines * 10
    print(f"workload W: {args.lines:,} lines; M words/s, best of 3; {os.cpu_count()} cores")
    for name, seconds in best.items():
        print(f"  {name:<18} {words / seconds / 1e6:6.2f} M words/s")
    print(f"  bare, 2 workers / replay, single: {best['replay, single'] / best['bare, 2 workers']:.2f}x "
          "(an upper bound for process mode's design; issue 13 asks 1.4x of process mode itself)")


if __name__ == "__main__":
    main()
