"""Connectors against the real servers on this machine (Redis 6379, PostgreSQL 5432): a stream
read through a consumer group into PostgreSQL, killed with SIGKILL at random moments; servers
that go away mid-run; servers not there at start. Names are unique per test; what a test
creates it drops. Without a server the tests skip, unless CONSECUTION_REQUIRE_SERVICES=1 (CI)."""
import json
import os
import random
import signal
import socket
import time
import uuid

import pytest

from support import cli, logged_event, start_cli

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"
REDIS = "redis://127.0.0.1:6379/0"


def _reachable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def closed_port():
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cut_during_run(tmp_path, module, env, cuts, done, timeout=120):
    """Run `module` (logging to run.log) and, once it started, cut each proxy of `cuts` in turn
    for a second; run until `done()` holds, stop it with SIGTERM; its log, once exit 0 is
    asserted."""
    proc = start_cli(["run", module, "--log-format", "json"], tmp_path, env)
    try:
        logged_event(tmp_path / "run.log", "run.started", timeout=60)
        for proxy in cuts:
            time.sleep(0.3)
            proxy.cut(1.0)
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    log = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    return log


def require(port, name):
    if not _reachable(port):
        if os.environ.get("CONSECUTION_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{name} is not reachable on 127.0.0.1:{port} (CONSECUTION_REQUIRE_SERVICES=1)")
        pytest.skip(f"{name} is not reachable on 127.0.0.1:{port}")


@pytest.fixture
def redis_client():
    require(6379, "Redis")
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS, decode_responses=True)
    made = []
    yield client, made
    for key in made:
        client.delete(key)
    client.close()


@pytest.fixture
def pg():
    require(5432, "PostgreSQL")
    psycopg = pytest.importorskip("psycopg")
    made = []

    def execute(sql, *args):
        with psycopg.connect(PG, autocommit=True) as db:
            cursor = db.execute(sql, *args)
            return cursor.fetchall() if cursor.description else None
    yield execute, made
    for table in made:
        execute(f"DROP TABLE IF EXISTS {table}")


PIPELINE = """
import json, os, time
from consecution import Topology
from consecution.sinks import PostgresExecute, PostgresUpsert, RedisCommand
from consecution.spouts import RedisStream

def validate(body):
    if os.environ.get("SLOW"):
        time.sleep(0.001)
    order = json.loads(body["order"])
    if order["cents"] < 0:
        raise ValueError(f"negative amount in order {order['id']}")
    return order["id"], order["customer"], order["cents"]

validate.fields = ("id", "customer", "cents")

topology = Topology(os.environ["NAME"], max_retries=2, retry_backoff=0)
topology.spout("orders", RedisStream(os.environ["REDIS"], os.environ["STREAM"], "etl"))
topology.bolt("validate", validate, parallelism=2).shuffle_grouping("orders")
topology.bolt("store", PostgresUpsert(os.environ["PG"], os.environ["TABLE"], key="id", batch=100)) \\
    .fields_grouping("validate", "id")
topology.bolt("journal", PostgresExecute(os.environ["PG"], "INSERT INTO " + os.environ["JOURNAL"] +
                                         " (id) VALUES (%(id)s)", batch=100)).shuffle_grouping("validate")
topology.bolt("tally", RedisCommand(os.environ.get("TALLY_REDIS", os.environ["REDIS"]),
                                    lambda tup: ("HINCRBY", os.environ["TALLY"], tup["id"], 1),
                                    batch=100)).shuffle_grouping("validate")
"""


def _setup(tmp_path, redis_client, pg, n, poison=None):
    client, made = redis_client
    execute, tables = pg
    tag = uuid.uuid4().hex[:8]
    stream, table, journal = f"orders:{tag}", f"orders_{tag}", f"journal_{tag}"
    made.extend([stream, f"tally:{tag}"])
    tables.extend([table, journal])
    execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, customer text, cents bigint)")
    execute(f"CREATE TABLE {journal} (id bigint)")  # every write, duplicates too
    expected = {}
    pipe = client.pipeline()
    for i in range(1, n + 1):
        cents = -1 if i == poison else i * 7
        pipe.xadd(stream, {"order": json.dumps({"id": i, "customer": f"c{i % 5}", "cents": cents})})
        if i != poison:
            expected[i] = cents
    pipe.execute()
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    env = {"REDIS": REDIS, "STREAM": stream, "PG": PG, "TABLE": table, "JOURNAL": journal, "NAME": f"orders_{tag}",
           "TALLY": f"tally:{tag}"}
    return env, expected, stream, table, journal


def _wait_for_dead_letters(tmp_path, name, n=1, timeout=60):
    """Until the run holding `.consecution/<name>` has given up `n` records (`status` reads it
    while the run runs): the poison order's attempts are over, a stop now finds it dead."""
    deadline = time.monotonic() + timeout
    while True:
        done = cli("status", "--state-dir", f".consecution/{name}", "--json", cwd=tmp_path)
        if done.returncode == 0 and json.loads(done.stdout)["dead_letters"] >= n:
            return
        assert time.monotonic() < deadline, done.stdout + done.stderr
        time.sleep(0.2)


