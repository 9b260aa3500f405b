"""Http: an HTTP/1.1 listener that answers 202 only once a request's records are in the
committed log.

Its server (`HttpServer`: an asyncio event loop speaking HTTP/1.1 through h11) runs on a
background thread started in `open` and stopped in `close`; it hands records to the spout
through an `Inbox` (see inbox.py), and the spout's `logged` hook, called by the runtime right
after the log commit, settles the request's `Receipt`, which lets the server answer. It runs as
one task (a port is bound once). The bound address is `spout.address` after `open` (useful with
`port=0`).
"""
import asyncio
import concurrent.futures
import json
import re
import socket
import threading
from http import HTTPStatus

import h11
import msgpack

from consecution.runtime.logs import logger

from .inbox import Closed, Full, InboxSpout

__all__ = ["Http"]


class Http(InboxSpout):
    """An HTTP/1.1 endpoint: the records of each `POST path` become tuples (field `record`).

    The body, by its Content-Type:
    - `application/json`: one JSON document; an array gives one tuple per item, anything else
      one tuple;
    - `application/x-ndjson` or `application/jsonl`: one JSON value per non-empty line;
    - `text/plain` (or none): one tuple per non-empty line, the line as a string.
    The body comes with a `Content-Length` or chunked: `Transfer-Encoding: chunked` is taken
    (decoded as it arrives, and refused with a 413 as soon as it passes `max_body` bytes).
    `Expect: 100-continue` is answered.

    Answers (a JSON body, `{"error": "..."}` for every refusal):
    - `202 Accepted` (`{"accepted": n}`) only once every record of the request is in a committed
      log transaction;
    - `400` for a body that cannot be read, naming the line (nothing of it is taken), and for a
      request HTTP/1.1 does not allow or that could be read two ways: no `Host`, a malformed
      line, two `Content-Length`s (even equal), `Content-Length` with `Transfer-Encoding`;
    - `404` for another path, `405` for another method, `411` with neither a Content-Length nor
      chunked, `413` past `max_body` bytes or `max_records` records (nothing of it is taken),
      `415` for another content type, `431` for a request head over 64 KB;
    - `503` with `Retry-After: 1` while the spout holds `max_pending` records (or `limit`): the
      backpressure a client can see, nothing of that request is taken; to a connection past
      `max_connections` (then closed); and `503` when the run stops before the request's records
      were logged (some may have been: sending again may duplicate them).
    A request refused before its body is read (404, 405, 411, 413 by its Content-Length, 415, a
    malformed request) is answered and its connection closed, so an unread body is never taken
    for the next request; otherwise a connection is kept alive for the next one.

    Timeouts, `timeout` seconds: a connection idle between requests, or whose request head is not
    complete `timeout` seconds after the server began waiting for it, is closed without an answer
    (a client sending its head a byte at a time does not hold it longer); a body must keep
    arriving: no wait for more of it may last longer than `timeout`; nor may the wait for a
    client to take its answer. At most `max_connections` connections are served at once.

    The server is one asyncio event loop on a background thread (`consecution-http-<component>`)
    parsing HTTP with h11; request bodies are parsed on a small thread pool, so a large body
    does not hold the other clients up. The listen backlog is 128 connections; when the process
    is out of file descriptors accepting pauses for a second (`spout.accept_failed` in the log)
    and goes on.

    Guarantee: what got a 202 is processed even if the process is killed right after (with
    reliability "replay" and a state directory; otherwise 202 means "handed to the runtime").
    A client that sends again what did not get a 202 loses nothing, and may send a record twice.
    """

    fields = ("record",)

    def __init__(self, host="127.0.0.1", port=0, path="/", max_body=10 << 20, limit=None, max_records=10_000,
                 timeout=30.0, max_connections=1024):
        self.host, self.port, self.path = host, port, path
        self.max_body = max_body
        self.limit = limit
        self.max_records = max_records
        self.timeout = timeout
        self.max_connections = max_connections

    def open(self, context):
        super().open(context)
        self.server = HttpServer(self, context.component)
        self.address = self.server.address
        self.thread = threading.Thread(target=self.server.serve, name=f"consecution-http-{context.component}",
                                       daemon=True)
        self.thread.start()
        logger().info("spout.listening", component=context.component, protocol="http", host=self.address[0],
                      port=self.address[1], path=self.path)

    def accept(self, records):
        """Offer a request's records; return the `Receipt` that is settled once they are logged.
        Called on the server's event loop. Raises `Full` or `Closed`."""
        receipt = Receipt(len(records), self.server.loop)
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
        server.stop()   # after the abandons: the requests waiting for them are answered first
        self.thread.join(SHUTDOWN_GRACE + 3)


