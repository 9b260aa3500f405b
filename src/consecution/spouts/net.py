"""Tcp: a line-based network listener that confirms a line only once it is in the committed log.

It runs its server (a selector loop, `LineServer`) on a background thread started in `open`
and stopped in `close`; the server hands lines to the spout through an `Inbox` (see inbox.py),
and the spout's `logged` hook, called by the runtime right after the log commit, is what lets
the server answer. It runs as one task (a port is bound once). The bound address is
`spout.address` after `open` (useful with `port=0`). Http (http.py) works the same way.
"""
import collections
import selectors
import socket
import threading
import time

from consecution.runtime.logs import logger

from .inbox import Closed, InboxSpout

__all__ = ["Tcp"]

OK = b"ok\n"
ACCEPT_BACKOFF = 0.05  # seconds a listener waits after accept() failed (doubling, up to 1 s)
OWED_BYTES = 1 << 20  # answers waiting for a client that does not read them, before it is not read any more
                      # (the read that passes it adds its own: up to 2 MB for 64 KB of lines that are errors)


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
        self.out = bytearray()   # answers due, not sent yet (appended in place: a bytes += would copy it all)
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
                conn.out.clear()
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
        del conn.out[:sent]
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
