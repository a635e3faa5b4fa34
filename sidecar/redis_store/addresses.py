"""Multi-host Redis URLs (`scheme://[user:pass@]h:p,h:p/path?query`), parsed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote


@dataclass(frozen=True, slots=True)
class MultiHostUrl:
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    path: tuple[str, ...] = ()
    query: dict[str, str] = field(default_factory=dict)


def parse_multi_host(url: str, default_port: int) -> MultiHostUrl:
    """Raises ValueError with a message that says what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        credentials, _, netloc = netloc.rpartition("@")
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts = []
    for part in netloc.split(","):
        host, has_port, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not host:
            raise ValueError(f"empty host in {scheme}:// URL")
        hosts.append((host, int(port) if has_port else default_port))
    return MultiHostUrl(
        tls=scheme.lower().startswith("rediss"),
        hosts=tuple(hosts),
        username=username,
        password=password,
        path=tuple(p for p in path.split("/") if p),
        query={k: v[-1] for k, v in parse_qs(query).items()},
    )
