"""Every secret form of a Redis URL is redacted before it reaches a log line or a report."""

from __future__ import annotations

import pytest

from sidecar.redis_store.connection import redact, scrub

CASES = [
    ("redis://user:s3cret@h:6379/0", "redis://user:***@h:6379/0"),
    ("redis://:s3cret@h:6379", "redis://:***@h:6379"),
    ("rediss://user:p%40ss%21s3cret@h:6380/0", "rediss://user:***@h:6380/0"),
    ("redis://h:6379/0?password=s3cret&db=1", "redis://h:6379/0?password=***&db=1"),
    ("unix:///run/redis.sock?db=0&password=s3cret", "unix:///run/redis.sock?db=0&password=***"),
    (
        "redis+sentinel://u:s3cret@s1:26379,s2:26379/mymaster?sentinel_password=s3cret2",
        "redis+sentinel://u:***@s1:26379,s2:26379/mymaster?sentinel_password=***",
    ),
    ("redis+cluster://:s3cret@n1:7000,n2:7001", "redis+cluster://:***@n1:7000,n2:7001"),
    (
        "rediss://h/0?ssl_password=s3cret&ssl_ca_certs=/etc/ca.pem",
        "rediss://h/0?ssl_password=***&ssl_ca_certs=/etc/ca.pem",
    ),
    ("redis://h:6379/0", "redis://h:6379/0"),
]


@pytest.mark.parametrize(("url", "shown"), CASES)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert "s3cret" not in redact(url)


def test_scrub_removes_the_secrets_from_any_text() -> None:
    url = "redis+sentinel://u:p%40w@s1,s2/m?sentinel_password=other"
    assert scrub("cannot connect with p@w / p%40w / other", url) == "cannot connect with *** / *** / ***"