@pytest.mark.parametrize("mode", ["single", "process"])
def test_a_stream_into_postgres_killed_at_random_moments_loses_nothing(tmp_path, redis_client, pg, mode):
    """4,000 entries in a Redis stream -> validate -> upsert by id, a journal of every write, and
    a Redis hash counting each order's writes (RedisCommand HINCRBY).
    The run is SIGKILLed at random moments and restarted; then it runs until every valid order
    is in the table, and is stopped with SIGTERM. Every valid order is there with its amount,
    the poison one is the one dead letter, nothing is pending in Redis; the journal's extra
    writes (replays after the kills) are counted and reported."""
    client, _ = redis_client
    execute, _ = pg
    n, poison = 4000, 1234
    env, expected, stream, table, journal = _setup(tmp_path, redis_client, pg, n, poison)
    env["SLOW"] = "1"  # about 4 s of work: the kills land while it runs
    args = ["run", "pipeline.py", "--mode", mode, "--workers", "2", "--log-format", "json"]
    kills = int(os.environ.get("CONSECUTION_KILLS", "6"))

    def done():  # every valid order in the table, every entry acknowledged (once logged)
        return (execute(f"SELECT count(*) FROM {table}")[0][0] == len(expected)
                and not client.xpending(stream, "etl")["pending"])
    proc = kill_then_finish(tmp_path, args, env, kills, done)
    assert proc.returncode == 3, (proc.returncode, (tmp_path / "final.log").read_text()[-1500:])  # a dead letter
    assert dict(execute(f"SELECT id, cents FROM {table}")) == expected
    writes = execute(f"SELECT count(*), count(DISTINCT id) FROM {journal}")[0]
    assert writes[1] == len(expected)  # every valid order was written at least once
    tally = {int(k): int(v) for k, v in client.hgetall(env["TALLY"]).items()}
    assert set(tally) == set(expected) and min(tally.values()) >= 1  # RedisCommand: at least once
    replayed = [json.loads(x)["replayed"] for k in range(kills) for x in (tmp_path / f"run{k}.log").read_text()
                .splitlines() + (tmp_path / "final.log").read_text().splitlines() if '"run.recovered"' in x]
    assert any(replayed), "no kill found records in flight"
    print(f"\n[{mode}] journal: {writes[0] - writes[1]} duplicate writes of {writes[1]} orders after {kills} kills; "
          f"Redis tally: {sum(tally.values()) - len(tally)} duplicate increments; table: 0 duplicates (upsert by id)")
    letter = the_dead_letter(tmp_path, env)
    assert letter["values"][0]["order"] == json.dumps({"id": poison, "customer": f"c{poison % 5}", "cents": -1})
    assert "negative amount in order 1234" in letter["error"]


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a real server, which the test can cut: `cut(s)`
    closes every connection through it and refuses new ones for `s` seconds, as a server that
    restarts or a network that drops does."""

    def __init__(self, port):
        import threading
        self.target = port
        self.conns = []
        self.lock = threading.Lock()
        self.listener = self._listen(0)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _listen(self, port):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept(self):
        import threading
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            for s in (client, server):  # as the peers themselves do: no Nagle delay on small writes
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self, seconds):
        import threading
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes its accept(): the port is free at once
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        time.sleep(seconds)
        self.listener = self._listen(self.port)
        threading.Thread(target=self._accept, daemon=True).start()


def test_postgres_and_redis_going_away_mid_run_are_retried_and_lose_nothing(tmp_path, redis_client, pg):
    """The pipeline reaches Redis and PostgreSQL through proxies that the test cuts, each twice
    for a second, while it runs (every connection closed, new ones refused): the spout and the
    sinks log their retries and go on; every order arrives, once in the table."""
    execute, _ = pg
    env, expected, stream, table, journal = _setup(tmp_path, redis_client, pg, 3000)
    redis_proxy, pg_proxy = Proxy(6379), Proxy(5432)
    env.update(SLOW="1", REDIS=f"redis://127.0.0.1:{redis_proxy.port}/0", TALLY_REDIS=REDIS,
               PG=f"host=127.0.0.1 port={pg_proxy.port} user=postgres dbname=test")
    log = cut_during_run(tmp_path, "pipeline.py", env, (redis_proxy, pg_proxy, redis_proxy, pg_proxy),
                         lambda: execute(f"SELECT count(*) FROM {table}")[0][0] == len(expected))
    assert '"sink.retrying"' in log and '"spout.retrying"' in log, log[-3000:]
    assert dict(execute(f"SELECT id, cents FROM {table}")) == expected


def test_a_server_not_there_at_start_is_an_error_naming_it(tmp_path, redis_client, pg):
    env, _, _, _, _ = _setup(tmp_path, redis_client, pg, 1)
    port = closed_port()  # nothing listens there
    no_redis = cli("run", "pipeline.py", cwd=tmp_path, env={**env, "REDIS": f"redis://127.0.0.1:{port}/0"})
    assert no_redis.returncode == 1, no_redis.stderr[-2000:]
    assert f"cannot connect to Redis at redis://127.0.0.1:{port}/0" in no_redis.stderr
    no_pg = cli("run", "pipeline.py", "--fresh", cwd=tmp_path,
                env={**env, "PG": f"host=127.0.0.1 port={port} user=postgres dbname=test"})
    assert no_pg.returncode == 1, no_pg.stderr[-2000:]
    assert f"cannot connect to PostgreSQL (127.0.0.1:{port}/test)" in no_pg.stderr


def test_redis_command_writes_each_input_and_a_wrong_command_is_a_dead_letter(redis_client):
    from consecution import Topology
    from consecution.runtime import Scheduler
    from consecution.sinks import RedisCommand
    client, made = redis_client
    key = f"users:{uuid.uuid4().hex[:8]}"
    made.append(key)

    def command(tup):
        user, name = tup.values
        return ("HSET", key, user, name) if user != "bad" else ("NOPE", key)

    t = Topology("users", max_retries=1, retry_backoff=0)
    t.spout("users", [(f"u{i}", f"name {i}") for i in range(250)] + [("bad", "x")], fields=("user", "name"))
    t.bolt("store", RedisCommand(REDIS, command, batch=100)).shuffle_grouping("users")
    result = Scheduler(t, mode="process", workers=2).run()
    assert client.hgetall(key) == {f"u{i}": f"name {i}" for i in range(250)}
    # the wrong command failed its batch, which was written again one input at a time: it alone fails
    assert result.given_up == 1 and result.completed == 250
    assert "RedisCommand:" in result.failures[0].error and "unknown command" in result.failures[0].error.lower()


def test_bad_sql_or_a_key_the_input_lacks_fails_the_batch_at_once_naming_it(pg):
    from consecution import Topology
    from consecution.runtime import Scheduler
    from consecution.sinks import PostgresExecute, PostgresUpsert
    execute, tables = pg
    table = f"kv_{uuid.uuid4().hex[:8]}"
    tables.append(table)
    execute(f"CREATE TABLE {table} (k text PRIMARY KEY, v bigint)")
    for sink, error in ((PostgresExecute(PG, f"INSERT INTO {table} (k, nope) VALUES (%s, %s)"),
                         'column "nope" of relation'),
                        (PostgresUpsert(PG, table, key="id"), "the key ['id'] is not among the input's fields")):
        t = Topology("kv", max_retries=0)
        t.spout("rows", [("a", 1), ("b", 2)], fields=("k", "v"))
        t.bolt("store", sink).shuffle_grouping("rows")
        result = Scheduler(t).run()
        assert result.given_up == 2 and all(error in letter.error for letter in result.failures), \
            [letter.error for letter in result.failures]
    t = Topology("kv")
    t.spout("rows", [("a", 1), ("b", 2), ("a", 3)], fields=("k", "v"))
    t.bolt("store", PostgresUpsert(PG, table, key="k")).shuffle_grouping("rows")
    assert Scheduler(t).run().completed == 3
    assert dict(execute(f"SELECT k, v FROM {table}")) in ({"a": 3, "b": 2}, {"a": 1, "b": 2})


RABBIT = "amqp://guest:guest@127.0.0.1:5672/%2F"


RELAY = """
import json, os, time
from consecution import Topology
from consecution.sinks import JetStreamPublish, MqttPublish, RabbitPublish
from consecution.spouts import JetStream, Mqtt, RabbitMQ

