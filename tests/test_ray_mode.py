"""Ray mode on real Ray: a node that leaves the cluster mid-run, an actor killed, the errors a
user meets without Ray or without a cluster, and Ray kept on loopback. (The behaviour tests of
the other files run in ray mode too, on the session's shared local Ray.)"""
import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from consecution import Bolt, Topology
from consecution.runtime import Scheduler

ray = pytest.importorskip("ray")


class Count(Bolt):
    """Exactly-once state: how many numbers of each residue mod 3, and their sum."""
    stateful = True

    def process(self, tup):
        n = tup[0]
        key = n % 3
        self.state[key] = self.state.get(key, 0) + n


def slow_double(n):
    time.sleep(0.003)
    return n * 2


def counting(n):
    t = Topology("faults", max_retries=5, retry_backoff=0, message_timeout=20)
    t.spout("numbers", range(n))
    t.bolt("double", slow_double, parallelism=2).shuffle_grouping("numbers")
    t.bolt("count", Count(), parallelism=2).fields_grouping("double", "value")
    return t


def expected(n):
    totals = {}
    for i in range(n):
        totals[(2 * i) % 3] = totals.get((2 * i) % 3, 0) + 2 * i
    return totals


def state_totals(state_dir):
    """The committed state of the count tasks, merged: {residue: sum}."""
    from consecution.storage import DurableLog
    log = DurableLog(state_dir)
    try:
        merged = {}
        for task in range(2):
            for key, value in log.load_state("count", task).items():
                merged[key] = merged.get(key, 0) + value
        return merged
    finally:
        log.close()


def three_node_cluster():
    """A Ray test cluster on loopback: a head without CPUs (so no actor lands there) and two
    worker nodes of one CPU each; (cluster, [worker nodes]). For a process of its own."""
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(2)]
    cluster.wait_for_nodes()
    return cluster, nodes


def test_revenue_on_a_cluster_that_loses_a_node_and_its_driver_killed_ends_exact(tmp_path):
    """examples/revenue.py (stateful) in ray mode on a three-node test cluster: a head without
    CPUs (so no actor lands there) and two worker nodes. While tuples flow, the node of its
    actor (revenue's tasks fit one) leaves the cluster: the driver fails that actor's trees at once and starts it again on
    the node that remains, from the last checkpoint. Then the driver is SIGKILLed at random
    moments and started again with the same command, on the cluster that outlives it. The
    totals and counts are those of a run without faults, with no dead letter. (A process of
    its own holds the cluster: this one holds the session's Ray.)"""
    script = tmp_path / "revenue_cluster.py"
    script.write_text(textwrap.dedent(f'''
        import json, os, random, sys, time
        from pathlib import Path
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from support import EXAMPLES, run_killing, start_cli
        from test_ray_mode import three_node_cluster

        cluster, nodes = three_node_cluster()
        tmp = Path({str(tmp_path)!r})
        log = tmp / "revenue.log"

        def events(name):
            lines = log.read_text().splitlines() if log.exists() else []
            return [json.loads(line) for line in lines if f'"event": "{{name}}"' in line]

        def wait_for(name, count):
            deadline = time.monotonic() + 120
            while len(events(name)) < count:
                assert time.monotonic() < deadline, ("no", name, log.read_text()[-3000:])
                time.sleep(0.05)
            return events(name)

        env = {{"REVENUE_PAYMENTS": "3000", "REVENUE_DELAY": "0.002", "REVENUE_REPORT": str(tmp / "report.json")}}
        args = ["run", os.path.join(EXAMPLES, "revenue.py"), "--mode", "ray", "--workers", "2",
                "--log-format", "json", "--ray-address", cluster.address]
        first = start_cli(args, tmp, env, log=log.name)
        placed = wait_for("worker.placed", 1)  # revenue's tasks fit one worker
        time.sleep(1.0)  # tuples flow
        victim = next(node for node in nodes if node.node_id == placed[0]["node"])
        cluster.remove_node(victim, allow_graceful=False)
        died = wait_for("worker.died", 1)[0]
        again = wait_for("worker.placed", 2)[1]
        first.kill()
        first.wait(30)
        killed = run_killing({{"revenue": args}}, tmp, env, 2, random.Random(), timeout=300,
                             window=(1.0, 3.0))["revenue"]
        print(json.dumps({{"killed": killed, "victim": victim.node_id, "died": died["worker"],
                          "again": again, "placed": placed[0]}}))
        cluster.shutdown()
    '''))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-4000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["killed"] == 2, outcome
    assert outcome["died"] == outcome["placed"]["worker"] == outcome["again"]["worker"], outcome
    assert outcome["again"]["node"] != outcome["victim"], outcome  # started again on the node that remains
    from test_scenarios import expected_revenue
    from test_state import revenue_payments
    totals = json.loads((tmp_path / "report.json").read_text())["totals"]
    figures = {name: {key: row["cents"] for key, row in rows.items()} for name, rows in totals.items()}
    assert figures == expected_revenue(revenue_payments(3000))
    assert totals["revenue"]["revenue"]["count"] == 3000
    status = subprocess.run([sys.executable, "-m", "consecution", "status", "--state-dir", ".consecution/revenue",
                             "--json"], cwd=tmp_path, capture_output=True, text=True)
    info = json.loads(status.stdout)
    assert info["pending"] == 0 and info["dead_letters"] == 0, info


