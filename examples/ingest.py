"""An HTTP ingest service: POST orders as JSON -> validate -> SQLite upserts.

    INGEST_PORT=8080 consecution run examples/ingest.py --mode thread
    curl -X POST -H 'Content-Type: application/json' -d '[{"id": 1, "customer": "Ada",
         "amount": 12.5, "currency": "EUR"}]' http://127.0.0.1:8080/orders

A request is answered `202 Accepted` only once its orders are in the committed replay log: kill
the service at any moment (kill -9 included) and start it again, and every accepted order
reaches the `orders` table (upserts by id, so a replay writes it once). A client that got no
202 (a 503 while the service is busy or stopping, or a broken connection) sends the request
again. An order that fails validation ends as a dead letter with its error. It runs until
SIGTERM: no new requests, in-flight orders drain, exit 0.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from consecution import Topology  # noqa: E402
from consecution.spouts import Http  # noqa: E402
from etl import CURRENCIES, SqliteSink  # noqa: E402


def validate(order):
    """One posted order -> (id, customer, cents, currency); raises ValueError naming the order."""
    if not isinstance(order, dict):
        raise ValueError(f"an order is a JSON object, got {order!r}")
    missing = {"id", "customer", "amount", "currency"} - set(order)
    if missing:
        raise ValueError(f"order {order.get('id')!r}: missing {', '.join(sorted(missing))}")
    if order["currency"] not in CURRENCIES:
        raise ValueError(f"order {order['id']!r}: unknown currency {order['currency']!r}")
    return (int(order["id"]), order["customer"].strip().lower(), round(float(order["amount"]) * 100),
            order["currency"])


validate.fields = ("id", "customer", "cents", "currency")

topology = Topology("ingest", max_retries=3, retry_backoff=0.2)
topology.spout("orders", Http(os.environ.get("INGEST_HOST", "127.0.0.1"), int(os.environ.get("INGEST_PORT", "8080")),
                              path="/orders"))
topology.bolt("validate", validate).shuffle_grouping("orders")
topology.bolt("store", SqliteSink(os.environ.get("INGEST_DB", "orders.sqlite"))).shuffle_grouping("validate")
