"""Sentinel mode: the client asks the sentinels for the master on every new connection.

URL: `redis+sentinel://[user:pass@]s1:26379,s2:26379/<master-name>[/<db>][?sentinel_password=...]`.
The user/password are for the data nodes; sentinels use `sentinel_password` (if any).

After a failover, connections to the old master fail (connection error, or
READONLY once it is demoted, which redis-py turns into a reconnect); the
failing call is answered UNAVAILABLE, never retried (a retried write is
unsafe), and the next connection goes to the master the sentinels name.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from sidecar.redis_store.addresses import parse_multi_host
from sidecar.redis_store.connection import common_options


def connect_sentinel(url: str, *, timeout_s: float, max_connections: int) -> Redis:
    parsed = parse_multi_host(url, default_port=26379)
    if not parsed.path:
        raise ValueError("a redis+sentinel:// URL needs the master name as its path: .../mymaster")
    if len(parsed.path) > 2 or (len(parsed.path) == 2 and not parsed.path[1].isdigit()):
        shown = "/".join(parsed.path)
        raise ValueError(f"a redis+sentinel:// URL's path is /<master-name>[/<db number>], not /{shown}")
    parsed.reject_query(["sentinel_password"])
    sentinel_auth = {"password": parsed.query["sentinel_password"]} if "sentinel_password" in parsed.query else {}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(parsed.hosts),
        sentinel_kwargs={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, **sentinel_auth},
    )
    master: Redis = sentinel.master_for(
        parsed.path[0],
        redis_class=Redis,
        db=int(parsed.path[1]) if len(parsed.path) > 1 else 0,
        username=parsed.username,
        password=parsed.password,
        ssl=parsed.tls,
        **common_options(timeout_s, max_connections),
    )
    return master
