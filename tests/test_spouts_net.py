"""Tcp and Http spouts against real sockets and an HTTP client, in every mode; and a real
`consecution run` killed with SIGKILL while clients send: every confirmed record is processed."""
import http.client
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from consecution import Topology
from consecution.spouts import Http, Tcp
from spout_support import MODES, free_port, running, wait_for, wait_listening


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def echo(value):
    return value


def slow(value):
    time.sleep(0.1)
    return value


def through(spout, fn=echo, **options):
    t = Topology("net", **options)
    t.spout("source", spout)
    t.bolt("sink", fn).shuffle_grouping("source")
    return t


def send_lines(address, lines, shut=True):
    """Send lines, shut down the sending side, read the answers until the server closes."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"".join(lines))
        if shut:
            sock.shutdown(socket.SHUT_WR)
        return sock.makefile("rb").read().splitlines()


def post(address, body, content_type="application/json", path="/", method="POST"):
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null"), dict(response.getheaders())
    finally:
        conn.close()


# -- Tcp -----------------------------------------------------------------------------------------

def test_tcp_confirms_every_line_of_several_clients_at_once(mode, tmp_path):
    spout = Tcp()
    with running(through(spout), mode, state_dir=str(tmp_path / "state")) as run:
        address = wait_listening(spout)
        answers = {}

        def client(k):
            answers[k] = send_lines(address, [f"c{k} line {i}\n".encode() for i in range(200)])

        clients = [threading.Thread(target=client, args=(k,)) for k in range(5)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(20)
        result = run.stop()
    assert all(answers[k] == [b"ok"] * 200 for k in range(5))
    got = [values[0] for values in result.emitted("sink")]
    assert sorted(got) == sorted(f"c{k} line {i}" for k in range(5) for i in range(200))
    for k in range(5):  # each client's lines in the order it sent them
        assert [g for g in got if g.startswith(f"c{k} ")] == [f"c{k} line {i}" for i in range(200)]


def test_tcp_answers_an_error_for_a_line_that_is_not_utf8_in_its_place(mode):
    spout = Tcp()
    with running(through(spout), mode) as run:
        answers = send_lines(wait_listening(spout), [b"one\r\n", b"\xff\n", b"three"])
        result = run.stop()
    assert answers == [b"ok", b"error: line 2: not valid UTF-8 (invalid start byte at byte 0)", b"ok"]
    assert result.emitted("sink") == [("one",), ("three",)]


def test_tcp_closes_a_connection_whose_line_is_too_long():
    spout = Tcp(max_line=100)
    with running(through(spout), "single") as run:
        answers = send_lines(wait_listening(spout), [b"short\n", b"x" * 5000], shut=False)
        run.stop()
    assert answers == [b"ok", b"error: line 2: longer than 100 bytes"]


def test_tcp_refuses_a_whole_line_longer_than_max_line_with_its_line_break():
    spout = Tcp(max_line=100)
    with running(through(spout), "single") as run:
        answers = send_lines(wait_listening(spout), [b"short\n", b"x" * 500 + b"\n", b"after\n"], shut=False)
        wait_for(lambda: len(run.emitted("sink")) == 1)
        assert run.emitted("sink") == [("short",)]
        run.stop()
    assert answers == [b"ok", b"error: line 2: longer than 100 bytes"]


def test_tcp_stops_reading_a_client_that_never_reads_its_answers_and_serves_the_others():
    """Answers owed to a client that does not read them are bounded: past OWED_BYTES the
    server stops reading its lines (they wait in the client's socket), instead of reading and
    answering into memory without end, while another client is served. (Reliability none:
    answers are due at once, so nothing but this bound stops the reading.)"""
    from consecution.spouts.net import OWED_BYTES
    spout = Tcp()
    with running(through(spout, reliability="none"), "single") as run:
        address = wait_listening(spout)
        greedy = socket.create_connection(address, timeout=10)
        greedy.setblocking(False)
        chunk, owed, blocked_since = b"1\n" * 32768, 0, None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                greedy.send(chunk)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or time.monotonic()
                if time.monotonic() - blocked_since > 2:
                    break  # two seconds without the server taking a byte
                time.sleep(0.01)
            owed = max([owed] + [len(c.out) for c in list(spout.server.connections.values())])
            assert owed <= OWED_BYTES + (1 << 17), f"{owed} bytes of answers owed to a client that reads none"
        assert blocked_since is not None, "the server kept reading a client that reads nothing"
        assert send_lines(address, [b"other\n"]) == [b"ok"]
        greedy.close()
        run.stop()


def test_tcp_without_replies_closes_once_everything_is_logged():
    spout = Tcp(reply=False)
    with running(through(spout), "single") as run:
        answers = send_lines(wait_listening(spout), [b"a\n", b"b\n"])
        # the close came after the log commit; the bolts see the lines right after it (a
        # spout's `logged` is called before any bolt sees what was logged)
        wait_for(lambda: len(run.emitted("sink")) == 2)
        assert run.emitted("sink") == [("a",), ("b",)]
        run.stop()
    assert answers == []


def test_tcp_with_reliability_none_confirms_at_emit():
    spout = Tcp()
    with running(through(spout, reliability="none"), "single") as run:
        assert send_lines(wait_listening(spout), [b"a\n", b"b\n"]) == [b"ok", b"ok"]
        run.stop()


def test_tcp_stops_reading_while_max_pending_lines_are_in_flight(mode):
    spout = Tcp()
    with running(through(spout, slow, max_pending=2), mode) as run:
        address = wait_listening(spout)
        sock = socket.create_connection(address, timeout=10)
        sock.sendall(b"".join(f"{i}\n".encode() for i in range(6)))
        reader = sock.makefile("rb")
        started = time.monotonic()
        assert [reader.readline() for _ in range(6)] == [b"ok\n"] * 6
        assert time.monotonic() - started >= 0.25  # lines 3..6 waited for room (0.1 s per line)
        sock.close()
        run.stop()


# -- Http ----------------------------------------------------------------------------------------

def test_http_accepts_json_ndjson_and_lines_after_the_log_commit(mode, tmp_path):
    spout = Http(path="/ingest")
    with running(through(spout), mode, state_dir=str(tmp_path / "state")) as run:
        address = wait_listening(spout)
        assert post(address, b'[{"id": 1}, {"id": 2}]', path="/ingest")[:2] == (202, {"accepted": 2})
        assert post(address, b'{"id": 3}', path="/ingest")[:2] == (202, {"accepted": 1})
        assert post(address, b'{"id": 4}\n\n{"id": 5}\n', "application/x-ndjson", "/ingest")[:2] == (
            202, {"accepted": 2})
        assert post(address, b"six\nseven\n", "text/plain; charset=utf-8", "/ingest")[:2] == (202, {"accepted": 2})
        result = run.stop()
    assert result.emitted("sink") == [({"id": 1},), ({"id": 2},), ({"id": 3},), ({"id": 4},), ({"id": 5},),
                                      ("six",), ("seven",)]


def test_http_refuses_bad_requests_with_a_clear_message():
    spout = Http()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        status, body, _ = post(address, b'{"a": 1}\n{"b": 2}\n{"c": \n', "application/x-ndjson")
        assert status == 400 and body["error"].startswith("line 3: invalid JSON")
        status, body, _ = post(address, b'{\n  "a": [1,\n  }', "application/json")
        assert status == 400 and body["error"].startswith("line 3 column 3: invalid JSON")
        status, body, _ = post(address, b"[1, 2, 100000000000000000000000]", "application/json")
        assert status == 400 and body["error"].startswith("item 3: cannot be stored")
        status, body, _ = post(address, b"ok\n\xff\n", "text/plain")
        assert status == 400 and body["error"].startswith("line 2: not valid UTF-8")
        assert post(address, b"[]")[:2] == (400, {"error": "the body holds no records"})
        assert post(address, b"x", "application/xml")[0] == 415
        assert post(address, b"[1]", path="/other")[0] == 404
        status, _, headers = post(address, None, method="GET")
        assert status == 405 and headers["Allow"] == "POST"
        result = run.stop()
    assert result.roots == 0


def _raw_exchange(address, request):
    """Send raw bytes; everything the server answers until it closes (or 5 s pass)."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        out = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return out
                out += data
        except socket.timeout:
            return out


def test_http_never_takes_an_unread_body_for_a_request_and_refuses_ambiguous_lengths():
    """A body left unread by a 404 or a 405 used to be parsed as the next request on the kept
    connection (request smuggling); two Content-Lengths, or one with chunked encoding, were
    taken. Each is refused and the connection closed: nothing of it is accepted."""
    spout = Http()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        inner = b'POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n[1]'
        for method, path in ((b"POST", b"/other"), (b"PUT", b"/")):
            answer = _raw_exchange(address, method + b" " + path + b" HTTP/1.1\r\nContent-Length: " +
                                   str(len(inner)).encode() + b"\r\n\r\n" + inner)
            assert answer.count(b"HTTP/1.1") == 1 and b"Connection: close" in answer, answer
        for headers in (b"Content-Length: 3\r\nContent-Length: 3\r\n",
                        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"):
            answer = _raw_exchange(address, b"POST / HTTP/1.1\r\nContent-Type: application/json\r\n" + headers +
                                   b"\r\n[1]")
            assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1") == 1, answer
        result = run.stop()
    assert result.roots == 0


def test_http_answers_400_to_json_it_cannot_read_instead_of_dropping_the_connection():
    spout = Http()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        status, body, _ = post(address, b"[" + b"7" * 5000 + b"]", "application/json")
        assert status == 400 and "cannot be read" in body["error"], body
        status, body, _ = post(address, b"[" * 100_000 + b"]" * 100_000, "application/json")
        assert status == 400 and "cannot be read" in body["error"], body
        status, body, _ = post(address, b'{"a": 1}\n' + b"9" * 5000 + b"\n", "application/x-ndjson")
        assert status == 400 and body["error"].startswith("line 2: JSON that cannot be read"), body
        result = run.stop()
    assert result.roots == 0


def test_http_refuses_more_records_than_max_records_and_closes_idle_connections():
    spout = Http(max_records=3, timeout=0.5)
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        status, body, _ = post(address, b"[1, 2, 3, 4]")
        assert status == 413 and "at most 3" in body["error"], body
        assert post(address, b"[1, 2, 3]")[0] == 202
        started = time.monotonic()
        assert _raw_exchange(address, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n[1") == b""
        assert time.monotonic() - started < 4  # closed after the 0.5 s timeout, not the client's 5 s
        wait_for(lambda: len(run.emitted("sink")) == 3)
        result = run.stop()
    assert result.roots == 3


def test_http_answers_503_while_max_pending_records_are_in_flight(mode):
    spout = Http()
    with running(through(spout, slow, max_pending=2), mode) as run:
        address = wait_listening(spout)
        assert post(address, b"[1, 2]")[0] == 202
        status, body, headers = post(address, b"[3]")
        assert status == 503 and headers["Retry-After"] == "1" and "limit is 2" in body["error"]
        wait_for(lambda: post(address, b"[4]")[0] == 202, timeout=5, what="room again")
        result = run.stop()
    assert [v[0] for v in result.emitted("sink")] == [1, 2, 4]


def test_http_answers_503_to_a_request_the_run_stopped_before_logging(mode):
    spout = Http()
    with running(through(spout, slow, max_pending=5), mode) as run:
        address = wait_listening(spout)
        assert post(address, b"[1]")[0] == 202
        run.scheduler.stop()  # no more tuples from the spouts: what is queued now is never logged
        status, body, _ = post(address, b"[2, 3]")
        assert status == 503 and body["error"].startswith("the run stopped before this request was logged")
        result = run.join()
    assert result.emitted("sink") == [(1,)]


# -- killed while clients send -------------------------------------------------------------------

CRASH = """
import os, sqlite3
from consecution import Bolt, Topology
from consecution.spouts import Http, Tcp

class Store(Bolt):
    def prepare(self, context):
        self.db = sqlite3.connect("records.sqlite", isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS records (record TEXT PRIMARY KEY)")
    def process(self, tup):
        self.db.execute("INSERT OR IGNORE INTO records VALUES (?)", (str(tup[0]),))

port = int(os.environ["SPOUT_PORT"])
spout = Tcp(port=port) if os.environ["SPOUT"] == "tcp" else Http(port=port)
topology = Topology("crash", max_retries=30, retry_backoff=0)
topology.spout("source", spout)
topology.bolt("store", Store()).shuffle_grouping("source")
"""


class Client:
    """Sends numbered records until told to stop, through restarts; keeps what was confirmed."""

    def __init__(self, kind, port, name):
        self.kind, self.port, self.name = kind, port, name
        self.confirmed, self.stopping, self.n = set(), False, 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                self.tcp() if self.kind == "tcp" else self.http()
            except (OSError, http.client.HTTPException):
                time.sleep(0.02)  # the server is down: try again

    def batch(self):
        records = [f"{self.name}-{self.n + i}" for i in range(random.randint(1, 20))]
        self.n += len(records)
        return records

    def tcp(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            reader = sock.makefile("rb")
            while not self.stopping:
                records = self.batch()
                sock.sendall("".join(r + "\n" for r in records).encode())
                for record in records:
                    if reader.readline() != b"ok\n":
                        return
                    self.confirmed.add(record)

    def http(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            while not self.stopping:
                records = self.batch()
                conn.request("POST", "/", body="\n".join(records).encode(), headers={"Content-Type": "text/plain"})
                response = conn.getresponse()
                response.read()
                if response.status == 202:
                    self.confirmed.update(records)
        finally:
            conn.close()


def _start(tmp_path, kind, port, mode):
    env = dict(os.environ, SPOUT=kind, SPOUT_PORT=str(port))
    log = open(tmp_path / "run.log", "a")
    try:
        return subprocess.Popen([sys.executable, "-m", "consecution", "run", "crash.py", "--mode", mode,
                                 "--workers", "2", "--log-format", "json"], cwd=tmp_path, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    finally:
        log.close()


@pytest.mark.parametrize("kind, mode", [("tcp", "process"), ("http", "thread")])
def test_killed_while_clients_send_every_confirmed_record_is_processed(tmp_path, kind, mode):
    (tmp_path / "crash.py").write_text(CRASH)
    port = free_port()
    clients = []
    for kill in range(2):
        proc = _start(tmp_path, kind, port, mode)
        if not clients:
            clients = [Client(kind, port, f"c{k}") for k in range(3)]
        confirmed_before = sum(len(c.confirmed) for c in clients)
        wait_for(lambda: sum(len(c.confirmed) for c in clients) > confirmed_before + 50, timeout=20,
                 what="records confirmed by this run")
        time.sleep(random.uniform(0.1, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = _start(tmp_path, kind, port, mode)
    confirmed_before = sum(len(c.confirmed) for c in clients)
    wait_for(lambda: sum(len(c.confirmed) for c in clients) > confirmed_before + 50, timeout=20,
             what="records confirmed by the last run")
    for c in clients:
        c.stopping = True
    for c in clients:
        c.thread.join(10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, (tmp_path / "run.log").read_text()[-3000:]
    db = sqlite3.connect(tmp_path / "records.sqlite")
    stored = {r for (r,) in db.execute("SELECT record FROM records")}
    confirmed = set().union(*(c.confirmed for c in clients))
    assert len(confirmed) > 150
    assert confirmed - stored == set()


EMFILE = """
import os
from consecution import Topology
from consecution.spouts import Tcp

topology = Topology("fds", reliability="none")
topology.spout("lines", Tcp(port=int(os.environ["SPOUT_PORT"])))
topology.bolt("sink", print).shuffle_grouping("lines")
"""


def test_tcp_keeps_accepting_after_the_process_ran_out_of_file_descriptors(tmp_path):
    """With 64 descriptors and 100 clients at once, accept() fails with EMFILE: the listener
    backs off and goes on (it died for good before); once the clients leave, a new one is
    served."""
    import resource
    (tmp_path / "fds.py").write_text(EMFILE)
    port = free_port()
    env = dict(os.environ, SPOUT_PORT=str(port))
    with open(tmp_path / "run.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", "fds.py", "--log-format", "json"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    try:
        wait_for(lambda: b"spout.listening" in (tmp_path / "run.log").read_bytes(), timeout=30)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
        wait_for(lambda: b"spout.accept_failed" in (tmp_path / "run.log").read_bytes(), timeout=30)
        for client in clients:
            client.close()
        time.sleep(1.5)  # the backoff is at most 1 s
        assert send_lines(("127.0.0.1", port), [b"still here\n"]) == [b"ok"]
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
