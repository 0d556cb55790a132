"""Sample-ratio mismatch: are the variants' unit counts what the weights say they should be?

A mismatch means assignment or event logging is broken (a variant crashes before it logs,
bots, a redirect that drops traffic…): no estimate can be trusted, so the test can declare no
winner. The check runs at every look — hourly by default, and on every results request — so
a test at a fixed threshold per look (Pearson's chi-square at p < 0.001) flags an honest test
more often the longer it runs (about 1.4 % of 50/50 tests over 30 daily looks, 2.7 % over 720
hourly ones). This one is anytime-valid: its error bound holds over any number of looks.

The Dirichlet–multinomial mixture (a Bayes factor that is a test martingale)
------------------------------------------------------------------------------
Under the null, each unit lands in variant k with probability wₖ (the weights, normalised).
Mix the alternative "it lands with probabilities q" over a Dirichlet prior centred on the
weights, q ~ Dir(A w). For counts o (n = Σ oₖ) the Bayes factor against the null is

    BF = Γ(A) / Γ(A + n) · Πₖ Γ(A wₖ + oₖ) / Γ(A wₖ) / Πₖ wₖ^oₖ

(the multinomial coefficients cancel). It is the product over units of the posterior
predictive probability of each unit's variant divided by its weight, so under the null it is
a nonnegative martingale with mean 1, and by Ville's inequality

    P(BF ≥ 1/a at any look, ever) ≤ a.

The check flags a mismatch when BF ≥ 1/0.001 = 1000, so an honest test is flagged at most
0.1 % of the time over its whole life, however often it is looked at; its anytime-valid
p-value is min(1, 1/BF). BF depends on the current counts only: no state is carried.

The concentration A sets which mismatches the mixture expects: a share's prior standard
deviation is √(wₖ (1 − wₖ) / (A + 1)), ±1.6 points at 50/50 with A = 1,000, the size of the
mismatches that matter (a variant losing 3 % of its units moves its share by 0.8 points). The
Bayes factor is largest, for a given mismatch, at about n ≈ 17 A units (where the mixture's
cost log √(1 + n/A) balances the evidence); A = 1,000 makes the check sharpest around the
10,000–30,000 units of a typical test, and it still catches a gross break within a few hundred.

Changing weights (bandit mode): weight epochs
---------------------------------------------
With weights w⁽ᵉ⁾ that change between epochs e (each epoch's weights are set before any of
its units arrive), the Bayes factor is the product over epochs of each epoch's Dirichlet–
multinomial factor, each again a martingale given the past. To let evidence about a lasting
mismatch accumulate across epochs, epoch e's prior is centred on what the earlier epochs
showed rather than on its weights: with Oₖ and Xₖ the units observed and expected in
variant k before epoch e (N of them in all), the estimated retention of each variant is
λₖ = (Oₖ + A/K) / (Xₖ + A/K), the prior's centre is m ∝ w⁽ᵉ⁾ · λ and its concentration
A + N. Any centre and concentration fixed before the epoch keeps the factor a martingale,
so the bound above holds unchanged. With one epoch this is the formula above.

A variant with weight 0 in an epoch and units in it is a mismatch outright (BF = ∞).
Pearson's chi-square of the totals against their expected counts is reported beside, as a
description of the size of the mismatch; it decides nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

THRESHOLD = 0.001  # flagged when the anytime-valid p-value 1/BF is at most this
CONCENTRATION = 1000.0  # A, the Dirichlet prior's concentration

Epoch = tuple[list[float], list[float]]  # (units per variant, weights per variant)


@dataclass(frozen=True)
class SrmCheck:
    observed: list[float]
    expected: list[float]
    chi_square: float | None  # descriptive
    log_bayes_factor: float | None
    p_value: float | None  # anytime-valid: min(1, 1/BF)

    @property
    def checked(self) -> bool:
        return self.p_value is not None

    @property
    def detected(self) -> bool:
        return self.log_bayes_factor is not None and self.log_bayes_factor >= math.log(1 / THRESHOLD)

    @property
    def bayes_factor(self) -> float | None:
        if self.log_bayes_factor is None:
            return None
        return math.exp(min(self.log_bayes_factor, 700.0))


def check(observed: list[float], weights: list[float], *, concentration: float = CONCENTRATION) -> SrmCheck:
    """The check for counts under fixed weights (one epoch)."""
    return check_epochs([(observed, weights)], concentration=concentration)


def check_epochs(epochs: list[Epoch], *, concentration: float = CONCENTRATION) -> SrmCheck:
    """The check over weight epochs, oldest first (see the module docstring)."""
    counts = np.array([e[0] for e in epochs], dtype=float).reshape(len(epochs), -1)
    weights = np.array([e[1] for e in epochs], dtype=float).reshape(counts.shape)
    weights = weights / np.where(weights.sum(axis=1, keepdims=True) > 0, weights.sum(axis=1, keepdims=True), 1.0)
    observed = counts.sum(axis=0)
    expected = (counts.sum(axis=1, keepdims=True) * weights).sum(axis=0)
    total = float(observed.sum())
    if counts.shape[1] < 2 or total <= 0:
        return SrmCheck(observed.tolist(), expected.tolist(), None, None, None)
    log_bf = float(log_bayes_factor(counts, weights, concentration))
    positive = expected > 0
    chi = float((((observed - expected) ** 2)[positive] / expected[positive]).sum())
    return SrmCheck(observed.tolist(), expected.tolist(), chi, log_bf, min(1.0, math.exp(-log_bf)))


def log_bayes_factor(counts: np.ndarray, weights: np.ndarray, concentration: float = CONCENTRATION) -> np.ndarray:
    """log BF over epochs. `counts` has shape (epochs, K, …) and `weights` broadcasts to it
    (normalised here); trailing axes are independent tests, which the simulations use to
    check many at once."""
    counts = np.asarray(counts, dtype=float)
    weights = np.asarray(weights, dtype=float)
    weights = np.broadcast_to(weights, (counts.shape[0], *weights.shape[1:]))
    k = counts.shape[1]
    # Running totals start as scalars so that the first epoch's prior keeps the weights' shape.
    seen: np.ndarray | float = 0.0  # Oₖ before the epoch
    due: np.ndarray | float = 0.0  # Xₖ before the epoch
    before: np.ndarray | float = 0.0  # N before the epoch
    log_bf: np.ndarray | float = 0.0
    for o, w in zip(counts, weights, strict=True):
        w = w / w.sum(axis=0)
        n = o.sum(axis=0)
        centre = w * (seen + concentration / k) / (due + concentration / k)
        a = concentration + before
        alpha = a * centre / centre.sum(axis=0)
        live = w > 0
        if live.all():
            terms = special.gammaln(alpha + o) - special.gammaln(alpha) - o * np.log(w)
            log_f = special.gammaln(a) - special.gammaln(a + n) + terms.sum(axis=0)
        else:
            safe_alpha, safe_w = np.where(live, alpha, 1.0), np.where(live, w, 1.0)
            terms = np.where(
                live, special.gammaln(safe_alpha + o) - special.gammaln(safe_alpha) - o * np.log(safe_w), 0.0
            )
            log_f = special.gammaln(a) - special.gammaln(a + n) + terms.sum(axis=0)
            log_f = np.where(((~live) & (o > 0)).any(axis=0), np.inf, log_f)
        log_bf = log_bf + log_f
        seen, due, before = seen + o, due + n * w, before + n
    return np.asarray(log_bf)
