"""A compounded investment with a monthly fee, with the builder API: eight investors pay in
every month for twenty years; the fund strips its fee, adds the rest to each investor's
capital and credits monthly interest.

    contributions --> fees --fee--> fees_total (aggregator)                  --> report
          |             '--deposit--> capital (2 tasks, by investor) --interest--> interest (aggregator)
          '--> contributed (aggregator)

    consecution run examples/investment.py

Money flow, in integer cents:
- Each contribution (investor, month, cents) is drawn from a seeded random generator: the same
  1,920 contributions, $50.00 to $1,000.00 each, on every run.
- `fees` strips the monthly fee, FLAT_FEE plus FEE_RATE of the contribution rounded down to the
  cent, sends it to the fee aggregator and passes the deposit (contribution - fee) on.
- `capital` is a stateful bolt of two tasks, each investor's tuples on one task (a fields
  grouping on `investor`). It applies an investor's deposits in month order (an early one
  waits in its state: `ledger.in_order`): capital += deposit, then capital earns a month's
  interest, capital * RATE / 12 rounded to the nearest cent, halves up, which is added to the
  capital and split off to the interest aggregator. At the end it emits each investor's capital.
- The figures balance to the cent: capital = contributed - fees + interest.

INVESTMENT_REPORT names a path for the JSON report.
"""
import os
import random
from fractions import Fraction

from consecution import Bolt, IterableSpout, Topology
from ledger import ROW, Report, Totals, in_order, rounded, share

INVESTORS = ("ana", "ben", "cho", "dev", "eli", "fay", "gus", "hal")
MONTHS = 240
FLAT_FEE = 2_50       # cents a month
FEE_RATE = 25         # basis points of each contribution: 0.25%
RATE = Fraction(7, 100)  # 7% a year, compounded monthly
SEED = 7
ENTRY = ("investor", "month", "cents")


def contributions(seed=SEED):
    """(investor, month, cents) for every month and investor, month by month."""
    rng = random.Random(seed)
    return [(investor, month, rng.randint(50_00, 1_000_00))
            for month in range(1, MONTHS + 1) for investor in INVESTORS]


class Fees(Bolt):
    """Strips the fee from each contribution; the deposit goes on."""

    streams = {"default": ENTRY, "fee": ENTRY}

    def process(self, tup):
        fee = FLAT_FEE + share(tup["cents"], FEE_RATE)
        self.emit((tup["investor"], tup["month"], fee), stream="fee")
        self.emit((tup["investor"], tup["month"], tup["cents"] - fee))


class Capital(Bolt):
    """Each investor's capital: deposits in month order, and a month's interest after each."""

    stateful = True
    streams = {"interest": ENTRY, "default": ROW}

    def __init__(self, rate=RATE):
        self.monthly_rate = rate / 12

    def prepare(self, context):
        self.name = context.component

    def process(self, tup):
        investor = tup["investor"]
        for month, deposit in in_order(self.state, investor, tup["month"], [tup["month"], tup["cents"]]):
            capital = self.state.get(("capital", investor), 0) + deposit
            interest = rounded(capital * self.monthly_rate)
            self.state[("capital", investor)] = capital + interest
            self.emit((investor, month, interest), stream="interest")

    def finish(self):
        for key in sorted(k for k in self.state if k[0] == "capital"):
            investor = key[1]
            self.emit((self.name, investor, self.state[key], self.state[("next", investor)] - 1))


def build(report_path=None):
    t = Topology("investment")
    t.spout("contributions", IterableSpout(contributions(), fields=ENTRY))
    t.bolt("contributed", Totals(into="contributed")).shuffle_grouping("contributions")
    t.bolt("fees", Fees()).shuffle_grouping("contributions")
    t.bolt("fees_total", Totals(into="fees")).shuffle_grouping("fees", stream="fee")
    t.bolt("capital", Capital(), parallelism=2).fields_grouping("fees", "investor")
    t.bolt("interest", Totals(by=("investor",))).shuffle_grouping("capital", stream="interest")
    report = t.bolt("report", Report(f"investment: {len(INVESTORS)} investors, {MONTHS} months", report_path,
                                     ["contributed", "fees_total", "interest", "capital"]))
    for aggregator in ("contributed", "fees_total", "interest", "capital"):
        report.global_grouping(aggregator)
    return t


topology = build(os.environ.get("INVESTMENT_REPORT"))
