"""Prometheus metrics of a run (`--metrics-port`, `Topology(metrics_port=...)`), served with
prometheus_client on its own thread.

The scheduler's thread takes a snapshot of the counts every REFRESH seconds (an observer's
tick, observe.py); a scrape reads the last snapshot, so a scrape never touches the core's
state while it changes. Per-task counts come from the run's Meter (meter.py): in process and
ray mode the workers' counts, as they ship them (every half second). Every metric has the
label `topology`.

    consecution_tuples_executed_total{component, task}    calls of user code on an input
    consecution_tuples_emitted_total{component, task}     tuples emitted (a spout's: records)
    consecution_tuples_failed_total{component, task}      calls that raised
    consecution_process_latency_seconds{component, task}  histogram of one call in 16 (sampled)
    consecution_spout_{acked,failed,replayed,given_up}_total{spout}   its records' trees
    consecution_spout_pending{spout}                       its trees in flight
    consecution_trees_pending, consecution_log_pending_records, consecution_log_size_bytes,
    consecution_dead_letters, consecution_checkpoint_duration_seconds (histogram),
    consecution_output_entries{output}, consecution_output_consumer_lag{output, consumer}
"""
import collections
import threading

from .errors import SetupError
from .meter import BUCKETS
from .observe import Observer, snapshot

REFRESH = 1.0  # seconds between two snapshots of the counts


def parse_address(text, where="--metrics-port"):
    """"PORT" or "HOST:PORT" -> (host, port); the host defaults to 127.0.0.1 (loopback: say
    0.0.0.0 to let a Prometheus on another machine scrape it)."""
    host, _, port = str(text).rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ValueError(f"{where}: {text!r} is not a port (or HOST:PORT)")
    return host.strip("[]") or "127.0.0.1", number


