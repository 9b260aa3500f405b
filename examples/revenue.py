"""Revenue sharing (the seed's favourite scenario), in pipe syntax: a profitable company pays
its operating budget first and shares the profit between its two partners.

    payments (tagged with the month's revenue so far)
      | route by budget:  operating_budget                          (the month's budget is not full yet)
                          profit_distribution | partner_alice | partner_bob   (the rest)
      | broadcast:  company                                         (every ledger entry)
                    route by account:  alice | bob | revenue        (each take to its partner,
                                                                     operating and profit to revenue)
      | report

    consecution run examples/revenue.py

Money flow, in integer cents:
- Payments come in 100 a month, each tagged with the month's revenue up to and including it.
  The tag comes with the input (the spout), not from a running total in a bolt: every later
  step is then a function of its tuple alone, so the split is the same whatever order the
  tuples take, replays included.
- A payment that arrives while the month's operating budget (MONTHLY_BUDGET) is not yet
  covered goes to the operating budget whole; every later payment of the month is profit.
- Each partner node passes every ledger entry on and, for each profit entry, adds a tagged
  take: alice 40%, bob 35% of that payment, each rounded down to the cent. What the rounding
  and the other 25% leave stays with the company (`retained` = profit - takes, exact).
- The company aggregator sums every entry by account; the router sends each take to its
  partner's aggregator and the operating and profit entries to the total revenue aggregator.
  Every aggregator is a stateful bolt (exactly-once under crashes); the report prints the
  totals and writes them to JSON.

Environment (read at import): REVENUE_PAYMENTS (number of payments, default 2000),
REVENUE_DELAY (seconds to sleep per payment in the budget nodes, default 0: a slow run to kill
in crash tests), REVENUE_REPORT (a path: the report is also written there as JSON).

At most 100 payments are in flight (`max_pending`): a checkpoint of the aggregators' state
waits for the trees in flight, so without a bound the whole input, read at once, would be one
epoch and a crash would replay all of it (correctly, but a crash test would learn less).
"""
import os
import random
import time

from consecution import Bolt, IterableSpout, Topology, component
from ledger import Report, Totals, share

PAYMENTS_PER_MONTH = 100
MONTHLY_BUDGET = 100_000_00   # cents: $100,000.00 of each month's revenue funds operations
PARTNERS = {"alice": 40_00, "bob": 35_00}  # basis points of each profit payment
SEED = 2026
ENTRY = ("payment", "account", "cents")


def payments(n, seed=SEED):
    """n payments (payment, month, cents, revenue) of $10.00 to $5,000.00 each; `revenue` is
    the month's revenue up to and including this payment. The same list for the same n."""
    rng, out, revenue = random.Random(seed), [], 0
    for number in range(n):
        month, cents = 1 + number // PAYMENTS_PER_MONTH, rng.randint(10_00, 5_000_00)
        revenue = cents if number % PAYMENTS_PER_MONTH == 0 else revenue + cents
        out.append((number + 1, month, cents, revenue))
    return out


def by_budget(tup):
    """0 (operating budget) while the month's revenue before this payment is under budget, else 1."""
    return 0 if tup["revenue"] - tup["cents"] < MONTHLY_BUDGET else 1


def by_account(tup):
    """A take goes to its partner's aggregator; operating and profit entries to revenue."""
    names = list(PARTNERS)
    return names.index(tup["account"]) if tup["account"] in PARTNERS else len(names)


class Book(Bolt):
    """Books a payment as a ledger entry on `account` (sleeping `delay` seconds first)."""

    fields = ENTRY

    def __init__(self, account, delay=0.0):
        self.account = account
        self.delay = delay

    def process(self, tup):
        if self.delay:
            time.sleep(self.delay)
        self.emit((tup["payment"], self.account, tup["cents"]))


class Partner(Bolt):
    """Passes every entry on and adds the partner's take of each profit entry."""

    fields = ENTRY

    def __init__(self, name, basis_points):
        self.name = name
        self.basis_points = basis_points

    def process(self, tup):
        self.emit(tup.values)
        if tup["account"] == "profit":
            self.emit((tup["payment"], self.name, share(tup["cents"], self.basis_points)))


class Company(Totals):
    """Every entry by account, and what the company keeps of its profit."""

    def derived(self):
        totals = self.totals()
        return [("retained", totals.get("profit", 0) - sum(totals.get(p, 0) for p in PARTNERS))]


def books(delay=0.0):
    """Payments in, ledger entries out: the budget or profit split and the partners' takes.
    A sub-graph (no spout), also used by revenue_books.py."""
    return [by_budget,                                                    # route: budget or profit
            component(Book("operating", delay), name="operating_budget"),
            component(Book("profit", delay), name="profit_distribution")
            | component(Partner("alice", PARTNERS["alice"]), name="partner_alice")
            | component(Partner("bob", PARTNERS["bob"]), name="partner_bob")]


def totals():
    """Ledger entries in: the company, partner and revenue aggregators. A sub-graph, also used
    by revenue_totals.py."""
    return [component(Company(), name="company"),                         # broadcast: the company sees all,
            [by_account, component(Totals(), name="alice"),               # and a route splits the takes
             component(Totals(), name="bob"), component(Totals(into="revenue"), name="revenue")]]


def build(n=2000, delay=0.0, report_path=None):
    return Topology(
        "revenue",  # max_pending: at most 100 payments in flight, so that checkpoints come often
        component(IterableSpout(payments(n), fields=("payment", "month", "cents", "revenue")), name="payments")
        | books(delay)
        | totals()
        | component(Report(f"revenue: {n:,} payments", report_path, ["revenue", "company", "alice", "bob"]),
                    name="report"),
        max_pending=100,
    )


topology = build(int(os.environ.get("REVENUE_PAYMENTS", 2000)), float(os.environ.get("REVENUE_DELAY", 0)),
                 os.environ.get("REVENUE_REPORT"))
