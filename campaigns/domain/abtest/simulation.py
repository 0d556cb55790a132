"""Seeded Monte-Carlo checks of the error rates, fast enough for the test suite (the long
runs are in bench/ab_errors.py).

Many two-variant tests at once (numpy, one array per quantity), each fed traffic a look at a
time — the peeking a dashboard invites.

`proportions` and `means_aa` isolate the test statistic, looked at after every day:

- sequential: the always-valid mixture p-value of `sequential`, with the mixing variance
  tuned at the planned sample size exactly as `analysis` does, and its running minimum;
  a test declares a difference the first time that minimum is ≤ α;
- naive: the fixed-horizon pooled two-proportion z-test read at every look, declaring a
  difference the first time p ≤ α (what the specification's `determineWinner` does);
- fixed: the same z-test read once, at the planned fixed-horizon sample size.

`platform_proportions` runs the platform's whole procedure (gates, SRM check, direction,
harm, winner, futility; see below) at daily or hourly looks, and `srm_flags` the
sample-ratio check alone, cheaply enough for hundreds of thousands of runs.

Under no true difference (A/A) the share of tests that ever declare one is the false-
positive rate; under a true lift, the power. The Monte-Carlo standard error of a rate r
over T tests is √(r (1 − r) / T).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from campaigns.domain.abtest import sequential


@dataclass(frozen=True)
class Rates:
    tests: int
    days: int
    calls_per_day: int  # per variant
    sequential: float  # share of tests that declared a difference at some look
    naive: float  # … reading the fixed-horizon test at every look
    fixed: float | None  # … reading it once, at the planned fixed horizon (None if beyond `days`)
    sequential_mean_day: float | None  # mean day of the first declaration, among those that did
    sequential_better: float  # declared the treatment better (the right way, under a true lift)
    sequential_by_planned: float | None = None  # … declared a difference by the planned sequential size

    def monte_carlo_error(self, rate: float) -> float:
        return math.sqrt(max(rate * (1 - rate), 1e-12) / self.tests)


def proportions(
    *,
    tests: int,
    days: int,
    calls_per_day: int,
    p_control: float,
    p_treatment: float,
    alpha: float = 0.05,
    planned_sequential: int,
    planned_fixed: int | None = None,
    seed: int = 1,
) -> Rates:
    """Daily looks at `tests` two-variant tests of a conversion rate."""
    xc, xt = draw_proportions(
        tests=tests, days=days, calls_per_day=calls_per_day, p_control=p_control, p_treatment=p_treatment, seed=seed
    )
    n = calls_per_day * np.arange(1, days + 1, dtype=float)[:, None]

    pc, pt = xc / n, xt / n
    vc, vt = pc * (1 - pc) / n, pt * (1 - pt) / n
    var = vc + vt
    delta = pt - pc
    with np.errstate(divide="ignore", invalid="ignore"):
        # Sequential: τ² = r* V_N with V_N projected to the planned size (see analysis).
        planned_var = (vt * n + vc * n) / planned_sequential
        tau2 = sequential.mixing_variance(planned_var, alpha)
        p_seq = np.where(var > 0, sequential.p_value(delta, var, tau2), 1.0)
        running = np.minimum.accumulate(p_seq, axis=0)
        # Naive: the pooled two-proportion z-test at every look.
        pooled = (xc + xt) / (2 * n)
        se0 = np.sqrt(pooled * (1 - pooled) * 2 / n)
        z = np.where(se0 > 0, delta / se0, 0.0)
    p_naive = 2 * special.ndtr(-np.abs(z))

    seq_hit = running <= alpha
    ever_seq = seq_hit.any(axis=0)
    first_day = np.argmax(seq_hit, axis=0) + 1
    better = ever_seq & (delta[np.argmax(seq_hit, axis=0), np.arange(tests)] > 0)
    ever_naive = (p_naive <= alpha).any(axis=0)
    by_planned = None
    planned_day = math.ceil(planned_sequential / calls_per_day)
    if planned_day <= days:
        by_planned = float(seq_hit[:planned_day].any(axis=0).mean())
    fixed = None
    if planned_fixed is not None:
        day = math.ceil(planned_fixed / calls_per_day)
        if day <= days:
            fixed = float((p_naive[day - 1] <= alpha).mean())
    return Rates(
        tests=tests,
        days=days,
        calls_per_day=calls_per_day,
        sequential=float(ever_seq.mean()),
        naive=float(ever_naive.mean()),
        fixed=fixed,
        sequential_mean_day=float(first_day[ever_seq].mean()) if ever_seq.any() else None,
        sequential_better=float(better.mean()),
        sequential_by_planned=by_planned,
    )


def draw_proportions(
    *, tests: int, days: int, calls_per_day: int, p_control: float, p_treatment: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative conversions after each day, shape (days, tests), for control and treatment."""
    rng = np.random.default_rng(seed)
    xc = np.cumsum(rng.binomial(calls_per_day, p_control, size=(days, tests)), axis=0).astype(float)
    xt = np.cumsum(rng.binomial(calls_per_day, p_treatment, size=(days, tests)), axis=0).astype(float)
    return xc, xt


