"""A restart-safe ETL job: a JSON lines file -> validate and transform -> SQLite.

    consecution run examples/etl.py           # ETL_INPUT=orders.jsonl ETL_DB=orders.sqlite

Kill it at any moment (kill -9 included) and start it again: it resumes at the byte offset
stored with the last committed records, replays what was in flight, and writes every valid
order exactly once into the `orders` table (upserts by id). A line that is not a valid order
fails validation on every attempt and ends as a dead letter with its error and traceback
(`consecution dead-letters --state-dir .consecution/etl`); the run then exits 3.
See examples/consecution-etl.service to run it under systemd.
"""
import json
import os
import sqlite3

from consecution import Bolt, Spout, Topology

CURRENCIES = {"USD", "EUR", "GBP"}


class JsonLines(Spout):
    """One tuple per line of a file; the byte offset is the position, so a restart resumes
    exactly after the last line whose tuple was committed to the log."""

    fields = ("offset", "line")

    def __init__(self, path):
        self.path = path

    def open(self, context):
        self.f = open(self.path, "rb")

    def next_tuple(self):
        offset = self.f.tell()
        line = self.f.readline()
        if not line:
            raise StopIteration
        if line.strip():
            self.emit((offset, line.decode("utf-8", "replace")))

    def position(self):
        return self.f.tell()

    def seek(self, position):
        self.f.seek(position)

    def close(self):
        self.f.close()


def validate(offset, line):
    """Parse and check one order; raises ValueError (naming the offset) for a bad line."""
    try:
        order = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line at byte {offset}: not JSON ({exc})") from None
    if not isinstance(order, dict):
        raise ValueError(f"line at byte {offset}: an order is a JSON object")
    missing = {"id", "customer", "amount", "currency"} - set(order)
    if missing:
        raise ValueError(f"line at byte {offset}: missing {', '.join(sorted(missing))}")
    if order["currency"] not in CURRENCIES:
        raise ValueError(f"line at byte {offset}: unknown currency {order['currency']!r}")
    cents = round(float(order["amount"]) * 100)
    if cents < 0:
        raise ValueError(f"line at byte {offset}: negative amount")
    return (int(order["id"]), order["customer"].strip().lower(), cents, order["currency"])


validate.fields = ("id", "customer", "cents", "currency")


class SqliteSink(Bolt):
    """Upserts each order; the tuple is acked only after its transaction committed."""

    def __init__(self, path):
        self.path = path

    def prepare(self, context):
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer TEXT, "
                        "cents INTEGER, currency TEXT)")

    def process(self, tup):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?)", tup.values)

    def cleanup(self):
        self.db.close()


topology = Topology("etl", max_retries=3, retry_backoff=0.2)
topology.spout("orders", JsonLines(os.environ.get("ETL_INPUT", "orders.jsonl")))
topology.bolt("validate", validate).shuffle_grouping("orders")
topology.bolt("store", SqliteSink(os.environ.get("ETL_DB", "orders.sqlite"))).shuffle_grouping("validate")
