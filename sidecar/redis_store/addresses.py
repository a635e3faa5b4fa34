"""Multi-host Redis URLs (`scheme://[user:pass@]h:p,h:p/path?query`), parsed once.

Hosts are `name`, `name:port`, `1.2.3.4:port` or `[ipv6]:port`; a host without a
port gets the scheme's default. User and password are percent-decoded. Every
problem raises ValueError with a message that names the part to fix (the
password is never repeated in it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote


@dataclass(frozen=True, slots=True)
class MultiHostUrl:
    scheme: str
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    path: tuple[str, ...] = ()
    query: dict[str, str] = field(default_factory=dict)

    def reject_query(self, allowed: Iterable[str] = ()) -> None:
        """ValueError for any query parameter not in `allowed` (a typo would be silently ignored)."""
        unknown = sorted(set(self.query) - set(allowed))
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)} in a {self.scheme}:// URL (known: {known})")


def _host_port(part: str, scheme: str, default_port: int) -> tuple[str, int]:
    part = part.strip()
    if part.startswith("["):  # [ipv6] or [ipv6]:port
        host, closed, rest = part[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"bad IPv6 host {part!r} in a {scheme}:// URL (write [addr]:port)")
        port = rest[1:] if rest else ""
    elif part.count(":") > 1:
        raise ValueError(f"bad host {part!r} in a {scheme}:// URL (an IPv6 address goes in brackets: [addr]:port)")
    else:
        host, _, port = part.partition(":")
    if not host:
        raise ValueError(f"empty host in a {scheme}:// URL (hosts are host:port, separated by commas)")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port {port!r} for host {host!r} in a {scheme}:// URL")
    return host, int(port)


def parse_multi_host(url: str, default_port: int) -> MultiHostUrl:
    """Raises ValueError with a message that says what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme:
        raise ValueError(f"not a URL (expected scheme://host:port,...): {url.partition('@')[2] or url!r}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        credentials, _, netloc = netloc.rpartition("@")
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts = tuple(_host_port(part, scheme, default_port) for part in netloc.split(","))
    return MultiHostUrl(
        scheme=scheme.lower(),
        tls=scheme.lower().startswith("rediss"),
        hosts=hosts,
        username=username,
        password=password,
        path=tuple(unquote(p) for p in path.split("/") if p),
        query={k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()},
    )
