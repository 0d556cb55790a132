"""Deterministic weighted assignment."""

from __future__ import annotations

from collections import Counter

from scipy import stats as sps

from campaigns.domain.abtest import assignment


def test_same_subject_same_variant():
    weights = [0.5, 0.3, 0.2]
    for subject in ("alice", "+15551234567", "ü-ñicode", ""):
        first = assignment.assign("test-1", subject, weights)
        assert all(assignment.assign("test-1", subject, weights) == first for _ in range(5))


def test_split_matches_the_weights():
    weights = [50, 30, 15, 5]
    n = 100_000
    counts = Counter(assignment.assign("split", f"subject-{i}", weights) for i in range(n))
    observed = [counts[i] for i in range(4)]
    expected = [n * w / 100 for w in weights]
    assert sps.chisquare(observed, expected).pvalue > 0.001


def test_tests_are_independent():
    """Being in the first half of one test says nothing about the next."""
    n = 40_000
    a = [assignment.assign("test-a", f"s{i}", [1, 1]) for i in range(n)]
    b = [assignment.assign("test-b", f"s{i}", [1, 1]) for i in range(n)]
    table = [[sum(1 for x, y in zip(a, b, strict=True) if x == i and y == j) for j in (0, 1)] for i in (0, 1)]
    assert sps.chi2_contingency(table).pvalue > 0.001


def test_position_is_in_the_unit_interval_and_choose_covers_the_edges():
    assert 0 <= assignment.position("t", "s") < 1
    assert assignment.choose([1, 1], 0.0) == 0
    assert assignment.choose([1, 1], 0.5) == 1
    assert assignment.choose([1, 1], 0.999999999) == 1