class Receipt:
    """The records of one request. `settled` (a future of the server's event loop) becomes True
    once all are logged, or False when the run stops first. `logged` is called on the scheduler
    thread, `abandon` from `close`: both hand the result to the loop, which keeps the first."""

    def __init__(self, n, loop):
        self.left = n
        self.ok = False
        self.loop = loop
        self.settled = loop.create_future()

    def logged(self):
        self.left -= 1
        if self.left == 0:
            self.ok = True
            self._settle(True)

    def abandon(self):
        self._settle(False)

    def _settle(self, ok):
        try:
            self.loop.call_soon_threadsafe(self._set, ok)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _set(self, ok):
        if not self.settled.done():
            self.settled.set_result(ok)


BACKLOG = 128            # the listen backlog
MAX_HEAD = 64 << 10      # bytes of a request line and headers, at most (then 431)
READ_SIZE = 64 << 10     # bytes read from a socket at once
PARSERS = 2              # threads parsing request bodies
LINGER = 1.0             # seconds a connection closed after an answer reads on (and drops) what its client sends
SHUTDOWN_GRACE = 2.0     # seconds `close` lets the requests in hand finish their answers
ACCEPT_RETRY = 1.0       # seconds asyncio stops accepting after accept() failed (its ACCEPT_RETRY_DELAY)
CLOSE = {"Connection": "close"}
HEADER_END = re.compile(b"\n\r?\n")


