"""Holm's step-down correction, across the variants compared with control.

With m p-values sorted p₍₁₎ ≤ … ≤ p₍ₘ₎, the adjusted values are

    p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1) p₍ⱼ₎)

and rejecting where p̃ ≤ α controls the family-wise error rate at α. The proof needs only
that each true null's p-value is valid, so it holds for always-valid p-values too: on the
event (probability ≥ 1 − α) that no true null's running p-value ever falls to α / m₀, Holm
rejects no true null at any look.
"""

from __future__ import annotations


def adjust(p_values: list[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
