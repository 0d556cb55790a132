"""Deterministic weighted assignment: the same subject always lands in the same variant, and
the split matches the weights.

A subject's position u in [0, 1) is the first 53 bits of SHA-256(test id, subject id), read
as a binary fraction: uniform, independent across subjects, and independent across tests
(the test id salts it, so being in variant B of one test says nothing about the next). The
variants split [0, 1) into consecutive intervals as wide as their normalised weights, in
their configured order; the subject gets the variant whose interval holds u.

Weights fixed for the life of a test (fixed and sequential modes) make this a pure function:
nothing needs storing. Bandit mode changes the weights, which would move some subjects to
another variant, so there the first assignment of each subject is stored and reused.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from itertools import accumulate

_SCALE = float(1 << 53)


def position(test_id: str, subject_id: str) -> float:
    digest = hashlib.sha256(f"{test_id}\x1f{subject_id}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / _SCALE


def choose(weights: Sequence[float], u: float) -> int:
    """The index of the variant whose slice of [0, 1) holds u."""
    total = sum(weights)
    bounds = [b / total for b in accumulate(weights)]
    return min(bisect.bisect_right(bounds, u), len(weights) - 1)


def assign(test_id: str, subject_id: str, weights: Sequence[float]) -> int:
    return choose(weights, position(test_id, subject_id))
