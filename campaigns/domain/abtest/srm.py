"""Sample-ratio mismatch: are the variants' unit counts what the weights say they should be?

Pearson's chi-square goodness of fit, with observed counts oₖ and expected counts
eₖ = N wₖ (N = Σ oₖ, weights normalised to sum to 1; in bandit mode, the sum over weight
epochs of each epoch's count times that epoch's weights):

    χ² = Σ (oₖ − eₖ)² / eₖ        p = P(χ²_{K−1} ≥ χ²)

A mismatch at p < 0.001 means assignment or event logging is broken (a variant crashes
before it logs, bots, a redirect that drops traffic…): no estimate can be trusted, so the test
can declare no winner. The strict threshold keeps false alarms rare although the check runs
at every look. The approximation needs every expected count to be at least 5; below that
the check waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy import special

THRESHOLD = 0.001
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class SrmCheck:
    observed: list[float]
    expected: list[float]
    chi_square: float | None
    p_value: float | None

    @property
    def checked(self) -> bool:
        return self.p_value is not None

    @property
    def detected(self) -> bool:
        return self.p_value is not None and self.p_value < THRESHOLD


def check(observed: list[float], expected: list[float]) -> SrmCheck:
    """Chi-square test of observed counts against expected counts (same total)."""
    if len(observed) < 2 or min(expected, default=0) < MIN_EXPECTED:
        return SrmCheck(observed, expected, None, None)
    stat = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return SrmCheck(observed, expected, stat, float(special.chdtrc(len(observed) - 1, stat)))


def expected_counts(total: float, weights: list[float]) -> list[float]:
    s = sum(weights)
    return [total * w / s for w in weights]


def expected_over_epochs(epochs: list[tuple[float, list[float]]]) -> list[float]:
    """Σ over epochs of (units in the epoch) × (that epoch's normalised weights)."""
    out: list[float] = []
    for total, weights in epochs:
        counts = expected_counts(total, weights)
        out = counts if not out else [a + b for a, b in zip(out, counts, strict=True)]
    return out
