"""Tcp and Http: network listeners that confirm a record only once it is in the committed log.

Each runs its server on a background thread started in `open` and stopped in `close`; the
server hands records to the spout through an `Inbox` (see inbox.py), and the spout's `logged`
hook, called by the runtime right after the log commit, is what lets the server answer.
Both run as one task (a port is bound once). The bound address is `spout.address` after
`open` (useful with `port=0`).
"""
import collections
import http.server
import json
import selectors
import socket
import threading
import time

import msgpack

from consecution.runtime.logs import logger

from .inbox import Closed, Full, InboxSpout

__all__ = ["Tcp", "Http"]

OK = b"ok\n"
ACCEPT_BACKOFF = 0.05  # seconds a listener waits after accept() failed (doubling, up to 1 s)
OWED_BYTES = 1 << 20  # answers waiting for a client that does not read them, at most (then it is not read)


class Tcp(InboxSpout):
    """A line-based TCP listener: every line a client sends is one tuple (field `line`).

    Protocol: the client sends UTF-8 lines; for each line the server answers `ok\\n` once the
    line is in a committed log transaction, in the order the lines were sent, or
    `error: line N: ...\\n` for a line it refuses (not valid UTF-8: the line is skipped). After
    the client shuts down its sending side, the server closes the connection once every line is
    confirmed. A line longer than `max_line` bytes gets an error and the connection is closed. A
    client that does not read its answers is not read from past OWED_BYTES (1 MB) of them; when
    the process is out of file descriptors, accepting pauses (50 ms, doubling up to 1 s) and
    goes on.
    With `reply=False` nothing is answered; the close after the client's shutdown still comes
    only once everything is logged. Many clients may be connected at once.

    Guarantee: a line confirmed by `ok` (or by the close) is in the log and is processed even if
    the process is killed right after; a line not yet confirmed may be lost, so a sender that
    waits for the confirmation and sends again what was not confirmed loses nothing (it may send
    a line twice). With reliability other than "replay" with a state directory, `ok` means only
    "handed to the runtime". Backpressure: while the spout holds `max_pending` lines (or
    `limit`), it stops reading its sockets and TCP flow control slows the senders down.
    """

    fields = ("line",)

    def __init__(self, host="127.0.0.1", port=0, reply=True, max_line=1 << 20, limit=None):
        self.host, self.port = host, port
        self.reply = reply
        self.max_line = max_line
        self.limit = limit

    def open(self, context):
        super().open(context)
        self.server = LineServer((self.host, self.port), self.inbox, self.reply, self.max_line)
        self.address = self.server.address
        self.thread = threading.Thread(target=self.server.serve, name=f"consecution-tcp-{context.component}",
                                       daemon=True)
        self.thread.start()
        logger().info("spout.listening", component=context.component, protocol="tcp", host=self.address[0],
                      port=self.address[1])

    def logged(self, msg_ids):
        super().logged(msg_ids)
        self.server.wake()

    def close(self):
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
            self.thread.join(5)
            self.inbox.close()