def validate(body):
    time.sleep(float(os.environ.get("DELAY", "0.001")))
    order = json.loads(body)
    if order["cents"] < 0:
        raise ValueError(f"negative amount in order {order['id']}")
    return order["id"], order["cents"]

validate.fields = ("id", "cents")

topology = Topology(os.environ["NAME"], max_retries=1, retry_backoff=0)
topology.spout("orders", SPOUT)
topology.bolt("validate", validate, parallelism=2).shuffle_grouping("orders")
topology.bolt("publish", SINK).shuffle_grouping("validate")
"""


def relay(spout, sink):
    """A topology module: `spout` -> validate (a negative amount is the poison) -> `sink`, both
    given as Python source reading os.environ."""
    return RELAY.replace("SPOUT", spout).replace("SINK", sink)


RABBIT_RELAY = relay('RabbitMQ(os.environ["RABBIT"], os.environ["IN"], decode=bytes.decode)',
                     'RabbitPublish(os.environ["RABBIT"], "", os.environ["OUT"], batch=50)')
MQTT_RELAY = relay('Mqtt("127.0.0.1", int(os.environ["PORT"]), os.environ["IN"], os.environ["CLIENT"])',
                   'MqttPublish("127.0.0.1", int(os.environ.get("SINK_PORT", os.environ["PORT"])), '
                   'os.environ["OUT"], batch=50)')
# ack_wait 3 s: what a kill caught fetched and not yet committed comes back 3 s later
NATS_RELAY = relay('JetStream(os.environ["NATS"], os.environ["STREAM"], "relay", subject=os.environ["IN"], ack_wait=3)',
                   'JetStreamPublish(os.environ["NATS"], os.environ["OUT"], batch=50)')


def kill_then_finish(tmp_path, args, env, kills, done, window=(0.2, 1.0), timeout=120):
    """Start `consecution ARGS` and SIGKILL it at a random moment after its `run.started`,
    `kills` times (logs run<k>.log); then run it (final.log) until `done()` holds and its
    poison is a dead letter, and stop it with SIGTERM. Returns the final process."""
    rng = random.Random()
    for k in range(kills):
        proc = start_cli(args, tmp_path, env, log=f"run{k}.log")
        logged_event(tmp_path / f"run{k}.log", "run.started", timeout=60)
        time.sleep(rng.uniform(*window))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc = start_cli(args, tmp_path, env, log="final.log")
    try:
        logged_event(tmp_path / "final.log", "run.started", timeout=60)
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "final.log").read_text()[-2000:]
            time.sleep(0.2)
        _wait_for_dead_letters(tmp_path, env["NAME"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return proc


def the_dead_letter(tmp_path, env):
    """The dead letter of the run (validate's, for the poison). A broker may deliver the poison
    message again (a kill between the log commit and its acknowledgement reaching the broker:
    at least once); each delivery is a record of its own and gives a letter of its own, all
    with the same values."""
    letters = [json.loads(x) for x in cli("dead-letters", "--state-dir", f".consecution/{env['NAME']}", "--json",
                                          cwd=tmp_path).stdout.splitlines()]
    assert letters and all(d["component"] == "validate" and d["values"] == letters[0]["values"]
                           for d in letters), letters
    return letters[0]



@pytest.fixture
def rabbit():
    require(5672, "RabbitMQ")
    pika = pytest.importorskip("pika")
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    made = []

    def queue(name):
        channel.queue_declare(name, durable=True)
        made.append(name)
        return name
    yield channel, queue
    for name in made:
        channel.queue_delete(name)
    connection.close()


def _drain(channel, queue):
    bodies = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(json.loads(body))


@pytest.mark.parametrize("mode", ["single", "process"])
def test_a_rabbitmq_queue_relayed_through_a_run_killed_at_random_moments_loses_nothing(tmp_path, rabbit, mode):
    """3,000 messages in a queue -> validate -> published with confirms to another queue; the run
    is SIGKILLed at random moments and restarted, then runs until every valid order was
    published. Nothing is left in the input queue; every valid order is in the output queue,
    duplicates (published again after a kill) counted and reported; the poison one is the one
    dead letter."""
    channel, queue = rabbit
    tag = uuid.uuid4().hex[:8]
    q_in, q_out = queue(f"in.{tag}"), queue(f"out.{tag}")
    n, poison = 3000, 777
    for i in range(1, n + 1):
        channel.basic_publish("", q_in, json.dumps({"id": i, "cents": -5 if i == poison else i}).encode())
    (tmp_path / "relay.py").write_text(RABBIT_RELAY)
    env = {"RABBIT": RABBIT, "IN": q_in, "OUT": q_out, "NAME": f"relay_{tag}"}
    args = ["run", "relay.py", "--mode", mode, "--workers", "2", "--log-format", "json"]
    kills = int(os.environ.get("CONSECUTION_KILLS", "5"))
    got = []

    def done():
        got.extend(_drain(channel, q_out))
        return len({o["id"] for o in got}) >= n - 1 and not channel.queue_declare(q_in, passive=True).method.message_count
    proc = kill_then_finish(tmp_path, args, env, kills, done)
    assert proc.returncode == 3, (tmp_path / "final.log").read_text()[-2000:]  # the poison one
    got += _drain(channel, q_out)
    ids = [o["id"] for o in got]
    assert set(ids) == set(range(1, n + 1)) - {poison}
    assert all(o["cents"] == o["id"] for o in got)
    print(f"\n[{mode}] {len(ids) - len(set(ids))} duplicates of {len(set(ids))} messages after {kills} kills")
    assert "order 777" in the_dead_letter(tmp_path, env)["error"]


def test_rabbitmq_cut_mid_run_is_retried_and_a_missing_queue_or_broker_is_named(tmp_path, rabbit):
    channel, queue = rabbit
    tag = uuid.uuid4().hex[:8]
    q_in, q_out = queue(f"in.{tag}"), queue(f"out.{tag}")
    for i in range(1, 2001):
        channel.basic_publish("", q_in, json.dumps({"id": i, "cents": i}).encode())
    (tmp_path / "relay.py").write_text(RABBIT_RELAY)
    proxy = Proxy(5672)
    env = {"RABBIT": f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F", "IN": q_in, "OUT": q_out, "NAME": f"relay_{tag}"}
    got = []

    def done():
        got.extend(_drain(channel, q_out))
        return len({o["id"] for o in got}) >= 2000
    log = cut_during_run(tmp_path, "relay.py", env, (proxy, proxy), done)
    assert '"spout.retrying"' in log and '"sink.retrying"' in log
    assert {o["id"] for o in got} == set(range(1, 2001))
    missing = cli("run", "relay.py", cwd=tmp_path, env={**env, "RABBIT": RABBIT, "IN": f"nowhere.{tag}"})
    assert missing.returncode == 1 and f"no queue 'nowhere.{tag}'" in missing.stderr, missing.stderr[-2000:]
    port = closed_port()
    away = cli("run", "relay.py", cwd=tmp_path, env={**env, "RABBIT": f"amqp://guest:secret@127.0.0.1:{port}/%2F"})
    assert away.returncode == 1 and f"cannot connect to amqp://guest@127.0.0.1:{port}/%2F" in away.stderr
    assert "secret" not in away.stderr




@pytest.fixture
def mqtt_broker():
    require(1883, "Mosquitto")
    mqtt = pytest.importorskip("paho.mqtt.client")
    sessions = []

    def client(client_id, clean=True):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        if not clean:
            sessions.append(client_id)
        return c
    yield client
    for client_id in sessions:  # a clean connection drops the session the broker kept
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        c.connect("127.0.0.1", 1883)
        c.disconnect()


def mqtt_relay_setup(mqtt_broker, orders):
    """For MQTT_RELAY: a collector of the output topic, the spout's persistent session made
    before the input (MQTT keeps nothing for a session that does not exist yet), and `orders`
    published with QoS 1. (tag, input topic, output topic, client id, the list collected into)."""
    tag = uuid.uuid4().hex[:8]
    t_in, t_out, client_id = f"consecution/{tag}/in", f"consecution/{tag}/out", f"relay-{tag}"
    got = []
    collector = mqtt_broker(f"collector-{tag}")
    collector.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    collector.subscribe(t_out, qos=1)
    session = mqtt_broker(client_id, clean=False)
    session.subscribe(t_in, qos=1)
    time.sleep(0.3)
    session.loop_stop()
    session.disconnect()
    publisher = mqtt_broker(f"publisher-{tag}")
    for order in orders:
        publisher.publish(t_in, json.dumps(order), qos=1).wait_for_publish(5)
    return tag, t_in, t_out, client_id, got


@pytest.mark.parametrize("mode", ["single", "process"])
def test_an_mqtt_topic_relayed_through_a_run_killed_at_random_moments_loses_nothing(tmp_path, mqtt_broker, mode):
    """800 QoS 1 messages kept for the spout's persistent session -> validate -> published with
    QoS 1 to another topic, which the test receives; the run is SIGKILLed at random moments and
    restarted, then runs until every valid order was published. Every valid order arrived,
    duplicates counted and reported; the poison one is the one dead letter."""
    n, poison = 800, 333
    tag, t_in, t_out, client_id, got = mqtt_relay_setup(
        mqtt_broker, [{"id": i, "cents": -1 if i == poison else i} for i in range(1, n + 1)])
    (tmp_path / "relay.py").write_text(MQTT_RELAY)
    env = {"PORT": "1883", "IN": t_in, "OUT": t_out, "CLIENT": client_id, "NAME": f"mqtt_{tag}"}
    args = ["run", "relay.py", "--mode", mode, "--workers", "2", "--log-format", "json"]
    kills = int(os.environ.get("CONSECUTION_KILLS", "5"))
    proc = kill_then_finish(tmp_path, args, env, kills, lambda: len({o["id"] for o in got}) >= n - 1,
                            window=(0.2, 0.8))
    assert proc.returncode == 3, (tmp_path / "final.log").read_text()[-2000:]  # the poison one
    ids = [o["id"] for o in got]
    assert set(ids) == set(range(1, n + 1)) - {poison}
    print(f"\n[{mode}] {len(ids) - len(set(ids))} duplicates of {len(set(ids))} messages after {kills} kills")
    assert "order 333" in the_dead_letter(tmp_path, env)["error"]


def test_mqtt_cut_mid_run_is_retried_and_an_unreachable_broker_is_named(tmp_path, mqtt_broker):
    """The spout's connection is cut, then the sink's, each through a proxy of its own. paho
    reconnects a client by itself and sends again what it had queued, so a sink sees a cut only
    when it publishes while paho knows the connection is gone: its proxy is cut while it is
    idle (no orders yet) and stays cut until orders, published once the spout's cut is over,
    reach it."""
    import threading
    tag, t_in, t_out, client_id, got = mqtt_relay_setup(mqtt_broker, [])
    proxy, sink_proxy = Proxy(1883), Proxy(1883)
    (tmp_path / "relay.py").write_text(MQTT_RELAY)
    env = {"PORT": str(proxy.port), "SINK_PORT": str(sink_proxy.port), "IN": t_in, "OUT": t_out,
           "CLIENT": client_id, "NAME": f"mqtt_{tag}"}
    proc = start_cli(["run", "relay.py", "--log-format", "json"], tmp_path, env)
    try:
        logged_event(tmp_path / "run.log", "run.started", timeout=60)
        time.sleep(0.3)
        sink_cut = threading.Thread(target=sink_proxy.cut, args=(5.0,), daemon=True)
        sink_cut.start()
        proxy.cut(1.0)
        publisher = mqtt_broker(f"publisher-{tag}")
        for i in range(1, 601):  # kept for the spout's session while it reconnects
            publisher.publish(t_in, json.dumps({"id": i, "cents": i}), qos=1).wait_for_publish(5)
        deadline = time.monotonic() + 120
        while len({o["id"] for o in got}) < 600:
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "run.log").read_text()[-2000:]
            time.sleep(0.2)
        sink_cut.join(timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    log = (tmp_path / "run.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    assert '"spout.retrying"' in log and '"sink.retrying"' in log, log[-2000:]
    assert {o["id"] for o in got} == set(range(1, 601))
    port = closed_port()
    away = cli("run", "relay.py", "--fresh", cwd=tmp_path, env={**env, "PORT": str(port), "SINK_PORT": str(port)})
    assert away.returncode == 1 and f"cannot connect to the broker at 127.0.0.1:{port}" in away.stderr, away.stderr


@pytest.mark.parametrize("kind", ["rabbitmq", "redis", "mqtt", "nats"])
def test_the_brokers_example_takes_orders_from_each_system_into_postgres(tmp_path, kind, pg, redis_client,
                                                                         mqtt_broker):
    """examples/brokers.py, as its docstring says: orders from RabbitMQ, a Redis stream, MQTT or
    JetStream into PostgreSQL, counted in Redis, large ones published on MQTT; a bad one a dead
    letter."""
    require(5672, "RabbitMQ")
    require(4222, "NATS")
    from support import EXAMPLES
    execute, tables = pg
    client, made = redis_client
    tag = uuid.uuid4().hex[:8]
    name, table = f"orders-{tag}", f"orders_{tag}"  # (a JetStream stream name takes no '.')
    tables.append(table)
    made.extend([name, f"{name}:per_customer"])
    env = {"ORDERS_SOURCE": kind, "ORDERS_NAME": name, "ORDERS_TABLE": table}
    orders = [{"id": i, "customer": f"c{i % 3}", "cents": i * 40_000} for i in range(1, 7)] + [{"id": "x"}]
    alerts = []
    watcher = mqtt_broker(f"watcher-{tag}")
    watcher.on_message = lambda c, u, m: alerts.append(json.loads(m.payload))
    watcher.subscribe(f"shop/{name}-large", qos=1)
    if kind == "rabbitmq":
        import pika
        connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
        channel = connection.channel()
        channel.queue_declare(name, durable=True)
        for order in orders:
            channel.basic_publish("", name, json.dumps(order).encode())
    elif kind == "redis":
        for order in orders:
            client.xadd(name, {"order": json.dumps(order)})
    elif kind == "nats":
        from consecution.spouts.jetstream import NatsLoop
        nats_client = NatsLoop(NATS, "consecution-test")
        nats_client.call(nats_client.js.add_stream(name=name, subjects=[f"{name}.>"]))
        for order in orders:
            nats_client.call(nats_client.js.publish(f"{name}.new", json.dumps(order).encode()))
    else:
        session = mqtt_broker(f"brokers-{name}", clean=False)
        session.subscribe(f"shop/{name}", qos=1)
        time.sleep(0.3)
        session.loop_stop()
        session.disconnect()
        publisher = mqtt_broker(f"shop-{tag}")
        for order in orders:
            publisher.publish(f"shop/{name}", json.dumps(order), qos=1).wait_for_publish(5)
    proc = start_cli(["run", os.path.join(EXAMPLES, "brokers.py"), "--log-format", "json"], tmp_path, env)
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = execute(f"SELECT id, customer, cents FROM {table}") if execute(
                "SELECT to_regclass(%s)", (table,))[0][0] else []
            if len(rows) == 6 and len(alerts) >= 4:
                break
            assert time.monotonic() < deadline and proc.poll() is None, (rows, alerts,
                                                                           (tmp_path / "run.log").read_text()[-2000:])
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        if kind == "rabbitmq":
            channel.queue_delete(name)
            connection.close()
        if kind == "nats":
            nats_client.call(nats_client.js.delete_stream(name))
            nats_client.stop()
    assert proc.returncode == 3  # the bad order is a dead letter
    assert sorted(rows) == [(o["id"], o["customer"], o["cents"]) for o in orders[:6]]
    assert client.hgetall(f"{name}:per_customer") == {"c0": "2", "c1": "2", "c2": "2"}
    assert sorted(a["id"] for a in alerts) == [3, 4, 5, 6]  # 120,000 cents and more
    letters = cli("dead-letters", "--state-dir", ".consecution/brokers", "--json", cwd=tmp_path).stdout
    assert "not a valid order" in letters


NATS = "nats://127.0.0.1:4222"



@pytest.fixture
def jetstream():
    """(call, stream name): a JetStream stream of its own, taking subjects `<stream>.>`."""
    require(4222, "NATS")
    pytest.importorskip("nats")
    from consecution.spouts.jetstream import NatsLoop
    client = NatsLoop(NATS, "consecution-test")
    stream = f"orders_{uuid.uuid4().hex[:8]}"
    client.call(client.js.add_stream(name=stream, subjects=[f"{stream}.>"]))
    yield client, stream
    client.call(client.js.delete_stream(stream))
    client.stop()


def _stream_messages(client, stream, subject):
    """Every message of `subject` in `stream`, read by an ephemeral consumer."""
    import nats
    sub = client.call(client.js.pull_subscribe(subject, stream=stream))
    out = []
    while True:
        try:
            batch = client.call(sub.fetch(500, timeout=0.5))
        except nats.errors.TimeoutError:
            return out
        for m in batch:
            out.append(json.loads(m.data))
            client.call(m.ack())


@pytest.mark.parametrize("mode", ["single", "process"])
def test_a_jetstream_relay_killed_at_random_moments_publishes_each_order_exactly_once(tmp_path, jetstream, mode):
    """3,000 messages in a JetStream stream -> validate -> published to another subject of it with
    message ids derived from the log records; the run is SIGKILLed at random moments and
    restarted, then runs until every valid order was published. The output holds each valid
    order exactly once (JetStream dropped the replays' duplicates); the poison one is the one
    dead letter, and the durable consumer has nothing left to deliver."""
    client, stream = jetstream
    n, poison = 3000, 999

    async def fill():
        for i in range(1, n + 1):
            await client.js.publish(f"{stream}.in", json.dumps({"id": i, "cents": -1 if i == poison else i}).encode())
    client.call(fill(), 120)
    (tmp_path / "relay.py").write_text(NATS_RELAY)
    env = {"NATS": NATS, "STREAM": stream, "IN": f"{stream}.in", "OUT": f"{stream}.out", "NAME": f"nats_{stream}"}
    args = ["run", "relay.py", "--mode", mode, "--workers", "2", "--log-format", "json"]
    kills = int(os.environ.get("CONSECUTION_KILLS", "5"))

    def done():
        info = client.call(client.js.consumer_info(stream, "relay"))
        return (client.call(client.js.stream_info(stream)).state.messages >= 2 * n - 1
                and not info.num_pending and not info.num_ack_pending)
    proc = kill_then_finish(tmp_path, args, env, kills, done)
    assert proc.returncode == 3, (tmp_path / "final.log").read_text()[-2000:]  # the poison one
    out = _stream_messages(client, stream, f"{stream}.out")
    ids = [o["id"] for o in out]
    assert set(ids) == set(range(1, n + 1)) - {poison}
    # a replay publishes the same message id, which JetStream drops: a duplicate can only be a
    # message the broker delivered again (a kill between the log commit and the ack reaching it)
    redelivered = sum(json.loads(line)["messages"] for log in tmp_path.glob("*.log")
                      for line in log.read_text().splitlines() if '"spout.redelivered"' in line)
    assert len(ids) - len(set(ids)) <= redelivered, (len(ids) - len(set(ids)), redelivered)
    print(f"\n[{mode}] {len(ids) - len(set(ids))} duplicates of {len(set(ids))} orders after {kills} kills; "
          f"{redelivered} messages delivered again by JetStream")
    assert "order 999" in the_dead_letter(tmp_path, env)["error"]


def test_jetstream_cut_mid_run_is_retried_and_a_missing_stream_or_server_is_named(tmp_path, jetstream):
    client, stream = jetstream

    async def fill():
        for i in range(1, 1501):
            await client.js.publish(f"{stream}.in", json.dumps({"id": i, "cents": i}).encode())
    client.call(fill(), 60)
    proxy = Proxy(4222)
    (tmp_path / "relay.py").write_text(NATS_RELAY)
    env = {"NATS": f"nats://127.0.0.1:{proxy.port}", "STREAM": stream, "IN": f"{stream}.in", "OUT": f"{stream}.out",
           "NAME": f"nats_{stream}"}
    log = cut_during_run(tmp_path, "relay.py", env, (proxy,),
                         lambda: client.call(client.js.stream_info(stream)).state.messages >= 3000)
    assert '"spout.retrying"' in log, log[-2000:]
    assert sorted(o["id"] for o in _stream_messages(client, stream, f"{stream}.out")) == list(range(1, 1501))
    missing = cli("run", "relay.py", "--fresh", cwd=tmp_path, env={**env, "NATS": NATS, "STREAM": "nowhere_" + stream})
    assert missing.returncode == 1 and f"no stream 'nowhere_{stream}'" in missing.stderr, missing.stderr[-2000:]
    port = closed_port()
    away = cli("run", "relay.py", "--fresh", cwd=tmp_path, env={**env, "NATS": f"nats://127.0.0.1:{port}"})
    assert away.returncode == 1 and f"cannot connect to nats://127.0.0.1:{port}" in away.stderr, away.stderr[-2000:]


def test_with_confirm_a_rabbitmq_message_given_up_goes_to_the_dead_letter_exchange(rabbit):
    """Reliability "confirm" (no log): a message is acknowledged when its tree completes; the
    one that fails is given up at once and rejected, so the queue's dead-letter exchange routes
    it to the dead-letter queue; nothing stays in the input queue."""
    import threading
    from consecution import Topology
    from consecution.runtime import Scheduler
    from consecution.spouts import RabbitMQ
    channel, queue = rabbit
    tag = uuid.uuid4().hex[:8]
    dead = queue(f"dead.{tag}")
    source = f"in.{tag}"
    channel.queue_declare(source, durable=True, arguments={"x-dead-letter-exchange": "",
                                                           "x-dead-letter-routing-key": dead})
    for i in range(1, 51):
        channel.basic_publish("", source, json.dumps({"id": i}).encode())
    seen = []

    def check(body):
        order = json.loads(body)
        if order["id"] == 13:
            raise ValueError("unlucky")
        seen.append(order["id"])

    t = Topology("confirmed", reliability="confirm")
    t.spout("orders", RabbitMQ(RABBIT, source))
    t.bolt("check", check).shuffle_grouping("orders")
    scheduler = Scheduler(t)
    runner = threading.Thread(target=scheduler.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 49 or channel.queue_declare(dead, passive=True).method.message_count < 1:
            assert time.monotonic() < deadline, (len(seen),)
            time.sleep(0.1)
    finally:
        scheduler.stop()
        runner.join(30)
    assert sorted(seen) == [i for i in range(1, 51) if i != 13]
    method, _, body = channel.basic_get(dead, auto_ack=True)
    assert json.loads(body) == {"id": 13}
    assert channel.queue_declare(source, passive=True).method.message_count == 0  # all acknowledged
    channel.queue_delete(source)


def test_rabbitmq_prefetch_follows_max_pending_and_holds_the_rest_in_the_queue(rabbit):
    """With max_pending 5 and a slow bolt, the broker hands over at most 5 unacknowledged
    messages: the others stay ready in the queue until those are done."""
    import threading
    from consecution import Topology
    from consecution.runtime import Scheduler
    from consecution.spouts import RabbitMQ
    channel, queue = rabbit
    source = queue(f"in.{uuid.uuid4().hex[:8]}")
    for i in range(40):
        channel.basic_publish("", source, json.dumps({"id": i}).encode())
    done = []

    def slow(body):
        time.sleep(0.1)
        done.append(body)

    t = Topology("prefetch", reliability="confirm", max_pending=5)
    t.spout("orders", RabbitMQ(RABBIT, source))
    t.bolt("slow", slow).shuffle_grouping("orders")
    scheduler = Scheduler(t)
    runner = threading.Thread(target=scheduler.run)
    runner.start()
    try:
        time.sleep(0.8)
        ready = channel.queue_declare(source, passive=True).method.message_count
        assert ready >= 40 - len(done) - 5, (ready, len(done))  # at most 5 handed over and not done
        assert len(done) >= 3
    finally:
        scheduler.stop()
        runner.join(30)


def test_with_confirm_redis_entries_are_acknowledged_as_their_trees_end(redis_client):
    """Reliability "confirm": an entry is XACKed when its tree completes, or when it is given up
    (a dead letter here); nothing stays pending in the group."""
    import threading
    from consecution import Topology
    from consecution.runtime import Scheduler
    from consecution.spouts import RedisStream
    client, made = redis_client
    stream = f"confirm:{uuid.uuid4().hex[:8]}"
    made.append(stream)
    for i in range(30):
        client.xadd(stream, {"n": str(i)})
    seen = []

    def check(body):
        seen.append(int(body["n"]))
        if body["n"] == "7":
            raise ValueError("no 7")

    t = Topology("confirmed", reliability="confirm")
    t.spout("entries", RedisStream(REDIS, stream, "g"))
    t.bolt("check", check).shuffle_grouping("entries")
    scheduler = Scheduler(t)
    out = {}
    runner = threading.Thread(target=lambda: out.update(result=scheduler.run()))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 30 or client.xpending(stream, "g")["pending"]:
            assert time.monotonic() < deadline, (len(seen), client.xpending(stream, "g"))
            time.sleep(0.1)
    finally:
        scheduler.stop()
        runner.join(30)
    assert sorted(seen) == list(range(30))
    assert out["result"].given_up == 1 and out["result"].completed == 29


def test_redis_entries_a_cut_off_read_delivered_are_read_again_and_none_twice(redis_client):
    """A read (XREADGROUP) that reached Redis but whose reply a cut connection lost leaves its
    entries pending for this consumer: after the next connection failure the spout reads its
    pending entries again, emitting those it had not emitted, and none it had. Here another
    client makes that read, as the spout's consumer, between the spout's reads."""
    import threading
    from consecution import Bolt, Topology
    from consecution.runtime import Scheduler
    from consecution.spouts import RedisStream
    client, made = redis_client
    stream = f"cutoff:{uuid.uuid4().hex[:8]}"
    made.append(stream)
    proxy = Proxy(6379)
    seen = []

    class Keep(Bolt):
        def process(self, tup):
            seen.append(int(tup[0]["n"]))

    for i in range(10):
        client.xadd(stream, {"n": str(i)})
    t = Topology("cutoff", reliability="confirm")
    t.spout("entries", RedisStream(f"redis://127.0.0.1:{proxy.port}/0", stream, "g", consumer="c1"))
    t.bolt("keep", Keep()).shuffle_grouping("entries")
    scheduler = Scheduler(t)
    runner = threading.Thread(target=scheduler.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 10:
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        # the read whose reply was lost: entries 10..14 added and read for c1 in one transaction
        # (the spout, blocked in its own read, is served after it: it finds nothing new)
        steal = client.pipeline(transaction=True)
        for i in range(10, 15):
            steal.xadd(stream, {"n": str(i)})
        steal.xreadgroup("g", "c1", {stream: ">"}, count=5)
        assert len(steal.execute()[-1][0][1]) == 5
        for i in range(15, 20):
            client.xadd(stream, {"n": str(i)})
        while len(seen) < 15:
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        proxy.cut(0.3)
        while len(seen) < 20:
            assert time.monotonic() < deadline, sorted(seen)
            time.sleep(0.05)
        time.sleep(0.5)  # anything emitted twice would arrive by now
    finally:
        scheduler.stop()
        runner.join(30)
    assert sorted(seen) == list(range(20))
