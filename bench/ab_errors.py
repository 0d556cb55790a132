"""A/B testing: error rates of the platform's whole procedure, by Monte-Carlo simulation.

Every figure comes with its 95 % Monte-Carlo interval (Clopper–Pearson for rates, normal for
means), and beside it a reference measured in the same run on the same draws: the rules as
they were before ("before": the direction of a significant result taken from today's point
estimate, the relative interval by the delta method, the sample ratio checked by a chi-square
at p < 0.001 at every look), and the naive reading of a fixed-horizon test at every look.
"Contradicted" counts verdicts that disagree with the numbers shown beside them: a harm or a
winner whose interval is not wholly on its side of 0, or a winner whose message quotes a
relative interval that includes 0.

1. A/A tests (10 % conversion in both variants), looked at daily (30 looks) and hourly (720):
   false winners, false harms, and tests ended `invalid` by the sample-ratio check.
   Target: false winners + harms ≤ 5 %.
2. A/B tests (10 % → 12 %, the +20 % the test is planned for): power — the share concluding
   `winner` — by the planned sample size, and the mean day it stops. Target: ≥ 80 %.
3. The sample-ratio check alone on an honest 50/50 split over 30 days, hourly and daily looks
   (cheap, so many more runs). Target: ≤ 0.1 % flagged over the whole test. And how soon it
   catches a real skew.

The design simulated is the platform's default for a conversion-rate test: α = 0.05, power
0.8, minimum detectable effect +20 % on a 10 % baseline, so 7,350 calls per variant planned
(sequential); at least 100 calls per variant and 7 days before a winner; at most 30 days.
Traffic is 500 calls a day (250 per variant, Poisson arrivals split at random), so the
planned size is reached on day 30 and a test that does not conclude early is looked at every
day (or hour) of the 30.

    .venv/bin/python -m bench.ab_errors [--tests 10000] [--srm-runs 200000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats

from campaigns.domain.abtest import power
from campaigns.domain.abtest import simulation as sim

ALPHA = 0.05
BASELINE, LIFTED = 0.10, 0.12
CALLS_PER_DAY = 500
SRM_UNITS_PER_DAY = 1000
CHUNK = 2_000


def rate(k: int, n: int) -> str:
    """k/n as a percentage with its 95 % Clopper–Pearson interval."""
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return f"{k / n:7.3%} [{ci.low:.3%}, {ci.high:.3%}]"


def mean(values: np.ndarray) -> str:
    if len(values) < 2:
        return "n/a"
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))
    return f"{values.mean():5.2f} ± {half:.2f}"


def runs(procedure: sim.Procedure, *, tests: int, looks_per_day: int, p_treatment: float, seed: int) -> sim.Runs:
    """The procedure over `tests` tests, in chunks (memory), each chunk its own seed; the same
    seeds give the same traffic whatever the procedure."""
    parts = [
        sim.platform_proportions(
            procedure,
            tests=min(CHUNK, tests - start),
            looks_per_day=looks_per_day,
            calls_per_day=CALLS_PER_DAY,
            p_control=BASELINE,
            p_treatment=p_treatment,
            seed=seed * 100_003 + start,
        )
        for start in range(0, tests, CHUNK)
    ]
    return sim.Runs(
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("conclusion", "day", "calls", "contradicted"))
    )


def main(tests: int, srm_runs: int, seed: int) -> None:
    size = power.proportions(baseline=BASELINE, effect=LIFTED - BASELINE, alpha=ALPHA, power=0.8)
    planned = size.sequential
    new = sim.Procedure(planned=planned, alpha=ALPHA)
    old = sim.Procedure(planned=planned, alpha=ALPHA, direction="estimate", relative="delta", srm_test="chi_square")
    t0 = time.perf_counter()

    print(
        f"A/B error rates by simulation: {tests:,} tests per row, {CALLS_PER_DAY} calls a day, α = {ALPHA}, "
        f"planned {planned:,} calls per variant (MDE +20 % on {BASELINE:.0%}), min 7 days, max 30"
    )
    print("95 % Monte-Carlo intervals in brackets; 'before' = the previous rules on the same draws.\n")

    print("1. A/A (no true difference)")
    print(
        f"   {'looks':<11} {'rules':<7} {'false winners':<27} {'false harms':<27} {'winners + harms':<27} "
        f"{'ended invalid (SRM)':<27} {'contradicted':<27}"
    )
    for looks_per_day, label in ((1, "30 daily"), (24, "720 hourly")):
        for name, procedure in (("now", new), ("before", old)):
            r = runs(procedure, tests=tests, looks_per_day=looks_per_day, p_treatment=BASELINE, seed=seed)
            print(
                f"   {label:<11} {name:<7} {rate(r.count('winner'), tests):<27} {rate(r.count('harm'), tests):<27} "
                f"{rate(r.count('winner', 'harm'), tests):<27} {rate(r.count('invalid'), tests):<27} "
                f"{rate(int(r.contradicted.sum()), tests):<27}"
            )
    naive = sim.proportions(
        tests=tests,
        days=30,
        calls_per_day=CALLS_PER_DAY // 2,
        p_control=BASELINE,
        p_treatment=BASELINE,
        planned_sequential=planned,
        seed=seed,
    )
    print(
        f"   reference: the fixed-horizon z-test read at each of 30 daily looks declares a difference in "
        f"{rate(round(naive.naive * tests), tests)}"
    )
    print("   target: false winners + harms ≤ 5 %\n")

    print(f"2. A/B, {BASELINE:.0%} → {LIFTED:.0%} (+20 %)")
    print(
        f"   {'looks':<11} {'rules':<7} {'winner (power)':<27} {'harm':<27} {'mean stopping day (winners)':<28}"
        f"{'calls per variant at the win':<29}{'winners contradicted':<27}"
    )
    for looks_per_day, label in ((1, "30 daily"), (24, "720 hourly")):
        for name, procedure in (("now", new), ("before", old)):
            r = runs(procedure, tests=tests, looks_per_day=looks_per_day, p_treatment=LIFTED, seed=seed + 1)
            won = r.conclusion == sim.CONCLUSIONS.index("winner")
            print(
                f"   {label:<11} {name:<7} {rate(r.count('winner'), tests):<27} {rate(r.count('harm'), tests):<27} "
                f"{mean(r.day[won]):<28}{mean(r.calls[won]):<29}{rate(int(r.contradicted[won].sum()), int(won.sum())):<27}"
            )
    print(
        f"   (every test ends by the planned {planned:,} calls per variant, on day 30 at the latest: the share "
        "of winners is the power at the planned size; target ≥ 80 %)\n"
    )

    print(f"3. The sample-ratio check alone, {SRM_UNITS_PER_DAY:,} units a day for 30 days")
    honest = sim.srm_flags(tests=srm_runs, days=30, units_per_day=SRM_UNITS_PER_DAY, share_treatment=0.5, seed=seed + 2)
    print(f"   honest 50/50, {srm_runs:,} runs: share ever flagged")
    print(f"   {'looks':<11} {'anytime-valid mixture (now)':<31} {'chi-square p < 0.001 per look (before)':<40}")
    for step, label in ((24, "30 daily"), (1, "720 hourly")):
        print(
            f"   {label:<11} {rate(int((honest[f'mixture/{step}'] < np.inf).sum()), srm_runs):<31} "
            f"{rate(int((honest[f'chi_square/{step}'] < np.inf).sum()), srm_runs):<40}"
        )
    print("   target: ≤ 0.1 % over the whole test")
    skew_runs = max(srm_runs // 10, 1000)
    for share, label in (
        (47 / 97, "50:47 (a variant losing 6 % of its units)"),
        (0.47, "53:47 (a variant losing 11 %)"),
    ):
        skewed = sim.srm_flags(
            tests=skew_runs, days=30, units_per_day=SRM_UNITS_PER_DAY, share_treatment=share, seed=seed + 3, every=(1,)
        )
        print(f"   skew {label}, hourly looks, {skew_runs:,} runs: flagged by")
        for name, key in (("mixture (now)", "mixture/1"), ("chi-square (before)", "chi_square/1")):
            units = skewed[key]
            by = "   ".join(f"{n:,} units {rate(int((units <= n).sum()), skew_runs)}" for n in (10_000, 20_000, 30_000))
            median = np.median(units)
            print(
                f"     {name:<20} {by}   median {median:,.0f} units"
                if math.isfinite(median)
                else f"     {name:<20} {by}   median: not within 30 days"
            )
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=10_000)
    parser.add_argument("--srm-runs", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    main(args.tests, args.srm_runs, args.seed)
