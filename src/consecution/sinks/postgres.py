"""PostgreSQL sinks (psycopg 3: `pip install 'consecution[postgres]'`)."""
from .base import BatchSink, SinkError

__all__ = ["PostgresExecute", "PostgresUpsert"]


def _psycopg():
    from consecution.spouts.brokers import client_library
    return client_library("psycopg", "postgres")


class _Postgres(BatchSink):
    def __init__(self, dsn, batch=500, retry_for=60.0, flush_interval=0.2):
        super().__init__(batch, retry_for, flush_interval)
        self.dsn = dsn

    def connect(self):
        psycopg = _psycopg()
        self.transient = (psycopg.OperationalError, psycopg.errors.AdminShutdown, ConnectionError)
        try:
            return psycopg.connect(self.dsn, connect_timeout=10, application_name=self.application_name())
        except psycopg.OperationalError as exc:
            if self.connection is None and not getattr(self, "written", 0):  # at start: say where
                raise ConnectionError(f"{type(self).__name__}: cannot connect to PostgreSQL ({_where(self.dsn)}): "
                                      f"{str(exc).strip()}") from None
            raise

    def write(self, tuples):
        psycopg = _psycopg()
        try:
            with self.connection.transaction():
                with self.connection.cursor() as cursor:
                    cursor.executemany(self.statement(tuples[0]), [self.row(t) for t in tuples])
        except (psycopg.errors.ProgrammingError, psycopg.errors.DataError,
                psycopg.errors.IntegrityError) as exc:  # trying again cannot help
            raise SinkError(f"{type(self).__name__}: {str(exc).strip()}") from None

    def row(self, tup):
        return tup.values

    def application_name(self):
        """What pg_stat_activity shows for its connections."""
        c = self.context
        return f"consecution {c.topology}.{c.component}[{c.task_index}]"[:63]


class PostgresUpsert(_Postgres):
    """Upserts its inputs into `table` by `key` (a field, or a tuple of fields), a batch per
    transaction: `INSERT INTO table (fields...) VALUES ... ON CONFLICT (key) DO UPDATE SET` the
    other fields. The columns are the input's fields; the key's columns need a unique index.
    A replayed tuple writes the same row again: replays are idempotent by the key."""

    def __init__(self, dsn, table, key, batch=500, retry_for=60.0, flush_interval=0.2):
        super().__init__(dsn, batch, retry_for, flush_interval)
        self.table = table
        self.key = (key,) if isinstance(key, str) else tuple(key)
        if not self.key:
            raise ValueError("PostgresUpsert: key names at least one field")
        self._statements = {}

    def statement(self, tup):
        fields = tuple(tup.fields)
        found = self._statements.get(fields)
        if found is None:
            from psycopg import sql
            missing = [k for k in self.key if k not in fields]
            if missing:
                raise SinkError(f"PostgresUpsert({self.table!r}): the key {missing} is not among the input's fields "
                                f"{list(fields)}")
            others = [f for f in fields if f not in self.key]
            update = (sql.SQL("DO UPDATE SET {}").format(sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(f), sql.Identifier(f)) for f in others))
                if others else sql.SQL("DO NOTHING"))
            found = self._statements[fields] = sql.SQL(
                "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
                sql.Identifier(*self.table.split(".")), sql.SQL(", ").join(map(sql.Identifier, fields)),
                sql.SQL(", ").join(sql.Placeholder() * len(fields)), sql.SQL(", ").join(map(sql.Identifier, self.key)),
                update)
        return found


class PostgresExecute(_Postgres):
    """Runs `sql` once per input, with the input's values as its parameters (`%s` placeholders
    in field order, or `%(field)s`), a batch per transaction."""

    def __init__(self, dsn, sql, batch=500, retry_for=60.0, flush_interval=0.2):
        super().__init__(dsn, batch, retry_for, flush_interval)
        self.sql = sql
        self.named = "%(" in sql

    def statement(self, tup):
        return self.sql

    def row(self, tup):
        if self.named:
            return dict(zip(tup.fields, tup.values))
        return tup.values


def _where(dsn):
    """host:port/dbname of a DSN, without its password."""
    try:
        from psycopg.conninfo import conninfo_to_dict
        info = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a DSN it cannot read is shown as it is named
        return "its DSN"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
