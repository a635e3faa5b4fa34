"""Multi-host URLs: every form the docs show, parsed and turned into a configured client; bad URLs fail clearly.

Building a client does not connect (redis-py connects on first use), so these
tests read the client's own configuration: what it would connect to, and how.
"""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from sidecar.redis_store.addresses import parse_multi_host
from sidecar.redis_store.connection import connect, mode_of


def test_several_sentinels_with_default_ports_db_and_sentinel_password() -> None:
    parsed = parse_multi_host(
        "redis+sentinel://app:p%40ss%3Aword@s1:26380,s2, s3:26381/dedupmaster/3?sentinel_password=sp", 26379
    )
    assert parsed.scheme == "redis+sentinel"
    assert parsed.hosts == (("s1", 26380), ("s2", 26379), ("s3", 26381))
    assert (parsed.username, parsed.password) == ("app", "p@ss:word")  # percent-decoded
    assert parsed.path == ("dedupmaster", "3")
    assert parsed.query == {"sentinel_password": "sp"}
    assert parsed.tls is False


def test_sentinel_client_is_configured_from_the_url() -> None:
    client = connect(
        "redis+sentinel://app:secret@10.0.0.1:26379,10.0.0.2,[::1]:26390/dedupmaster/2?sentinel_password=sp",
        timeout_s=1.5,
    )
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "dedupmaster"
    data = pool.connection_kwargs
    assert (data["db"], data["username"], data["password"]) == (2, "app", "secret")
    assert data["socket_timeout"] == 1.5
    sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26390)]
    assert all(s["password"] == "sp" for s in sentinels)  # sentinel_password is for the sentinels only


def test_sentinel_without_db_or_sentinel_password() -> None:
    client = connect("redis+sentinel://s1:26379/m", timeout_s=1)
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.connection_kwargs["db"] == 0
    assert pool.connection_kwargs["password"] is None
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs.get("password") is None


def test_rediss_sentinel_uses_tls_to_the_data_nodes() -> None:
    client = connect("rediss+sentinel://s1/m", timeout_s=1)
    assert isinstance(client, Redis)
    assert client.connection_pool.connection_class is SentinelManagedSSLConnection
    assert mode_of("rediss+sentinel://s1/m") == "sentinel"


@pytest.mark.parametrize(
    ("url", "tls"),
    [("redis+cluster://u:pw@n1:7000,n2", False), ("rediss+cluster://u:pw@n1:7000,n2", True)],
)
def test_cluster_seed_nodes_credentials_and_tls(url: str, tls: bool) -> None:
    client = connect(url, timeout_s=1)
    assert isinstance(client, RedisCluster)
    assert [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()] == [("n1", 7000), ("n2", 6379)]
    options = client.get_connection_kwargs()
    assert (options["username"], options["password"]) == ("u", "pw")
    assert (options.get("connection_class") is SSLConnection) is tls
    assert mode_of(url) == "cluster"


def test_plain_url_with_cluster_mode_and_db_zero() -> None:
    client = connect("redis://10.0.0.5:7000/0", timeout_s=1, mode="cluster")
    assert isinstance(client, RedisCluster)
    assert [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()] == [("10.0.0.5", 7000)]


def test_ipv6_hosts_in_brackets() -> None:
    parsed = parse_multi_host("redis+cluster://[::1]:7000,[fe80::2]", 6379)
    assert parsed.hosts == (("::1", 7000), ("fe80::2", 6379))


@pytest.mark.parametrize(
    ("url", "mode", "message"),
    [
        ("s1:26379/m", "sentinel", "not a URL"),
        ("redis+sentinel://s1:26379", "auto", "needs the master name"),
        ("redis+sentinel://s1:26379/m/x", "auto", "/<master-name>[/<db number>]"),
        ("redis+sentinel://s1:26379/m/1/2", "auto", "/<master-name>[/<db number>]"),
        ("redis+sentinel://s1:26379/m?sentinel_pasword=x", "auto", "unknown parameter(s) sentinel_pasword"),
        ("redis+sentinel://s1:notaport/m", "auto", "bad port 'notaport' for host 's1'"),
        ("redis+sentinel://s1:70000/m", "auto", "bad port '70000'"),
        ("redis+sentinel://s1:0/m", "auto", "bad port '0'"),
        ("redis+sentinel://s1,,s2/m", "auto", "empty host"),
        ("redis+sentinel://u:pw@/m", "auto", "empty host"),
        ("redis+cluster://n1:7000,", "auto", "empty host"),
        ("redis+cluster://", "auto", "empty host"),
        ("redis+cluster://n1:7000/1", "auto", "only db 0"),
        ("redis+cluster://n1:7000?timeout=1", "auto", "unknown parameter(s) timeout"),
        ("redis+cluster://::1:7000", "auto", "in brackets"),
        ("redis+cluster://[::1:7000", "auto", "bad IPv6 host"),
        ("redis+cluster://[::1]7000", "auto", "bad IPv6 host"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, mode: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        connect(url, timeout_s=1, mode=mode)


def test_errors_never_show_the_password() -> None:
    for url in ("redis+cluster://u:hunter2@n1:bad", "u:hunter2@n1:7000"):
        with pytest.raises(ValueError, match=r"port|not a URL") as failed:
            connect(url, timeout_s=1, mode="cluster")
        assert "hunter2" not in str(failed.value)