def means_aa(
    *,
    tests: int,
    days: int,
    calls_per_day: int,
    alpha: float = 0.05,
    planned_sequential: int,
    sigma: float = 1.0,
    seed: int = 2,
) -> Rates:
    """Daily looks at A/A tests of a skewed mean (log-normal revenue per call): the plug-in
    variance is where a normal approximation could fail, so it is checked separately."""
    rng = np.random.default_rng(seed)
    shape = (days, tests, calls_per_day)
    sums, squares = [], []
    for _ in range(2):
        values = rng.lognormal(0.0, sigma, size=shape)
        sums.append(np.cumsum(values.sum(axis=2), axis=0))
        squares.append(np.cumsum((values * values).sum(axis=2), axis=0))
    n = calls_per_day * np.arange(1, days + 1, dtype=float)[:, None]
    means_ = [s / n for s in sums]
    variances = [(q - s * s / n) / (n - 1) / n for s, q in zip(sums, squares, strict=True)]
    delta = means_[1] - means_[0]
    var = variances[0] + variances[1]
    planned_var = var * n / planned_sequential
    tau2 = sequential.mixing_variance(planned_var, alpha)
    running = np.minimum.accumulate(sequential.p_value(delta, var, tau2), axis=0)
    ever_seq = (running <= alpha).any(axis=0)
    z = delta / np.sqrt(var)
    ever_naive = (2 * special.ndtr(-np.abs(z)) <= alpha).any(axis=0)
    first_day = np.argmax(running <= alpha, axis=0) + 1
    return Rates(
        tests=tests,
        days=days,
        calls_per_day=calls_per_day,
        sequential=float(ever_seq.mean()),
        naive=float(ever_naive.mean()),
        fixed=None,
        sequential_mean_day=float(first_day[ever_seq].mean()) if ever_seq.any() else None,
        sequential_better=float((ever_seq & (delta[-1] > 0)).mean()),
    )


# --- The platform's whole procedure, vectorised ------------------------------------------
#
# `platform_proportions` runs, for thousands of two-variant conversion tests at once, exactly
# what `analysis.look` and `decision.decide` do at each look: the anytime-valid sample-ratio
# check, the gates, the running mixture p-value and intersected intervals (absolute, and
# Fieller's relative one) with restarts on disagreement and carry-forward on zero variance,
# the direction from the side of 0 the interval lies on, harm, winner and futility.
# `test_simulation` checks it against the platform test by test.

CONCLUSIONS = ("max_duration", "winner", "harm", "no_difference", "invalid")
_WINNER, _HARM, _NO_DIFFERENCE, _INVALID = 1, 2, 3, 4


@dataclass(frozen=True)
class Procedure:
    """The test design simulated (the platform's defaults for a conversion-rate test)."""

    planned: int  # calls per variant (the sequential sample size)
    mde: float = 0.2  # relative
    alpha: float = 0.05
    min_calls: int = 100
    min_days: float = 7.0
    max_days: float = 30.0
    # What the old procedure did, to measure it in the same run: "estimate" takes a
    # significant comparison's direction from today's point estimate; "delta" builds the
    # relative interval as ρ̂ ± its own mixture half-width on the delta-method variance;
    # "chi_square" checks the sample ratio by Pearson's test at p < 0.001 at every look.
    direction: str = "interval"
    relative: str = "fieller"
    srm_test: str | None = "mixture"


@dataclass(frozen=True)
class Runs:
    """Per simulated test: how it concluded (an index into CONCLUSIONS), on which day, how
    many calls per variant it had then, and whether that verdict contradicted the numbers
    beside it: a harm or a winner whose absolute interval was not wholly on its side of 0, or
    a winner whose relative interval (the message's) included 0 or went below −100 %."""

    conclusion: np.ndarray
    day: np.ndarray
    calls: np.ndarray
    contradicted: np.ndarray

    @property
    def tests(self) -> int:
        return len(self.conclusion)

    def share(self, *names: str) -> float:
        codes = [CONCLUSIONS.index(n) for n in names]
        return float(np.isin(self.conclusion, codes).mean())

    def count(self, *names: str) -> int:
        codes = [CONCLUSIONS.index(n) for n in names]
        return int(np.isin(self.conclusion, codes).sum())


