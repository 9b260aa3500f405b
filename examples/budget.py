"""A simple budget, in pipe syntax: income comes in, savings are split off the top, the rent
and food envelopes fill up for the month, and the rest goes on to spending.

    income | split_savings | rent | food | spend | [monthly, quarter] | report

    consecution run examples/budget.py

Money flow, in integer cents:
- Income arrives as many small payments (gig work: $2.00 to $13.00 each, from a seeded random
  generator), each dated to its month; the three months bring in different amounts.
- `split_savings` splits each payment into SAVINGS (basis points) of it, rounded down to the
  cent, and the rest, "available" (so the two add up to the payment).
- `rent` and `food` are envelopes: stateful bolts that take "available" money until the
  month's envelope is full (RENT, FOOD) and pass the rest on; a payment that fills an envelope
  is split between it and what goes on. They keep each month's fill in their state and run as
  two tasks, each month's tuples on one task (`group_by="month"`). Over a month, rent is the
  smaller of RENT and what was available; food the smaller of FOOD and what rent left.
- `spend` books what is still available as spending; everything else passes through.
- `monthly` sums by month and account, `quarter` by account; both derive the income (all
  accounts added up), so savings + rent + food + spending = income, to the cent.

BUDGET_REPORT names a path for the JSON report.
"""
import os
import random

from consecution import Bolt, IterableSpout, Topology, component
from ledger import Report, Totals, share

PAYMENTS = {"2026-01": 400, "2026-02": 300, "2026-03": 450}  # income payments per month
SAVINGS = 15_00     # basis points of each payment: 15%
RENT = 1_800_00     # cents a month
FOOD = 600_00       # cents a month
SEED = 3
ENTRY = ("month", "account", "cents")


def income(seed=SEED):
    """(month, cents) for every payment: the same list on every run."""
    rng = random.Random(seed)
    return [(month, rng.randint(2_00, 13_00)) for month, n in PAYMENTS.items() for _ in range(n)]


def split_savings(month, cents):
    saved = share(cents, SAVINGS)
    yield (month, "savings", saved)
    yield (month, "available", cents - saved)


split_savings.fields = ENTRY


class Envelope(Bolt):
    """Takes available money until the month's `limit` is reached; the rest passes on."""

    stateful = True
    fields = ENTRY

    def __init__(self, account, limit):
        self.account = account
        self.limit = limit

    def process(self, tup):
        month, account, cents = tup.values
        if account != "available":
            self.emit(tup.values)
            return
        filled = self.state.get(month, 0)
        taken = min(cents, self.limit - filled)
        if taken:
            self.state[month] = filled + taken
            self.emit((month, self.account, taken))
        if cents > taken:
            self.emit((month, "available", cents - taken))


def spend(month, account, cents):
    return (month, "spending" if account == "available" else account, cents)


spend.fields = ENTRY


class Budget(Totals):
    """Totals by (month and) account, with the income they add up to (for each month)."""

    def derived(self):
        income = {}
        for key, cents in self.totals().items():
            month = key.rpartition(" ")[0]  # "2026-01 rent" -> "2026-01"; "rent" -> ""
            income[month] = income.get(month, 0) + cents
        return [(f"{month} income".lstrip(), cents) for month, cents in sorted(income.items())]


def build(report_path=None):
    envelope = dict(parallelism=2, group_by="month")
    return Topology(
        "budget",
        component(IterableSpout(income(), fields=("month", "cents")), name="income")
        | split_savings
        | component(Envelope("rent", RENT), name="rent", **envelope)
        | component(Envelope("food", FOOD), name="food", **envelope)
        | spend
        | [component(Budget(by=("month", "account")), name="monthly", parallelism=2, group_by="month"),
           component(Budget(), name="quarter")]
        | component(Report(f"budget: {sum(PAYMENTS.values()):,} income payments", report_path,
                           ["quarter", "monthly"]), name="report"),
    )


topology = build(os.environ.get("BUDGET_REPORT"))
