"""PromQL's rate() and histogram_quantile() over /metrics scrapes taken at a fixed step, for bench plots.

A scrape is {(metric name, frozenset of labels): value}, as prometheus_client's
parser gives it. `rate` is the increase over the range divided by the range (no
extrapolation at the edges, unlike Prometheus: with a counter scraped every
step from zero the two agree to within one step). `histogram_quantile` follows
Prometheus: linear interpolation inside the bucket that holds the rank, the
lowest bucket starting at 0, and a rank in the +Inf bucket answering the
highest finite bound.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

Labels = frozenset[tuple[str, str]]
Scrape = dict[tuple[str, Labels], float]


def _group(labels: Labels, by: Sequence[str]) -> tuple[str, ...]:
    as_dict = dict(labels)
    return tuple(as_dict.get(name, "") for name in by)


def sum_by(
    scrape: Scrape, name: str, by: Sequence[str], where: Callable[[dict[str, str]], bool] = lambda _: True
) -> dict[tuple[str, ...], float]:
    """sum by (by) (name{where})"""
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for (sample, labels), value in scrape.items():
        if sample == name and where(dict(labels)):
            out[_group(labels, by)] += value
    return dict(out)


def rate_by(
    scrapes: Sequence[Scrape],
    index: int,
    steps: int,
    step_s: float,
    name: str,
    by: Sequence[str],
    where: Callable[[dict[str, str]], bool] = lambda _: True,
) -> dict[tuple[str, ...], float]:
    """sum by (by) (rate(name{where}[steps * step_s])) at scrape `index` (counters start at 0)."""
    now = sum_by(scrapes[index], name, by, where)
    before = sum_by(scrapes[index - steps], name, by, where) if index >= steps else {}
    range_s = steps * step_s if index >= steps else max(index, 1) * step_s
    return {key: (value - before.get(key, 0.0)) / range_s for key, value in now.items()}


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """q-quantile from cumulative bucket counts (or rates) keyed by upper bound (math.inf included)."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return math.nan
    total = buckets[math.inf]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return bounds[-2] if len(bounds) > 1 else math.nan
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return math.nan


def quantile_by(rates: dict[tuple[str, ...], float], q: float, group_size: int) -> dict[tuple[str, ...], float]:
    """histogram_quantile(q, sum by (group..., le) (...)): `rates` keys end with the `le` label."""
    grouped: dict[tuple[str, ...], dict[float, float]] = defaultdict(dict)
    for key, value in rates.items():
        grouped[key[:group_size]][float(key[group_size])] = value
    return {group: histogram_quantile(q, buckets) for group, buckets in grouped.items()}