def test_an_actor_killed_mid_run_is_started_again_and_totals_stay_exact(tmp_path, ray_cluster):
    scheduler = Scheduler(counting(1500), mode="ray", workers=2, state_dir=str(tmp_path / "state"))
    out = {}
    runner = threading.Thread(target=lambda: out.update(result=scheduler.run()))
    runner.start()
    deadline = time.monotonic() + 60
    # mid-run: trees in flight. Not "some completed" as well: with stateful bolts trees complete
    # at checkpoints, in big steps, and the spouts may have started every record at once (what
    # workers forward each other leaves room for them), so the completed count can jump from 0
    # to all, and the test waited for a moment that never came
    while not (scheduler.result.roots >= 300 and scheduler.trees) and time.monotonic() < deadline:
        time.sleep(0.005)
    first = scheduler.executor.procs[1].actor
    ray.kill(first)
    runner.join(120)
    result = out["result"]
    assert result.status == "complete" and result.dead_letters == 0 and result.given_up == 0, result.summary()
    assert result.recovered > 0  # the dead actor's trees ran again, isolated
    assert state_totals(str(tmp_path / "state")) == expected(1500)


def test_deliveries_between_actors_go_from_actor_to_actor_and_counts_are_exact(ray_cluster):
    """Behind a fields grouping about half the numbers cross to the other actor: each blob is
    pushed to it directly, and the driver only queues its key (never the blob's bytes)."""
    scheduler = Scheduler(counting(600), mode="ray", workers=2, collect=True)
    result = scheduler.run()
    assert result.completed == 600 and scheduler.executor.pushed > 0
    assert sorted(v[0] for v in result.emitted("double")) == [2 * n for n in range(600)]


def test_ray_keeps_to_loopback(ray_cluster):
    """Every socket of the session's Ray listens and connects on 127.0.0.1 only."""
    Scheduler(counting(20), mode="ray", workers=2).run()
    listening = subprocess.run(["ss", "-tnlpH"], capture_output=True, text=True, check=True).stdout
    connected = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in (listening + connected).splitlines()
            if any(name in line for name in ("raylet", "gcs_server", "ray::", "plasma"))]
    assert ours, "no Ray process found by ss"
    elsewhere = [line for line in ours if not _on_loopback(line)]
    assert elsewhere == [], elsewhere


def _on_loopback(line):
    """An `ss -H` line whose local address, and peer unless it is a listener's wildcard, is on
    127.0.0.0/8 (or ::1)."""
    local, peer = line.split()[3:5]
    hosts = [local] if line.startswith("LISTEN") else [local, peer]
    return all(h.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:").startswith("127.")
               or h.rsplit(":", 1)[0].strip("[]") == "::1" for h in hosts)


SMALL = """
from consecution import Topology
topology = Topology("small")
topology.spout("numbers", range(3))
topology.bolt("double", lambda n: n * 2).shuffle_grouping("numbers")
"""


def test_without_ray_or_without_a_cluster_the_run_is_exit_2_saying_what_to_do(tmp_path):
    (tmp_path / "small.py").write_text(SMALL)
    hidden = tmp_path / "no-ray"
    (hidden / "ray").mkdir(parents=True)  # a `ray` that cannot be imported, as when it is not installed
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    command = [sys.executable, "-m", "consecution", "run", "small.py", "--mode", "ray"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(hidden)))
    assert done.returncode == 2 and "pip install 'consecution[ray]'" in done.stderr, done.stderr
    started = time.monotonic()
    done = subprocess.run(command + ["--ray-address", "127.0.0.1:9"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "cannot reach the Ray cluster at 127.0.0.1:9" in done.stderr, done.stderr
    assert time.monotonic() - started < 30
