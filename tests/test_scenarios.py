"""The seed's money-flow scenarios (examples/revenue.py, paycheck.py, mortgage.py,
investment.py, budget.py) produce exact figures in every mode and through the command line.

Each expected figure is computed here by a plain Python loop over the example's inputs (or
the closed-form amortisation), with the business rules written out again, not imported: the
examples' own constants and functions are used only to produce their inputs.
"""
import importlib
import json
import os
import re
import sys
import time
from fractions import Fraction

import pytest

from consecution.testing import run_local
from support import EXAMPLES, ROOT

sys.path.insert(0, EXAMPLES)  # the examples import their neighbour `ledger`, as under `consecution run`

MODES = ["single", "thread", "process", "ray"]


def example(name):
    return importlib.import_module(name)


def run_example(topology, mode, tmp_path):
    """Run with a durable state directory (the state is checkpointed in LMDB, as under the CLI)."""
    result = run_local(topology, mode=mode, state_dir=str(tmp_path / "state"), workers=2)
    assert result.fully_processed, result
    return result


def totals(result, *aggregators):
    """{aggregator: {key: cents}} from the rows the aggregators emitted in finish."""
    out = {}
    for name in aggregators:
        for aggregator, key, cents, _ in result.emitted(name):
            assert aggregator == name
            out.setdefault(name, {})[key] = cents
    return out


def counts(result, name):
    return {key: count for _, key, _, count in result.emitted(name)}


# -- revenue -----------------------------------------------------------------------------------


def expected_revenue(payments):
    """Operating budget first ($100,000.00 of each month's revenue, a payment that starts under
    it goes there whole), the rest is profit; alice takes 40% and bob 35% of each profit
    payment, rounded down; the company retains the rest."""
    month_revenue, last_month = 0, None
    sums = {"operating": 0, "profit": 0, "alice": 0, "bob": 0}
    for _, month, cents, tagged in payments:
        if month != last_month:
            month_revenue, last_month = 0, month
        before, month_revenue = month_revenue, month_revenue + cents
        assert tagged == month_revenue  # the spout's tag: the month's revenue so far
        if before < 100_000_00:
            sums["operating"] += cents
            continue
        sums["profit"] += cents
        sums["alice"] += cents * 40 // 100
        sums["bob"] += cents * 35 // 100
    company = dict(sums, retained=sums["profit"] - sums["alice"] - sums["bob"])
    return {"company": company, "alice": {"alice": sums["alice"]}, "bob": {"bob": sums["bob"]},
            "revenue": {"revenue": sum(p[2] for p in payments)}}


def check_revenue_balances(figures, payments):
    company = figures["company"]
    total = sum(p[2] for p in payments)
    assert company["operating"] + company["profit"] == figures["revenue"]["revenue"] == total
    assert company["alice"] + company["bob"] + company["retained"] == company["profit"]
    assert figures["alice"]["alice"] == company["alice"] and figures["bob"]["bob"] == company["bob"]


@pytest.mark.parametrize("mode", MODES)
def test_revenue_splits_every_payment_to_the_cent(mode, tmp_path):
    revenue = example("revenue")
    payments = revenue.payments(2000)
    result = run_example(revenue.build(2000), mode, tmp_path)
    figures = totals(result, "company", "alice", "bob", "revenue")
    assert figures == expected_revenue(payments)
    check_revenue_balances(figures, payments)
    assert figures["revenue"]["revenue"] == 5_048_690_22  # the README's figure
    assert figures["company"]["operating"] > 0 and figures["company"]["profit"] > 0
    takes = counts(result, "company")
    assert takes["operating"] + takes["profit"] == 2000 and takes["alice"] == takes["bob"] == takes["profit"]


@pytest.mark.parametrize("mode", MODES)
def test_revenue_figures_stay_exact_when_trees_fail_and_state_is_rolled_back(mode, tmp_path):
    """Every 97th payment's profit fails once in partner_bob, after the aggregators may have
    counted other entries of its tree: the epoch is rolled back and replayed, and no payment
    is counted twice or lost."""
    revenue = example("revenue")
    marks = tmp_path / "failed"
    marks.mkdir()

    class FlakyOnce(revenue.Partner):
        def process(self, tup):
            mark = marks / str(tup["payment"])
            if tup["account"] == "profit" and tup["payment"] % 97 == 0 and not mark.exists():
                mark.touch()  # a file, so that process mode's workers see it too
                raise RuntimeError("flaky once")
            super().process(tup)

    topology = revenue.build(2000)
    topology.components["partner_bob"].obj = FlakyOnce("bob", revenue.PARTNERS["bob"])
    result = run_local(topology, mode=mode, state_dir=str(tmp_path / "state"), workers=2, retry_backoff=0.01)
    assert result.fully_processed and result.failed == result.replayed == len(list(marks.iterdir())) > 10
    assert totals(result, "company", "alice", "bob", "revenue") == expected_revenue(revenue.payments(2000))