class HttpConnection:
    """One client: its h11 state machine, and the raw bytes of the request head being read."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.protocol = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.head = bytearray()  # what was received for the current request until its head was whole
        self.method = None       # of the current request
        self.reading = False     # waiting for the client to send (what `stop` may cut short)
        self.answered = False    # an answer was sent: close gently (see `_close`)
        self.task = None


class HttpServer:
    """An asyncio event loop on one thread: accepts clients, reads requests with h11, offers
    their records to the spout, and answers once their `Receipt` is settled."""

    def __init__(self, spout, component):
        self.spout, self.component = spout, component
        self.timeout = spout.timeout
        family = socket.AF_INET6 if ":" in spout.host else socket.AF_INET
        self.sock = socket.create_server((spout.host, spout.port), family=family, backlog=BACKLOG)
        self.address = self.sock.getsockname()[:2]
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(self._on_loop_error)
        self.parsers = concurrent.futures.ThreadPoolExecutor(PARSERS, f"consecution-http-{component}-parse")
        self.stopping = asyncio.Event()
        self.clients = set()   # HttpConnection, turned away or not
        self.served = 0        # clients not turned away
        self.accept_quiet_until = 0.0  # loop time before which a failed accept is not logged again

    def serve(self):
        """The thread: serve until `stop`."""
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
            left = asyncio.all_tasks(loop)  # clients accepted as the listener closed
            for task in left:
                task.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=1))
        finally:
            self.parsers.shutdown(wait=False, cancel_futures=True)
            loop.close()

    def stop(self):
        """Stop serving: from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.stopping.set)
        except RuntimeError:  # the loop is closed already
            pass

    async def _main(self):
        listener = await asyncio.start_server(self._client, sock=self.sock, backlog=BACKLOG)
        await self.stopping.wait()
        listener.close()
        for client in self.clients:  # waiting for its client: closed now; answering: finishes first
            if client.reading:
                client.writer.close()  # the read it waits for ends
        tasks = [client.task for client in self.clients]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for client in list(self.clients):
                client.writer.transport.abort()
                client.task.cancel()
            if late:
                await asyncio.wait(late, timeout=0.5)

    def _on_loop_error(self, loop, context):
        """asyncio's own errors, through our logger: an accept that failed (out of file
        descriptors: asyncio pauses accepting and goes on), or an exception nothing caught."""
        message = context.get("message", "")
        exc = context.get("exception")
        if isinstance(exc, asyncio.CancelledError):  # a client cut short by `stop`
            return
        error = f"{type(exc).__name__}: {exc}" if exc is not None else message
        if "accept" in message:
            now = loop.time()  # asyncio tries on up to `backlog` times before its pause: say it once
            if now < self.accept_quiet_until:
                return
            self.accept_quiet_until = now + ACCEPT_RETRY / 2
            logger().warning("spout.accept_failed", component=self.component, protocol="http", error=error,
                             retry_in=ACCEPT_RETRY)
        else:
            logger().error("spout.server_error", component=self.component, protocol="http", message=message,
                           error=error)

    async def _client(self, reader, writer):
        client = HttpConnection(reader, writer)
        client.task = asyncio.current_task()
        self.clients.add(client)
        limit = self.spout.max_connections
        served = self.served < limit
        if served:
            self.served += 1
        try:
            if not served:
                await self._answer(client, 503, f"more than {limit} connections; retry later",
                                   {"Retry-After": "1", **CLOSE})
            while served and await self._exchange(client):
                pass
        except h11.RemoteProtocolError as exc:
            await self._malformed(client, exc)
        except (asyncio.TimeoutError, OSError):  # too slow, or gone
            pass
        finally:
            if served:
                self.served -= 1
            await self._close(client)
            self.clients.discard(client)

    async def _exchange(self, client):
        """Serve one request on the connection; whether to keep it for the next."""
        request = await self._request(client)
        if request is None:
            return False
        client.method = request.method
        refusal = self._refusal(client, request)
        if refusal is not None:
            await self._answer(client, *refusal)
            return False
        body = await self._body(client)
        if body is None:
            await self._answer(client, 413, f"the body is larger than {self.spout.max_body} bytes", CLOSE)
            return False
        await self._answer(client, *await self._take(request, body))
        protocol = client.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            return True
        return False

    async def _request(self, client):
        """The next request's head (an h11 Request), or None once the client closed. Raises
        TimeoutError when the head is not whole `timeout` seconds after the wait began."""
        protocol = client.protocol
        client.head = bytearray(protocol.trailing_data[0])  # what came with the previous request
        client.method, client.answered = None, False
        deadline = self.loop.time() + self.timeout
        while True:
            event = protocol.next_event()
            if event is not h11.NEED_DATA:
                return event if type(event) is h11.Request else None
            data = await self._read(client, deadline - self.loop.time())
            protocol.receive_data(data)
            client.head += data  # bounded: past MAX_HEAD, next_event raises

    def _refusal(self, client, request):
        """The answer to a request refused before its body is read, or None."""
        spout = self.spout
        head = _head(client.head)
        if len(head) > MAX_HEAD:  # h11 limits a head still incomplete; this one came whole
            return 431, f"the request head is larger than {MAX_HEAD} bytes", CLOSE
        headers = dict(request.headers)  # names in lower case; h11 has joined equal Content-Lengths
        if b"transfer-encoding" in headers and b"content-length" in headers or _content_lengths(head) > 1:
            return 400, "one Content-Length or Transfer-Encoding: chunked is required, not both, and only once", CLOSE
        if request.method != b"POST":
            return 405, f"only POST is taken, at {spout.path}", {"Allow": "POST", **CLOSE}
        target = request.target.decode("ascii", "replace")
        if target.split("?")[0] != spout.path:
            return 404, f"no endpoint at {target}; POST to {spout.path}", CLOSE
        if b"transfer-encoding" not in headers and b"content-length" not in headers:
            return 411, "a Content-Length or Transfer-Encoding: chunked is required", CLOSE
        if int(headers.get(b"content-length", 0)) > spout.max_body:
            return 413, f"the body is larger than {spout.max_body} bytes", CLOSE
        try:
            body_kind(headers.get(b"content-type", b"").decode("latin-1"))
        except UnsupportedType as exc:
            return 415, (f"content type {exc} is not taken: send application/json, application/x-ndjson or "
                         "text/plain"), CLOSE
        return None

    async def _body(self, client):
        """The request body, read while it keeps arriving; None once it is past `max_body`."""
        protocol, chunks, size = client.protocol, [], 0
        if protocol.they_are_waiting_for_100_continue:  # curl sends large bodies only after a 100
            await self._send(client, protocol.send(h11.InformationalResponse(status_code=100, headers=[],
                                                                              reason="Continue")))
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                protocol.receive_data(await self._read(client, self.timeout))
            elif type(event) is h11.Data:
                size += len(event.data)
                if size > self.spout.max_body:
                    return None
                chunks.append(event.data)
            elif type(event) is h11.EndOfMessage:
                return b"".join(chunks)
            else:
                raise ConnectionResetError("the client closed during the body")

    async def _take(self, request, body):
        """Parse the body off the loop, offer its records, wait until they are logged: the answer."""
        spout = self.spout
        content_type = dict(request.headers).get(b"content-type", b"").decode("latin-1")
        try:
            records = await self.loop.run_in_executor(self.parsers, parse_body, body, content_type)
        except BadBody as exc:
            return 400, str(exc), {}
        if len(records) > spout.max_records:
            return 413, f"{len(records)} records in one request; at most {spout.max_records}", {}
        try:
            receipt = spout.accept(records)
        except Full as exc:
            return 503, f"busy: {exc}; retry later", {"Retry-After": "1"}
        except Closed:
            return 503, "the run is stopping; nothing of this request was taken", CLOSE
        if not await receipt.settled:
            return 503, ("the run stopped before this request was logged; some records may have been: sending "
                         "it again may duplicate them"), CLOSE
        return 202, {"accepted": len(records)}, {}

    async def _malformed(self, client, exc):
        """Answer what h11 refused (its status, usually 400; 431 for a head too large)."""
        if client.protocol.our_state not in (h11.IDLE, h11.SEND_RESPONSE) or client.protocol.trailing_data[1]:
            return  # answered already, or the client is gone
        status = exc.error_status_hint
        message = (f"the request head is larger than {MAX_HEAD} bytes" if status == 431
                   else f"malformed request: {exc}")
        try:
            await self._answer(client, status, message, CLOSE)
        except (asyncio.TimeoutError, OSError, h11.LocalProtocolError):
            pass

    async def _answer(self, client, status, message, headers):
        body = json.dumps(message if isinstance(message, dict) else {"error": message}).encode() + b"\n"
        if self.stopping.is_set():
            headers = {**headers, **CLOSE}
        fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers.items()]
        protocol = client.protocol
        out = protocol.send(h11.Response(status_code=status, headers=fields, reason=HTTPStatus(status).phrase))
        if client.method != b"HEAD":
            out += protocol.send(h11.Data(data=body))
        out += protocol.send(h11.EndOfMessage())
        client.answered = True
        await self._send(client, out)

    async def _send(self, client, data):
        client.writer.write(data)
        await asyncio.wait_for(client.writer.drain(), self.timeout)

    async def _read(self, client, wait):
        """The next bytes from the client (b"" once it closed); TimeoutError after `wait` seconds."""
        if wait <= 0:
            raise asyncio.TimeoutError
        client.reading = True
        try:
            return await asyncio.wait_for(client.reader.read(READ_SIZE), wait)
        finally:
            client.reading = False

    async def _close(self, client):
        """Close the connection. After an answer, the client may still be sending what will not be
        read (a refused body): closing at once would reset the connection and could destroy the
        answer before the client read it, so send the end of the stream first and read on (and
        drop) for up to LINGER seconds, until the client closes its side."""
        writer = client.writer
        try:
            if client.answered and not client.reader.at_eof() and not writer.is_closing():
                writer.write_eof()
                deadline = self.loop.time() + LINGER
                while await self._read(client, deadline - self.loop.time()):
                    pass
        except (asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()


def _head(received):
    """The request line and headers at the start of the bytes received for a request."""
    end = HEADER_END.search(received)
    return received[:end.start()] if end else received


def _content_lengths(head):
    """How many Content-Length values a raw request head declares. h11 joins equal ones into
    one; a proxy in front of this server may have taken another as the length."""
    return sum(line.count(b",") + 1 for line in head.split(b"\n")
               if line.split(b":", 1)[0].lower() == b"content-length")


class BadBody(ValueError):
    """A request body that cannot be read (400)."""


class UnsupportedType(ValueError):
    """A request body of a content type the spout does not take (415)."""


JSON_LINES = ("application/x-ndjson", "application/jsonl", "application/json-lines")


def body_kind(content_type):
    """The media type of a Content-Type the spout takes (see `Http`), or UnsupportedType."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in ("application/json", "text/plain", "") or kind in JSON_LINES:
        return kind
    raise UnsupportedType(kind)


def parse_body(body, content_type):
    """The records of a request body, or BadBody naming the place; see `Http`."""
    kind = body_kind(content_type)
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
    elif kind in JSON_LINES:
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
    else:
        records = [line for line in text.splitlines() if line.strip()]
        where = "line"
    for number, record in enumerate(records, 1):
        try:
            msgpack.packb(record)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise BadBody(f"{where} {number}: cannot be stored ({str(exc)[:200]})") from None
    if not records:
        raise BadBody("the body holds no records")
    return records