class Metrics(Observer):
    """Serves the metrics at http://HOST:PORT/metrics while the run runs."""

    counts = True  # the run keeps a Meter

    def __init__(self, address):
        """Listens at once (a port in use is a SetupError before the run starts); a scrape
        before the run started finds no metric."""
        from prometheus_client import start_http_server
        from prometheus_client.registry import CollectorRegistry
        try:
            self.host, self.port = parse_address(address)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
        self.snapshot = None
        self.lock = threading.Lock()
        self.due = 0.0
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self))
        try:
            self.server, self.thread = start_http_server(self.port, addr=self.host, registry=registry)
        except OSError as exc:
            raise SetupError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = self.server.server_port  # port 0: the one the system chose

    def started(self, core):
        super().started(core)
        self.refresh()
        core.logger.info("metrics.serving", topology=core.topology.name, url=f"http://{self.host}:{self.port}/metrics")

    def tick(self, now):
        if now >= self.due:
            self.due = now + REFRESH
            self.refresh()

    def finished(self, result):  # the log is closed by now: the server stops with the last snapshot
        self.close()

    def close(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def refresh(self):
        """Take the snapshot a scrape reads (on the scheduler's thread)."""
        core = self.core
        meter = core.meter
        tasks = [(task.component, task.context.task_index, task.task_id) for task in core.tasks]
        per_task = [(component, index, meter.executed[t], meter.emitted[t], meter.failed[t],
                     list(meter.latency[t]), meter.latency_sum[t]) for component, index, t in tasks]
        pending_by_spout = collections.Counter()
        for holder, n in core.in_flight():
            pending_by_spout[holder.spout] += n
        spouts = {}
        for task in core.spout_tasks:
            counts = spouts.setdefault(task.component, [0, 0, 0, 0, 0])
            counts[0] += meter.emitted[task.task_id]
        for name, (acked, failed, replayed, given_up) in meter.spouts.items():
            counts = spouts.setdefault(name, [0, 0, 0, 0, 0])
            counts[1:] = [acked, failed, replayed, given_up]
        log = core.log
        outputs, size = {}, None
        if log.durable:
            info = log.env.info()
            size = (info["last_pgno"] + 1) * log.env.stat()["psize"]
            for name, output in log.outputs().items():
                last = output["next"] - 1
                outputs[name] = (output.get("length", last - output["trimmed"]),
                                 {consumer: max(0, last - position) for consumer, position in log.consumers(name).items()})
        taken = {"tasks": per_task, "spouts": spouts, "pending_by_spout": dict(pending_by_spout),
                 "run": snapshot(core), "log_pending": len(log), "log_size": size, "outputs": outputs,
                 "checkpoints": (list(meter.checkpoints), meter.checkpoint_sum)}
        with self.lock:
            self.snapshot = taken


class _Collector:
    """What a scrape reads: the metric families of the last snapshot."""

    def __init__(self, metrics):
        self.metrics = metrics

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        with self.metrics.lock:
            s = self.metrics.snapshot
        if s is None:  # the run has not started
            return []
        topology = self.metrics.core.topology.name
        families = []

        def family(kind, name, doc, labels):
            f = kind(f"consecution_{name}", doc, labels=["topology", *labels])
            families.append(f)
            return f

        executed = family(CounterMetricFamily, "tuples_executed", "Calls of user code on an input, per task",
                          ["component", "task"])
        emitted = family(CounterMetricFamily, "tuples_emitted", "Tuples emitted, per task (a spout's: records)",
                         ["component", "task"])
        failed = family(CounterMetricFamily, "tuples_failed", "Calls of user code that raised, per task",
                        ["component", "task"])
        latency = family(HistogramMetricFamily, "process_latency_seconds",
                         "Time of one call of user code in 16 (sampled), per task", ["component", "task"])
        for component, index, n_executed, n_emitted, n_failed, buckets, seconds in s["tasks"]:
            labels = [topology, component, str(index)]
            emitted.add_metric(labels, n_emitted)
            if n_executed or n_failed or component not in s["spouts"]:
                executed.add_metric(labels, n_executed)
                failed.add_metric(labels, n_failed)
                latency.add_metric(labels, _cumulative(buckets), seconds)
        spout_families = [family(CounterMetricFamily, f"spout_{what}", f"Records of the spout {what.replace('_', ' ')}",
                                 ["spout"]) for what in ("emitted", "acked", "failed", "replayed", "given_up")]
        pending = family(GaugeMetricFamily, "spout_pending", "Trees of the spout's records in flight", ["spout"])
        for name, counts in s["spouts"].items():
            for f, n in zip(spout_families, counts):
                f.add_metric([topology, name], n)
            pending.add_metric([topology, name], s["pending_by_spout"].get(name, 0))
        run = s["run"]
        family(GaugeMetricFamily, "trees_pending", "Trees in flight", []).add_metric([topology], run["pending_trees"])
        family(GaugeMetricFamily, "dead_letters", "Dead letters in the log", []).add_metric([topology],
                                                                                               run["dead_letters"])
        family(GaugeMetricFamily, "log_pending_records", "Records pending in the replay log",
               []).add_metric([topology], s["log_pending"])
        if s["log_size"] is not None:
            family(GaugeMetricFamily, "log_size_bytes", "Bytes the replay log uses (LMDB pages)",
                   []).add_metric([topology], s["log_size"])
        buckets, seconds = s["checkpoints"]
        family(HistogramMetricFamily, "checkpoint_duration_seconds", "Checkpoints of stateful bolts' state",
               []).add_metric([topology], _cumulative(buckets), seconds)
        entries = family(GaugeMetricFamily, "output_entries", "Entries a named output keeps", ["output"])
        lag = family(GaugeMetricFamily, "output_consumer_lag", "Entries of a named output a consumer has not passed",
                     ["output", "consumer"])
        for name, (length, consumers) in s["outputs"].items():
            entries.add_metric([topology, name], length)
            for consumer, behind in consumers.items():
                lag.add_metric([topology, name, consumer], behind)
        return families


def _cumulative(counts):
    """Per-bucket counts -> Prometheus's cumulative [(le, count)]."""
    out, total = [], 0
    for bound, n in zip(BUCKETS, counts):
        total += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), total))
    return out