def test_revenue_command_line_prints_the_report_and_writes_it_as_json(run_cli, tmp_path):
    revenue = example("revenue")
    path = tmp_path / "report.json"
    env = {"REVENUE_PAYMENTS": "500", "REVENUE_REPORT": str(path)}
    args = ("run", os.path.join(EXAMPLES, "revenue.py"), "--state-dir", str(tmp_path / "state"),
            "--mode", "process")
    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(path.read_text())
    figures = {name: {key: row["cents"] for key, row in rows.items()} for name, rows in report["totals"].items()}
    expected = expected_revenue(revenue.payments(500))
    assert figures == expected
    assert report["totals"]["company"]["retained"]["count"] is None  # a derived line
    lines = done.stdout.splitlines()
    assert lines[0] == "revenue: 500 payments"
    total = _dollars(expected["revenue"]["revenue"])
    assert re.split(r"\s+", lines[2].strip()) == ["revenue", "revenue", total, "500"]
    assert len(lines) == 2 + 1 + 5 + 1 + 1  # title, header, revenue, company (4 + retained), alice, bob
    # the same state directory again: nothing new to read, the restored state reports the same
    path.unlink()
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout and json.loads(path.read_text()) == report


def test_revenue_delay_slows_each_payment_for_crash_tests(run_cli, tmp_path):
    path = tmp_path / "report.json"
    started = time.monotonic()
    done = run_cli("run", os.path.join(EXAMPLES, "revenue.py"), "--state-dir", str(tmp_path / "state"),
                   env={"REVENUE_PAYMENTS": "40", "REVENUE_DELAY": "0.02", "REVENUE_REPORT": str(path)})
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 40 * 0.02
    assert json.loads(path.read_text())["totals"]["revenue"]["revenue"]["count"] == 40


