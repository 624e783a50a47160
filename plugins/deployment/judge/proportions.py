"""Exact and approximate tests of error rates (pure): a rate against a limit, and two rates."""

from __future__ import annotations

import math


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p): the one-sided exact p-value of ``successes``."""
    if successes <= 0:
        return 1.0
    if successes > trials or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)

    def pmf(k: int) -> float:
        log_choose = math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
        return math.exp(log_choose + k * log_p + (trials - k) * log_q)

    if successes <= trials * p:  # the upper tail is large: sum the shorter lower tail instead
        return max(0.0, 1.0 - math.fsum(pmf(k) for k in range(successes)))
    return min(1.0, math.fsum(pmf(k) for k in range(successes, trials + 1)))


def worse_by_margin_p(errors_a: int, requests_a: int, errors_b: int, requests_b: int, margin: float) -> float:
    """One-sided p-value that rate A exceeds rate B by more than ``margin`` (a fraction).

    Agresti-Caffo adjusted Wald test for a difference of two proportions: one success and
    one failure are added to each group, which keeps the variance honest at zero or few errors.
    """
    pa = (errors_a + 1) / (requests_a + 2)
    pb = (errors_b + 1) / (requests_b + 2)
    se = math.sqrt(pa * (1 - pa) / (requests_a + 2) + pb * (1 - pb) / (requests_b + 2))
    z = (pa - pb - margin) / se
    return 0.5 * math.erfc(z / math.sqrt(2))
