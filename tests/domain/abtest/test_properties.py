"""Properties that hold for any input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from campaigns.domain.abtest import assignment, holm, sequential

P = st.floats(min_value=0, max_value=1, allow_nan=False)
POSITIVE = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)


@given(st.lists(P, min_size=1, max_size=12))
def test_holm_is_at_least_the_raw_p_value_and_keeps_the_order(ps):
    adjusted = holm.adjust(ps)
    assert all(a >= p - 1e-15 and a <= 1 for a, p in zip(adjusted, ps, strict=True))
    ranked = sorted(range(len(ps)), key=lambda i: ps[i])
    assert all(adjusted[a] <= adjusted[b] + 1e-15 for a, b in zip(ranked, ranked[1:], strict=False))


@given(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), POSITIVE, POSITIVE,
       st.sampled_from([0.01, 0.05, 0.1]))
def test_interval_excludes_zero_exactly_when_p_is_at_most_alpha(delta, variance, tau2, alpha):
    h = sequential.half_width(variance, tau2, alpha)
    p = sequential.p_value(delta, variance, tau2)
    margin = 1e-9 * max(1.0, h)
    if abs(abs(delta) - h) > margin:  # away from the boundary, where rounding decides
        assert (abs(delta) > h) == (p <= alpha)


@given(st.text(max_size=40), st.lists(st.floats(min_value=0.01, max_value=100), min_size=2, max_size=10))
def test_assignment_is_a_valid_index_and_stable(subject, weights):
    index = assignment.assign("t", subject, weights)
    assert 0 <= index < len(weights)
    assert assignment.assign("t", subject, weights) == index