def test_readme_revenue_excerpt_and_output_are_the_example_s(run_cli, tmp_path):
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(EXAMPLES, "revenue.py")) as f:
        source = f.read()
    code = re.search(r"## Scenarios.*?```python\n(.*?)```", readme, re.S).group(1)
    for piece in code.split("\n\n"):
        assert piece.strip() in source
    shown = re.search(r"\$ consecution run examples/revenue.py\n(.*?)```", readme, re.S).group(1)
    done = run_cli("run", os.path.join(EXAMPLES, "revenue.py"), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def _dollars(cents):
    sign, cents = ("-" if cents < 0 else ""), abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


# -- paycheck ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_paycheck_deductions_add_up_to_the_net_pay(mode, tmp_path):
    paycheck = example("paycheck")
    gross = 4_615_38
    result = run_example(paycheck.build(gross), mode, tmp_path)
    lines = totals(result, "net_pay")["net_pay"]
    rates = {"federal_tax": 1200, "state_tax": 500, "social_security": 620, "medicare": 145, "retirement": 600}
    deductions = {line: gross * bp // 10_000 for line, bp in rates.items()}  # each rounded down on the whole gross
    assert lines == {"gross": gross, **{line: -cents for line, cents in deductions.items()},
                     "net_pay": gross - sum(deductions.values())}
    assert lines["net_pay"] == 3_200_79
    assert sum(cents for line, cents in lines.items() if line != "net_pay") == lines["net_pay"]
    # 4,615 dollars and 38 cents: 4,616 tuples through every branch; net_pay is derived
    assert set(counts(result, "net_pay").values()) == {4616, None}


# -- mortgage ----------------------------------------------------------------------------------


def closed_form_principal(payment, months, monthly_rate):
    """Present value of an annuity, exact, rounded to the nearest cent."""
    value = payment * (1 - (1 + monthly_rate) ** -months) / monthly_rate
    return int(value + Fraction(1, 2))


def mortgage_schedule(principal, payment, months, monthly_rate):
    """(interests, final balance, drift): monthly interest rounded half up; the last payment
    clears the balance, its interest absorbs the drift (its difference from the rounded
    interest of that month)."""
    balance, interests = principal, []
    for month in range(1, months + 1):
        rounded = int(balance * monthly_rate + Fraction(1, 2))
        interest = payment - balance if month == months else rounded
        interests.append(interest)
        balance -= payment - interest
    return interests, balance, interests[-1] - rounded


@pytest.mark.parametrize("mode", MODES)
def test_mortgage_totals_match_the_closed_form_amortisation(mode, tmp_path):
    mortgage = example("mortgage")
    result = run_example(mortgage.build(), mode, tmp_path)
    figures = totals(result, "master", "property_tax", "insurance", "principal_calculator")
    r, pi = Fraction(65, 1000) / 12, 800_00
    principal = closed_form_principal(pi, 360, r)
    assert principal == 126_568_66
    closed_form_interest = 360 * pi - principal
    interests, balance, drift = mortgage_schedule(principal, pi, 360, r)
    assert balance == 0 and sum(interests) == closed_form_interest
    assert abs(drift) <= 50  # 359 roundings of half a cent at most, mostly cancelling
    refund = closed_form_interest * 22 // 100
    assert figures["master"] == {
        "property_tax": 360 * 150_00, "insurance": 360 * 50_00, "interest": closed_form_interest,
        "principal": principal, "tax_refund": refund, "paid": 360 * 1_000_00,
        "interest_after_refund": closed_form_interest - refund}
    assert figures["master"]["interest"] == 161_431_34
    assert figures["property_tax"] == {"property_tax": 54_000_00}
    assert figures["insurance"] == {"insurance": 18_000_00}
    assert figures["principal_calculator"] == {"balance": 0}
    assert counts(result, "principal_calculator") == {"balance": 360}


def test_mortgage_calculator_applies_payments_in_month_order_whatever_order_they_come_in(tmp_path):
    mortgage = example("mortgage")
    topology = mortgage.build()
    topology.components["payments"].obj.iterable.reverse()  # December of year 30 first
    result = run_example(topology, "single", tmp_path)
    figures = totals(result, "master")["master"]
    assert figures["interest"] == 161_431_34 and figures["principal"] == 126_568_66


# -- investment --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_investment_capital_is_contributions_less_fees_plus_interest(mode, tmp_path):
    investment = example("investment")
    contributions = investment.contributions()
    result = run_example(investment.build(), mode, tmp_path)
    figures = totals(result, "contributed", "fees_total", "interest", "capital")
    fees, capital, interest = 0, {}, {}
    for investor, month, cents in contributions:
        fee = 2_50 + cents * 25 // 10_000
        fees += fee
        balance = capital.get(investor, 0) + cents - fee
        earned = (balance * 7 * 2 + 1200) // 2400  # 7% / 12 of the balance, rounded half up
        capital[investor] = balance + earned
        interest[investor] = interest.get(investor, 0) + earned
    assert len(contributions) == 1920
    assert figures["contributed"] == {"contributed": sum(c for _, _, c in contributions)}
    assert figures["fees_total"] == {"fees": fees}
    assert figures["interest"] == interest
    assert figures["capital"] == capital
    assert sum(capital.values()) == figures["contributed"]["contributed"] - fees + sum(interest.values())
    assert set(counts(result, "capital").values()) == {240}


# -- budget ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_budget_fills_rent_and_food_after_savings_and_spends_the_rest(mode, tmp_path):
    budget = example("budget")
    income = budget.income()
    result = run_example(budget.build(), mode, tmp_path)
    figures = totals(result, "monthly", "quarter")
    monthly, quarter = {}, {}
    for month in ("2026-01", "2026-02", "2026-03"):
        payments = [cents for m, cents in income if m == month]
        savings = sum(cents * 15 // 100 for cents in payments)
        available = sum(payments) - savings
        rent = min(1_800_00, available)
        food = min(600_00, available - rent)
        lines = {"savings": savings, "rent": rent, "food": food, "spending": available - rent - food}
        for account, cents in lines.items():
            if cents:
                monthly[f"{month} {account}"] = cents
            quarter[account] = quarter.get(account, 0) + cents
        monthly[f"{month} income"] = sum(payments)
    quarter["income"] = sum(cents for _, cents in income)
    assert figures["monthly"] == monthly
    assert figures["quarter"] == quarter
    assert "2026-02 spending" not in monthly and monthly["2026-02 food"] < 600_00  # a lean month
    assert quarter["income"] == quarter["savings"] + quarter["rent"] + quarter["food"] + quarter["spending"]


# -- every scenario through the command line ---------------------------------------------------


@pytest.mark.parametrize("name", ["paycheck", "mortgage", "investment", "budget"])
def test_scenario_command_line_report_matches_a_local_run(name, run_cli, tmp_path):
    path = tmp_path / "report.json"
    done = run_cli("run", os.path.join(EXAMPLES, f"{name}.py"), "--state-dir", str(tmp_path / "state"),
                   env={f"{name.upper()}_REPORT": str(path)})
    assert done.returncode == 0, done.stderr
    report = json.loads(path.read_text())["totals"]
    result = run_local(example(name).build(), mode="single")
    for aggregator, rows in report.items():
        assert {key: row["cents"] for key, row in rows.items()} == totals(result, aggregator)[aggregator]
        for key, row in rows.items():
            assert re.search(rf"\b{aggregator} +{key} +{re.escape(_dollars(row['cents']))}\b", done.stdout)
