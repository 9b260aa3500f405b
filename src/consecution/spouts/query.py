"""Query: the rows of a SQL query over a DB-API connection, in key order, resumable."""
import collections
import sys
import time

from consecution.topology import ComponentError, Spout

from .files import SourceError

__all__ = ["Query"]

# "?"-style placeholders for each DB-API paramstyle, numbered from 1
PLACEHOLDERS = {
    "qmark": lambda i: "?",
    "format": lambda i: "%s",
    "pyformat": lambda i: "%s",
    "numeric": lambda i: f":{i}",
    "named": lambda i: f":k{i}",
}


class Query(Spout):
    """The rows of `sql`, read in order of `key` (a column name, or a tuple of names), in pages
    of `batch` rows; the last emitted key is the position.

        Query(lambda: sqlite3.connect("shop.db"), "SELECT id, customer, cents FROM orders", key="id",
              fields=("id", "customer", "cents"))

    Write `sql` as a plain SELECT: the spout wraps it as
    `SELECT * FROM (sql) AS q WHERE key > <last key> ORDER BY key LIMIT batch`, with the
    placeholder style of the connection's driver module (sqlite3, psycopg, psycopg2...; a
    composite key compares as a row value). `connection_factory()` is called in `open`, on the
    thread that runs the spout; each page is read in a transaction of its own (ended with a
    rollback), so no transaction stays open between pages.

    With `fields=`, a tuple carries the row's columns in order; without, one field `row` holds a
    dict of column name to value. Values and keys travel as msgpack: cast other types in SQL
    (`amount::float8`, `created_at::text`). With drivers of the "format" paramstyle (psycopg),
    write a literal `%` in `sql` as `%%`.

    `poll=None` (the default): the spout is exhausted after the last row. `poll=seconds`: after
    the last row it queries again every `poll` seconds for rows with a greater key, and never
    ends. The key must be unique and grow with every new row in commit order (a sequence that
    concurrent transactions commit out of order can skip a row committed late under a smaller
    key).

    Guarantee: a restart resumes after the last row whose tuple was committed to the log;
    nothing is lost or read twice as long as rows are not changed or deleted behind the key.
    """

    def __init__(self, connection_factory, sql, key, fields=None, poll=None, batch=500):
        if not callable(connection_factory):
            raise ComponentError(f"Query: connection_factory must be callable (returning a DB-API "
                                 f"connection), got {connection_factory!r}")
        self.connection_factory = connection_factory
        self.sql = sql.strip().rstrip(";")
        self.keys = (key,) if isinstance(key, str) else tuple(key)
        if not self.keys:
            raise ComponentError("Query: key names at least one column")
        self.fields = fields if fields is not None else ("row",)
        self.as_dict = fields is None
        self.poll = poll
        self.batch = batch

    def open(self, context):
        self.connection = self.connection_factory()
        self.last = None
        self.reported = None
        self.rows = collections.deque()
        self.idle_until = 0.0
        self.style = _paramstyle(self.connection)

    def seek(self, position):
        self.last = self.reported = position

    def position(self):
        if self.last == self.reported:
            return None  # unchanged: nothing to store
        self.reported = self.last
        return self.last

    def next_tuple(self):
        if not self.rows:
            if self.poll is not None and time.monotonic() < self.idle_until:
                return
            self._fetch()
            if not self.rows:
                if self.poll is None:
                    raise StopIteration
                self.idle_until = time.monotonic() + self.poll
                return
        key, values = self.rows.popleft()
        self.last = key
        self.emit(values)

    def _fetch(self):
        cursor = self.connection.cursor()
        try:
            sql, params = self._page_query()
            try:
                cursor.execute(sql, params)
            except Exception as exc:
                raise SourceError(f"Query with key {', '.join(self.keys)}: {type(exc).__name__}: {exc} "
                                  f"(in {sql})") from exc
            columns = [d[0] for d in cursor.description]
            try:
                at = [columns.index(k) for k in self.keys]
            except ValueError:
                raise ComponentError(f"Query: the key {self.keys!r} is not among the columns {columns!r} "
                                     "of the query") from None
            for row in cursor.fetchall():
                key = row[at[0]] if len(at) == 1 else [row[i] for i in at]
                values = (dict(zip(columns, row)),) if self.as_dict else tuple(row)
                self.rows.append((key, values))
        finally:
            cursor.close()
            self.connection.rollback()  # end the read transaction; nothing was written

    def _page_query(self):
        keys = ", ".join(f"q.{k}" for k in self.keys)
        where, params = "", ()
        if self.last is not None:
            last = self.last if len(self.keys) > 1 else [self.last]
            marks = [PLACEHOLDERS[self.style](i + 1) for i in range(len(last))]
            left = keys if len(self.keys) == 1 else f"({keys})"
            right = marks[0] if len(marks) == 1 else f"({', '.join(marks)})"
            where = f" WHERE {left} > {right}"
            params = {f"k{i + 1}": v for i, v in enumerate(last)} if self.style == "named" else tuple(last)
        sql = f"SELECT * FROM ({self.sql}) AS q{where} ORDER BY {keys} LIMIT {int(self.batch)}"
        return sql, params

    def close(self):
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()


def _paramstyle(connection):
    """The DB-API paramstyle of the module that made `connection`."""
    module = sys.modules.get(type(connection).__module__.split(".")[0])
    style = getattr(module, "paramstyle", None)
    if style not in PLACEHOLDERS:
        raise ComponentError(f"Query: cannot tell the parameter style of {type(connection).__module__} "
                             f"connections (its module's paramstyle is {style!r})")
    return style