class Connection:
    """One client: what it sent and the answers it is owed, in order."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""
        self.lines = 0           # lines received
        self.replies = collections.deque()  # one [answer or None] per line, in order
        self.out = b""
        self.eof = False         # the client shut down its side
        self.closing = False     # read no more; close once every answer is sent
        self.events = 0          # what the selector watches for on this socket

    def owe(self):
        slot = [None]
        self.replies.append(slot)
        return slot

    def ready(self):
        """Move the answers that are due, in order, into `out`."""
        replies = self.replies
        while replies and replies[0][0] is not None:
            self.out += replies.popleft()[0]

    def done(self):
        return (self.eof or self.closing) and not self.replies and not self.out


class LineServer:
    """A selector loop on one thread: accepts clients, reads lines into the inbox, and sends
    the answers that `logged` made due (it is woken through a socket pair)."""

    def __init__(self, address, inbox, reply, max_line):
        self.inbox, self.reply, self.max_line = inbox, reply, max_line
        self.listener = socket.create_server(address, reuse_port=False)
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()[:2]
        self.waker, self.wakee = socket.socketpair()
        self.waker.setblocking(False)
        self.wakee.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wakee, selectors.EVENT_READ, "wake")
        self.connections = {}    # socket -> Connection
        self.reading = True
        self.stopped = False
        self.backoff = ACCEPT_BACKOFF  # seconds without accepting after accept() failed
        self.accepting_again = None    # when to accept again, while paused

    def wake(self):
        try:
            self.waker.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already awake, or stopped

    def stop(self):
        self.stopped = True
        self.wake()

    def serve(self):
        try:
            while not self.stopped:
                for key, mask in self.selector.select(0.05):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wakes()
                    else:
                        if mask & selectors.EVENT_READ:
                            self._read(key.data)
                        if mask & selectors.EVENT_WRITE:
                            self._send(key.data)
                self._answer()
                self._throttle()
                self._resume_accepting()
        finally:
            for conn in list(self.connections.values()):
                self._drop(conn)
            self.selector.close()
            self.listener.close()
            self.waker.close()
            self.wakee.close()

    def _accept(self):
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as exc:  # out of file descriptors (EMFILE, ENFILE) or memory: wait, go on
            self._pause_accepting(exc)
            return
        self.backoff = ACCEPT_BACKOFF
        sock.setblocking(False)
        conn = self.connections[sock] = Connection(sock)
        self._update(conn)

    def _pause_accepting(self, exc):
        """Stop accepting for `backoff` seconds (doubled on each failure in a row, up to 1 s):
        the clients wait in the listen backlog meanwhile, and the listener lives on."""
        self.selector.unregister(self.listener)
        self.accepting_again = time.monotonic() + self.backoff
        logger().warning("spout.accept_failed", protocol="tcp", error=f"{type(exc).__name__}: {exc}",
                         retry_in=self.backoff)
        self.backoff = min(1.0, self.backoff * 2)

    def _resume_accepting(self):
        if self.accepting_again is not None and time.monotonic() >= self.accepting_again:
            self.accepting_again = None
            self.selector.register(self.listener, selectors.EVENT_READ, "accept")

    def _drain_wakes(self):
        try:
            while self.wakee.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _events(self, conn):
        # a client that does not read its answers is not read from either: its answers wait in
        # `out`, bounded by OWED_BYTES, and its lines wait in its own socket buffer
        reading = self.reading and not conn.eof and not conn.closing and len(conn.out) < OWED_BYTES
        events = selectors.EVENT_READ if reading else 0
        return events | (selectors.EVENT_WRITE if conn.out else 0)

    def _read(self, conn):
        try:
            data = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            conn.eof = True
            if conn.buffer:  # a last line without a line break
                self._lines(conn, [conn.buffer])
                conn.buffer = b""
            self._update(conn)
            return
        parts = (conn.buffer + data).split(b"\n")
        conn.buffer = parts.pop()
        too_long = next((i for i, part in enumerate(parts) if len(part) > self.max_line), None)
        if too_long is not None:  # a whole line too long: the lines before it count, then no more
            parts = parts[:too_long]
        self._lines(conn, parts)
        if too_long is not None or len(conn.buffer) > self.max_line:
            conn.lines += 1
            conn.owe()[0] = f"error: line {conn.lines}: longer than {self.max_line} bytes\n".encode()
            conn.buffer = b""
            conn.closing = True
            self._update(conn)

    def _lines(self, conn, parts):
        items = []
        for raw in parts:
            conn.lines += 1
            slot = conn.owe()
            try:
                line = (raw[:-1] if raw.endswith(b"\r") else raw).decode("utf-8")
            except UnicodeDecodeError as exc:
                slot[0] = f"error: line {conn.lines}: not valid UTF-8 ({exc.reason} at byte {exc.start})\n".encode()
                continue
            items.append(((line,), _filler(slot)))
        if not items:
            return
        try:
            self.inbox.offer(items, force=True)
        except Closed:
            conn.closing = True

    def _answer(self):
        """Send what is due; close the connections that are done."""
        for conn in list(self.connections.values()):
            conn.ready()
            if not self.reply:
                conn.out = b""
            if conn.out:
                self._send(conn)
            elif conn.done():
                self._drop(conn)

    def _send(self, conn):
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out and conn.done():
            self._drop(conn)
            return
        self._update(conn)

    def _throttle(self):
        reading = not self.inbox.full()
        if reading != self.reading:
            self.reading = reading
            for conn in self.connections.values():
                self._update(conn)

    def _update(self, conn):
        """Register the socket for what the connection waits for now (maybe nothing)."""
        if conn.sock not in self.connections:
            return
        events = self._events(conn)
        if events == conn.events:
            return
        if conn.events and events:
            self.selector.modify(conn.sock, events, conn)
        elif events:
            self.selector.register(conn.sock, events, conn)
        else:
            self.selector.unregister(conn.sock)
        conn.events = events

    def _drop(self, conn):
        if self.connections.pop(conn.sock, None) is None:
            return
        if conn.events:
            self.selector.unregister(conn.sock)
        conn.sock.close()


def _filler(slot):
    def confirmed():
        slot[0] = OK
    return confirmed


class Http(InboxSpout):
    """An HTTP endpoint: the records of each `POST path` become tuples (field `record`).

    The body, by its Content-Type:
    - `application/json`: one JSON document; an array gives one tuple per item, anything else
      one tuple;
    - `application/x-ndjson` or `application/jsonl`: one JSON value per non-empty line;
    - `text/plain` (or none): one tuple per non-empty line, the line as a string.

    Answers: `202 Accepted` (`{"accepted": n}`) only once every record of the request is in a
    committed log transaction; `400` for a body that cannot be read, naming the line (nothing of
    it is taken); `404` for another path, `405` for another method, `411` without a
    Content-Length, `413` past `max_body` bytes or `max_records` records (nothing of it is taken),
    `415` for another content type; `503` with
    `Retry-After` while the spout holds `max_pending` records (or `limit`): the backpressure a
    client can see, nothing of that request is taken; and `503` when the run stops before the
    request's records were logged (some may have been: sending again may duplicate them).

    A connection idle, or slow to send a request, for `timeout` seconds is closed; the listen
    backlog is 128 connections.

    Guarantee: what got a 202 is processed even if the process is killed right after (with
    reliability "replay" and a state directory; otherwise 202 means "handed to the runtime").
    A client that sends again what did not get a 202 loses nothing, and may send a record twice.
    """

    fields = ("record",)

    def __init__(self, host="127.0.0.1", port=0, path="/", max_body=10 << 20, limit=None, max_records=10_000,
                 timeout=30.0):
        self.host, self.port, self.path = host, port, path
        self.max_body = max_body
        self.limit = limit
        self.max_records = max_records
        self.timeout = timeout

    def open(self, context):
        super().open(context)
        self.server = _HttpServer((self.host, self.port), _handler_for(self))
        self.address = self.server.server_address[:2]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name=f"consecution-http-{context.component}", daemon=True)
        self.thread.start()
        logger().info("spout.listening", component=context.component, protocol="http", host=self.address[0],
                      port=self.address[1], path=self.path)

    def accept(self, records):
        """Offer a request's records; return the `Receipt` that is set once they are logged.
        Raises `Full` or `Closed`."""
        receipt = Receipt(len(records))
        self.inbox.offer([((record,), receipt.logged) for record in records])
        return receipt

    def close(self):
        server = getattr(self, "server", None)
        if server is None:
            return
        for _, confirm in self.inbox.close():   # never emitted: those requests get a 503
            confirm.__self__.abandon()
        for receipt in {c.__self__ for c in self.on_logged.values()}:
            receipt.abandon()
        server.shutdown()
        server.server_close()
        self.thread.join(5)


class Receipt:
    """The records of one request: set once all are logged, or abandoned when the run stops."""

    def __init__(self, n):
        self.left = n
        self.ok = False
        self.event = threading.Event()

    def logged(self):
        self.left -= 1
        if self.left == 0:
            self.ok = True
            self.event.set()

    def abandon(self):
        self.event.set()


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the listen backlog (socketserver's default is 5)


class BadBody(ValueError):
    """A request body that cannot be read (400)."""


class UnsupportedType(ValueError):
    """A request body of a content type the spout does not take (415)."""


def parse_body(body, content_type):
    """The records of a request body, or BadBody naming the place; see `Http`."""
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[:exc.start].count(b"\n") + 1
        raise BadBody(f"line {line}: not valid UTF-8 ({exc.reason})") from None
    if kind == "application/json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadBody(f"line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # an int of over 4,300 digits, nesting too deep
            raise BadBody(f"JSON that cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from None
        records = value if isinstance(value, list) else [value]
        where = "item"
    elif kind in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BadBody(f"line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                except (ValueError, RecursionError) as exc:
                    raise BadBody(f"line {number}: JSON that cannot be read: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}") from None
        where = "record"
    elif kind in ("text/plain", ""):
        records = [line for line in text.splitlines() if line.strip()]
        where = "line"
    else:
        raise UnsupportedType(kind)
    for number, record in enumerate(records, 1):
        try:
            msgpack.packb(record)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise BadBody(f"{where} {number}: cannot be stored ({str(exc)[:200]})") from None
    if not records:
        raise BadBody("the body holds no records")
    return records


def _handler_for(spout):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "consecution"
        timeout = spout.timeout  # seconds a connection may sit idle or send slowly (socket timeout)

        def do_POST(self):
            # anything refused before its body is read closes the connection: the unread body
            # must never be taken for the next request (request smuggling)
            if self.path.split("?")[0] != spout.path:
                return self._answer(404, f"no endpoint at {self.path}; POST to {spout.path}", close=True)
            if "Transfer-Encoding" in self.headers or len(self.headers.get_all("Content-Length", [])) > 1:
                return self._answer(400, "one Content-Length is required, and no Transfer-Encoding", close=True)
            length = self.headers.get("Content-Length")
            if length is None:
                return self._answer(411, "a Content-Length is required", close=True)
            if not length.isdigit() or int(length) > spout.max_body:
                return self._answer(413, f"the body is larger than {spout.max_body} bytes", close=True)
            body = self.rfile.read(int(length))
            try:
                records = parse_body(body, self.headers.get("Content-Type", ""))
            except BadBody as exc:
                return self._answer(400, str(exc))
            except UnsupportedType as exc:
                return self._answer(415, f"content type {exc} is not taken: send application/json, "
                                    "application/x-ndjson or text/plain")
            if len(records) > spout.max_records:
                return self._answer(413, f"{len(records)} records in one request; at most {spout.max_records}")
            try:
                receipt = spout.accept(records)
            except Full as exc:
                return self._answer(503, f"busy: {exc}; retry later", retry_after=1)
            except Closed:
                return self._answer(503, "the run is stopping; nothing of this request was taken")
            receipt.event.wait()
            if not receipt.ok:
                return self._answer(503, "the run stopped before this request was logged; some records "
                                    "may have been: sending it again may duplicate them")
            self._answer(202, {"accepted": len(records)})

        def _refuse(self):
            self._answer(405, f"only POST is taken, at {spout.path}", allow="POST", close=True)

        do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _refuse

        def _answer(self, status, message, retry_after=None, allow=None, close=False):
            body = json.dumps(message if isinstance(message, dict) else {"error": message}).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if retry_after is not None:
                self.send_header("Retry-After", str(retry_after))
            if allow is not None:
                self.send_header("Allow", allow)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def log_message(self, format, *args):
            pass  # the run's own log says what matters

    return Handler
