"""bench/promql.py (the dashboard plot's PromQL) agrees with Prometheus on known inputs."""

from __future__ import annotations

import math

import pytest

from bench.promql import histogram_quantile, rate_by


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {1.0: 10.0, 5.0: 30.0, 30.0: 40.0, math.inf: 40.0}
    assert histogram_quantile(0.5, buckets) == 1 + 4 * (20 - 10) / 20  # rank 20 in (1, 5]
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.4)  # the lowest bucket starts at 0
    assert histogram_quantile(0.99, {**buckets, math.inf: 50.0}) == 30.0  # rank in +Inf: highest finite bound
    assert math.isnan(histogram_quantile(0.5, {1.0: 0.0, math.inf: 0.0}))


def test_rate_is_the_increase_over_the_range() -> None:
    key = ("dedup_decisions_total", frozenset({("outcome", "NEW")}))
    scrapes = [{key: float(n * n)} for n in range(6)]
    assert rate_by(scrapes, 5, 2, 1.0, "dedup_decisions_total", ["outcome"]) == {("NEW",): (25 - 9) / 2}