def draw_traffic(
    *,
    tests: int,
    looks: int,
    calls_per_look: float,
    p_control: float,
    p_treatment: float,
    share_treatment: float = 0.5,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Per look and test: Poisson arrivals split at random between the variants (as hashing
    assigns them), and the conversions of each. Returns per-look increments
    (n_c, n_t, x_c, x_t), each of shape (looks, tests)."""
    arrivals = rng.poisson(calls_per_look, size=(looks, tests))
    n_t = rng.binomial(arrivals, share_treatment)
    n_c = arrivals - n_t
    return n_c, n_t, rng.binomial(n_c, p_control), rng.binomial(n_t, p_treatment)


def platform_proportions(
    procedure: Procedure,
    *,
    tests: int,
    looks_per_day: int,
    calls_per_day: float,  # both variants together
    p_control: float,
    p_treatment: float,
    share_treatment: float = 0.5,
    seed: int = 1,
    increments: tuple[np.ndarray, ...] | None = None,
) -> Runs:
    """Each test looked at `looks_per_day` times a day until it concludes or runs out of time."""
    from campaigns.domain.abtest import srm
    from campaigns.domain.abtest.estimates import agree_half_width, agree_on_zero, fieller

    looks = int(round(procedure.max_days * looks_per_day))
    if increments is None:
        increments = draw_traffic(
            tests=tests,
            looks=looks,
            calls_per_look=calls_per_day / looks_per_day,
            p_control=p_control,
            p_treatment=p_treatment,
            share_treatment=share_treatment,
            rng=np.random.default_rng(seed),
        )
    n_c, n_t, x_c, x_t = (np.cumsum(a, axis=0, dtype=float) for a in increments)
    tests = n_c.shape[1]
    alpha, mde = procedure.alpha, procedure.mde
    inf = np.full(tests, np.inf)
    p_run, lo, hi, rlo, rhi = np.ones(tests), -inf, inf.copy(), -inf, inf.copy()
    started = np.zeros(tests, dtype=bool)
    conclusion = np.zeros(tests, dtype=int)
    day = np.full(tests, np.nan)
    calls_at = np.full(tests, np.nan)
    contradicted = np.zeros(tests, dtype=bool)
    active = np.ones(tests, dtype=bool)
    r_star = sequential.optimal_ratio(alpha)
    for i in range(looks):
        runtime = (i + 1) / looks_per_day
        nc, nt, xc, xt = n_c[i], n_t[i], x_c[i], x_t[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            pc, pt = np.where(nc > 0, xc / nc, 0.0), np.where(nt > 0, xt / nt, 0.0)
            vc, vt = pc * (1 - pc) / np.maximum(nc, 1), pt * (1 - pt) / np.maximum(nt, 1)
            var = vc + vt
            delta = pt - pc
            positive = (nc > 0) & (nt > 0) & (var > 0)
            safe_var = np.where(positive, var, 1.0)
            tau2 = r_star * (vt * nt + vc * nc) / procedure.planned
            tau2 = np.where(positive & (tau2 > 0), tau2, 1.0)
            p_look = np.where(positive, sequential.p_value(delta, safe_var, tau2), 1.0)
            excl = p_look <= alpha
            h = agree_half_width(np.abs(delta), sequential.half_width(safe_var, tau2, alpha), excl)
            if procedure.relative == "fieller":
                f_lo, f_hi = fieller(pt, vt, pc, vc, h / np.sqrt(safe_var))
                l_rlo, l_rhi = agree_on_zero(f_lo - 1, f_hi - 1, excl, delta)
            else:
                rho = pt / pc - 1
                rel_var = vt / pc**2 + pt**2 * vc / pc**4
                ok = (pc > 0) & (rel_var > 0)
                safe_rel = np.where(ok, rel_var, 1.0)
                rh = sequential.half_width(safe_rel, tau2 * safe_rel / safe_var, alpha)  # τ² scaled like V
                l_rlo, l_rhi = np.where(ok, rho - rh, np.nan), np.where(ok, rho + rh, np.nan)
        l_rlo, l_rhi = np.where(np.isnan(l_rlo), -np.inf, l_rlo), np.where(np.isnan(l_rhi), np.inf, l_rhi)
        m_lo, m_hi = np.maximum(lo, delta - h), np.minimum(hi, delta + h)
        m_rlo, m_rhi = np.maximum(rlo, l_rlo), np.minimum(rhi, l_rhi)
        restart = ~started | (m_lo > m_hi) | (m_rlo > m_rhi)
        update = positive & active
        lo = np.where(update, np.where(restart, delta - h, m_lo), lo)
        hi = np.where(update, np.where(restart, delta + h, m_hi), hi)
        rlo = np.where(update, np.where(restart, l_rlo, m_rlo), rlo)
        rhi = np.where(update, np.where(restart, l_rhi, m_rhi), rhi)
        p_run = np.where(update, np.where(restart, p_look, np.minimum(p_run, p_look)), p_run)
        started |= update

        significant = started & (p_run <= alpha)
        if procedure.direction == "interval":
            better, worse = significant & (lo > 0), significant & (hi < 0)
        else:
            better, worse = significant & (delta > 0), significant & (delta < 0)
        rel_ok = started & np.isfinite(rlo) & np.isfinite(rhi)
        if procedure.relative == "fieller":
            rel_ok &= ((rlo > 0) | (rhi < 0)) == significant
        equivalent = ~significant & rel_ok & (-mde < rlo) & (rhi < mde)

        if procedure.srm_test == "mixture":
            counts = np.stack([nc, nt])[None]
            invalid = srm.log_bayes_factor(counts, np.array([0.5, 0.5])[None, :, None]) >= math.log(1 / srm.THRESHOLD)
        elif procedure.srm_test == "chi_square":
            e = (nc + nt) / 2
            with np.errstate(divide="ignore", invalid="ignore"):
                chi = np.where(e > 0, ((nc - e) ** 2 + (nt - e) ** 2) / e, 0.0)
            invalid = (e >= 5) & (special.chdtrc(1, chi) < 0.001)
        else:
            invalid = np.zeros(tests, dtype=bool)
        calls = np.minimum(nc, nt)
        gate = calls >= procedure.min_calls
        runtime_met = runtime >= procedure.min_days
        outcome = np.zeros(tests, dtype=int)
        outcome = np.where(gate & runtime_met & (calls >= procedure.planned), _NO_DIFFERENCE, outcome)
        outcome = np.where(gate & runtime_met & equivalent, _NO_DIFFERENCE, outcome)
        outcome = np.where(gate & runtime_met & better, _WINNER, outcome)
        outcome = np.where(gate & worse, _HARM, outcome)
        outcome = np.where(invalid, _INVALID, outcome)
        ends = active & ((outcome > 0) | (runtime >= procedure.max_days))
        against = ((outcome == _HARM) & ~(hi < 0)) | ((outcome == _WINNER) & ~(lo > 0))
        against |= (outcome == _WINNER) & rel_ok & ((rlo <= 0) | (rlo <= -1))
        contradicted = np.where(ends, against, contradicted)
        conclusion = np.where(ends, outcome, conclusion)
        day = np.where(ends, runtime, day)
        calls_at = np.where(ends, calls, calls_at)
        active &= ~ends
        if not active.any():
            break
    return Runs(conclusion, day, calls_at, contradicted)


def srm_flags(
    *,
    tests: int,
    days: int,
    units_per_day: float,
    share_treatment: float,
    seed: int,
    looks_per_day: int = 24,
    every: tuple[int, ...] = (1, 24),
    chunk: int = 5_000,
) -> dict[str, np.ndarray]:
    """Two variants at 50/50 weights, units arriving at random (Poisson per look) for `days`,
    the split checked by the anytime-valid mixture (`mixture`) and by Pearson's chi-square at
    p < 0.001 (`chi_square`). For each check and each spacing e of `every` (a look at every
    e-th of the `looks_per_day` looks a day: 1 hourly, 24 daily, on the same draws), the
    units at which each test was first flagged (inf: never), under the key "check/e"."""
    from campaigns.domain.abtest import srm

    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    threshold = math.log(1 / srm.THRESHOLD)
    critical = float(special.chdtri(1, 0.001))  # χ²₁ beyond which p < 0.001
    looks = days * looks_per_day
    for start in range(0, tests, chunk):
        size = min(chunk, tests - start)
        arrivals = rng.poisson(units_per_day / looks_per_day, size=(looks, size))
        treated = np.cumsum(rng.binomial(arrivals, share_treatment), axis=0, dtype=float)
        total = np.cumsum(arrivals, axis=0, dtype=float)
        control = total - treated
        log_bf = srm.log_bayes_factor(np.stack([control, treated])[None], np.array([0.5, 0.5])[None, :, None, None])
        e = total / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            chi = np.where(e > 0, ((control - e) ** 2 + (treated - e) ** 2) / e, 0.0)
        flags = {"mixture": log_bf >= threshold, "chi_square": (e >= 5) & (chi > critical)}
        for name, hit in flags.items():
            for step in every:
                seen = hit[step - 1 :: step]
                units = total[step - 1 :: step]
                first = np.where(seen.any(axis=0), units[seen.argmax(axis=0), np.arange(size)], np.inf)
                out.setdefault(f"{name}/{step}", []).append(first)
    return {k: np.concatenate(v) for k, v in out.items()}
