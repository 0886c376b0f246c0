"""The one percentile every benchmark reports, so their p50/p99 rows mean the same thing."""

from __future__ import annotations


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list, ``fraction`` in (0, 1].

    No interpolation: every reported value was observed. The rank is ceil(fraction * n),
    with a hair taken off so that 0.99 * 100 lands on rank 99 despite float rounding.
    """
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]
