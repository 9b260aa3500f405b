"""Single, thread, process and ray mode side by side, in the same run.

    python -m benchmarks.modes [--tuples N] [--workers N] [--no-ray]

1. CPU-bound: each tuple is hashed 20,000 times (sha256) by a bolt of 4 tasks.
   Target on 2 cores: process mode at least 1.7x single mode in every run (issue 13).
2. I/O-bound: each tuple waits 10 ms (time.sleep) in a bolt of 8 tasks.
   Target: thread mode at least 1.8x single mode.
Ray mode (when Ray is installed) runs on a local test cluster of two nodes of one CPU each
beside a head node without CPUs, on loopback: what ray mode costs against process mode on one
machine. Figures are tuples/s, best of 3; the ratios are against single mode measured in this
run, and ray mode's also against process mode.
"""
import argparse
import hashlib
import os
import time

from consecution import Topology
from consecution.runtime import Scheduler
from consecution.runtime.logs import configure


def hash_it(n):
    digest = str(n).encode()
    for _ in range(20_000):
        digest = hashlib.sha256(digest).digest()
    return (n, digest.hex()[:16])


def wait_a_bit(n):
    time.sleep(0.01)
    return n


def topology(fn, tuples, parallelism):
    t = Topology("modes", reliability="replay")
    t.spout("numbers", range(tuples))
    t.bolt("work", fn, parallelism=parallelism).shuffle_grouping("numbers")
    return t


def rate(fn, tuples, parallelism, mode, workers, **options):
    best = None
    for _ in range(3):
        scheduler = Scheduler(topology(fn, tuples, parallelism), mode=mode, workers=workers, **options)
        started = time.perf_counter()
        result = scheduler.run()
        elapsed = time.perf_counter() - started
        assert result.completed == tuples, result
        best = elapsed if best is None else min(best, elapsed)
    return tuples / best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tuples", type=int, default=400)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--no-ray", action="store_true", help="leave ray mode out")
    args = p.parse_args(argv)
    configure("json", level="error")
    cluster = None if args.no_ray else two_node_cluster()
    print(f"{os.cpu_count()} cores; process mode with {args.workers} workers, thread mode with 8 threads")
    workloads = [(hash_it, 4, f"CPU-bound (sha256 x 20,000 per tuple, {args.tuples} tuples)", "process", 1.7),
                 (wait_a_bit, 8, f"I/O-bound (10 ms sleep per tuple, {args.tuples} tuples)", "thread", 1.8)]
    for fn, parallelism, title, target_mode, goal in workloads:
        rates = {mode: rate(fn, args.tuples, parallelism, mode, workers)
                 for mode, workers in (("single", None), ("thread", 8), ("process", args.workers))}
        if cluster is not None:
            rates["ray"] = rate(fn, args.tuples, parallelism, "ray", args.workers, ray_address=cluster.address)
        print(title)
        for mode, value in rates.items():
            ratio = "" if mode == "single" else f"   {value / rates['single']:4.2f}x single"
            if mode == "ray":
                ratio += f"   {value / rates['process']:4.2f}x process"
            target = f"   (target >= {goal}x)" if mode == target_mode else ""
            print(f"  {mode:<8} {value:8.1f} tuples/s{ratio}{target}")
    if cluster is not None:
        import ray
        ray.shutdown()
        cluster.shutdown()


def two_node_cluster():
    """A local Ray test cluster on loopback: a head without CPUs, two nodes of one CPU each;
    None without Ray."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from ray.cluster_utils import Cluster
    except ImportError:
        print("(ray mode left out: Ray is not installed)")
        return None
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    return cluster

if __name__ == "__main__":
    main()
