"""Tcp and Http spouts against real sockets and an HTTP client, in every mode; and a real
`consecution run` killed with SIGKILL while clients send: every confirmed record is processed."""
import contextlib
import http.client
import json
import os
import random
import select
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


def _thread_cpu(thread):
    """Seconds of CPU a thread of this process used (user and system), from /proc."""
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_tcp_stops_reading_a_client_that_never_reads_its_answers_and_serves_the_others():
    """Answers owed to a client that does not read them are bounded: past OWED_BYTES the
    server stops reading its lines (they wait in the client's socket), instead of reading and
    answering into memory without end, while another client is served; and it waits without
    spinning. (Lines that are not UTF-8: each is answered at once with an error of ~60 bytes,
    so nothing but this bound stops the reading, and the bound is reached without a backlog of
    records to log first.)"""
    from consecution.spouts.net import OWED_BYTES
    spout = Tcp()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        greedy = socket.create_connection(address, timeout=10)
        greedy.setblocking(False)
        chunk, owed, blocked_since = b"\xff\n" * 32768, 0, None
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
            # one read of 64 KB past the bound adds its own answers: 32,768 errors of ~64 bytes
            assert owed <= OWED_BYTES + 32768 * 70, f"{owed} bytes of answers owed to a client that reads none"
        assert blocked_since is not None, "the server kept reading a client that reads nothing"
        busy = _thread_cpu(spout.thread)
        time.sleep(1)
        assert _thread_cpu(spout.thread) - busy < 0.3, "the server thread spins on a client that reads nothing"
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
        inner = b'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n[1]'
        for method, path in ((b"POST", b"/other"), (b"PUT", b"/")):
            answer = _raw_exchange(address, method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                   str(len(inner)).encode() + b"\r\n\r\n" + inner)
            assert answer.count(b"HTTP/1.1") == 1 and b"Connection: close" in answer, answer
        for headers in (b"Content-Length: 3\r\nContent-Length: 3\r\n",
                        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"):
            answer = _raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
                                   headers + b"\r\n[1]")
            assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1") == 1, answer
        # HTTP/1.1 requires a Host header
        answer = _raw_exchange(address, b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 3"
                               b"\r\n\r\n[1]")
        assert answer.startswith(b"HTTP/1.1 400") and b"Host" in answer, answer
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
        assert _raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n[1") == b""
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


def _closed_within(sock, seconds):
    """Whether the server closes `sock` within `seconds` (reading and dropping what it answers)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if select.select([sock], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionError:
                return True
    return False


def test_http_serves_200_clients_at_once():
    spout = Http()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        start = threading.Barrier(201)
        statuses = []

        def client(k):
            start.wait(10)
            statuses.append(post(address, json.dumps({"k": k}).encode())[0])

        clients = [threading.Thread(target=client, args=(k,)) for k in range(200)]
        for c in clients:
            c.start()
        start.wait(10)
        started = time.monotonic()
        for c in clients:
            c.join(20)
        took = time.monotonic() - started
        result = run.stop()
    assert statuses == [202] * 200
    assert took < 5, f"200 requests took {took:.1f} s"
    assert sorted(v[0]["k"] for v in result.emitted("sink")) == list(range(200))


def test_http_keeps_a_connection_alive_across_requests_and_takes_chunked_bodies():
    spout = Http(max_body=100)
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        conn = http.client.HTTPConnection(*address, timeout=10)
        socks = []
        for body in (b"[1, 2]", iter([b"[3,", b" 4]"]), b"[5]"):  # the iterator is sent chunked
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (202, {"accepted": 2 if body != b"[5]" else 1})
            socks.append(conn.sock)
        assert socks[0] is socks[1] is socks[2] is not None  # one connection for the three requests
        conn.close()
        chunked = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        answer = _raw_exchange(address, chunked.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") +
                               b"5\r\nsix\ns\r\n5\r\neven\n\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 202") and answer.endswith(b'{"accepted": 2}\n'), answer
        with socket.create_connection(address, timeout=5) as sock:  # past max_body while it arrives
            sock.sendall(chunked + b"40\r\n" + b"x" * 64 + b"\r\n")
            sock.sendall(b"40\r\n" + b"x" * 64 + b"\r\n")
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 413") and b"larger than 100 bytes" in answer, answer
            assert _closed_within(sock, 3)
        with socket.create_connection(address, timeout=5) as sock:  # the body only after a 100 (curl)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n")
            assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
            sock.sendall(b"eight\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 202")
        result = run.stop()
    assert [v[0] for v in result.emitted("sink")] == [1, 2, 3, 4, 5, "six", "seven", "eight"]


def test_http_refuses_two_content_lengths_even_equal_or_listed_and_closes():
    spout = Http()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        for lengths in (b"Content-Length: 3\r\ncontent-length: 3\r\n", b"Content-Length: 3, 3\r\n",
                        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"):
            with socket.create_connection(address, timeout=5) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + lengths +
                             b"\r\n[1]")
                answer = sock.recv(65536)
                assert answer.startswith(b"HTTP/1.1 400") and b"Connection: close" in answer, answer
                assert _closed_within(sock, 3)
        # a body line that looks like a header is not counted
        answer = _raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                                        b"Content-Length: 19\r\nConnection: close\r\n\r\nContent-Length: 5\r\n")
        assert answer.startswith(b"HTTP/1.1 202"), answer
        result = run.stop()
    assert result.emitted("sink") == [("Content-Length: 5",)]


def test_http_answers_431_to_a_head_too_large_and_takes_nothing():
    spout = Http()
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        for headers in (b"X-Big: " + b"a" * 70_000 + b"\r\n",
                        b"".join(b"X-Many-%d: %s\r\n" % (i, b"b" * 40) for i in range(2000))):
            answer = _raw_exchange(address, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
                                            b"Content-Length: 3\r\n" + headers + b"\r\none")
            assert answer.startswith(b"HTTP/1.1 431") and answer.count(b"HTTP/1.1") == 1, answer[:200]
            assert b"Connection: close" in answer
        result = run.stop()
    assert result.roots == 0


def test_http_closes_a_client_that_sends_its_head_or_body_slowly_and_serves_the_others_meanwhile():
    """The timeout is for the whole head, however steadily it trickles in (slowloris); a body
    must keep arriving, each wait at most `timeout`; other clients are answered meanwhile."""
    spout = Http(timeout=0.5)
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
        with socket.create_connection(address, timeout=5) as sock:
            started, closed_after = time.monotonic(), None
            for i in range(len(head)):  # one byte every 0.2 s: 16 s for the head
                sock.sendall(head[i:i + 1])
                if i == 0:
                    asked = time.monotonic()
                    assert post(address, b"[1]")[0] == 202
                    assert time.monotonic() - asked < 0.4
                if _closed_within(sock, 0.2):
                    closed_after = time.monotonic() - started
                    break
        assert closed_after is not None and 0.4 < closed_after < 2, closed_after
        with socket.create_connection(address, timeout=5) as sock:  # a body that stops arriving
            sock.sendall(head + b"t")
            started = time.monotonic()
            assert _closed_within(sock, 3)
            assert 0.4 < time.monotonic() - started < 2
        with socket.create_connection(address, timeout=5) as sock:  # a body that keeps arriving
            sock.sendall(head)
            for byte in b"two":
                time.sleep(0.3)
                sock.sendall(bytes([byte]))
            assert sock.recv(65536).startswith(b"HTTP/1.1 202")
        wait_for(lambda: len(run.emitted("sink")) == 2)
        result = run.stop()
    assert [v[0] for v in result.emitted("sink")] == [1, "two"]


def test_http_answers_503_to_a_connection_past_max_connections_and_closes_it():
    spout = Http(max_connections=2)
    with running(through(spout), "single") as run:
        address = wait_listening(spout)
        first = http.client.HTTPConnection(*address, timeout=10)
        first.request("POST", "/", body=b"[1]", headers={"Content-Type": "application/json"})
        assert first.getresponse().read() == b'{"accepted": 1}\n'   # kept alive: one of the two
        second = socket.create_connection(address, timeout=5)
        third = socket.create_connection(address, timeout=5)
        answer = third.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer, answer
        assert b"more than 2 connections" in answer and _closed_within(third, 3)
        third.close()
        second.close()  # room again
        wait_for(lambda: post(address, b"[2]")[0] == 202, timeout=5, what="room for a connection")
        first.close()
        result = run.stop()
    assert [v[0] for v in result.emitted("sink")] == [1, 2]


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


@pytest.mark.parametrize("kind, mode", [("tcp", "process"), ("http", "thread"), ("http", "ray")])
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
from consecution.spouts import Http, Tcp

port = int(os.environ["SPOUT_PORT"])
topology = Topology("fds", reliability="none")
topology.spout("source", Tcp(port=port) if os.environ["SPOUT"] == "tcp" else Http(port=port))
topology.bolt("sink", print).shuffle_grouping("source")
"""


@contextlib.contextmanager
def out_of_file_descriptors(tmp_path, kind):
    """A `consecution run` with 64 descriptors and a `kind` spout; 100 clients connect at once
    (accept() fails with EMFILE), then leave. Yields the spout's port and the run's log."""
    import resource
    (tmp_path / "fds.py").write_text(EMFILE)
    port = free_port()
    env = dict(os.environ, SPOUT=kind, SPOUT_PORT=str(port))
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "consecution", "run", "fds.py", "--log-format", "json"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=out,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    try:
        wait_for(lambda: b"spout.listening" in log.read_bytes(), timeout=30)
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
        wait_for(lambda: b"spout.accept_failed" in log.read_bytes(), timeout=30)
        for client in clients:
            client.close()
        yield port, log
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_tcp_keeps_accepting_after_the_process_ran_out_of_file_descriptors(tmp_path):
    """The listener backs off and goes on (it died for good before); once the clients leave, a
    new one is served."""
    with out_of_file_descriptors(tmp_path, "tcp") as (port, _):
        time.sleep(1.5)  # the backoff is at most 1 s
        assert send_lines(("127.0.0.1", port), [b"still here\n"]) == [b"ok"]


def test_http_keeps_accepting_after_the_process_ran_out_of_file_descriptors(tmp_path):
    """asyncio pauses accepting for a second and goes on; its error reaches the run's log as an
    event, not as a traceback; once the clients leave, a new request is answered."""
    with out_of_file_descriptors(tmp_path, "http") as (port, log):
        assert post(("127.0.0.1", port), b'["still here"]')[:2] == (202, {"accepted": 1})
        events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        failed = [e for e in events if e["event"] == "spout.accept_failed"]
        assert failed[0]["protocol"] == "http" and "Too many open files" in failed[0]["error"], failed[0]
        assert len(failed) < 10  # once per pause, not once per connection asyncio failed to accept
        assert "Traceback" not in log.read_text()
