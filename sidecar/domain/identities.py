"""Identity names: one kind prefix each, so kinds never collide, matched exactly. Pure.

A caller's identities are written, in policies, `--admin-identities` and the audit log, as:

- `spiffe://trust/ns/...` (any `scheme://...`): a URI subject alternative name, as is;
- `dns:<name>`, `email:<address>`, `ip:<address>`, `uri:<value>` (a URI SAN without `://`):
  the other subject alternative names of a verified client certificate;
- `cn:<name>`: the certificate's subject common name;
- `token:<name>`: a bearer token, `<name>` being its file in --auth-tokens-dir.

A certificate with the DNS name `ops` is `dns:ops`; it is never the token identity `token:ops`.
"""

from __future__ import annotations

import re

KINDS = ("token:", "dns:", "cn:", "email:", "ip:", "uri:")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")


def identity_problem(name: str) -> str | None:
    """None for a well-formed identity, else what is wrong with it (for startup and reload errors)."""
    if _URI.match(name):
        return None
    kind, colon, rest = name.partition(":")
    if colon and f"{kind}:" in KINDS and rest and rest == rest.strip():
        return None
    return (
        f"identity {name!r} has no kind: write token:{name}, dns:{name}, cn:{name}, email:, ip:, uri: "
        "or a URI such as spiffe://... (docs/security.md, identities)"
    )


def identity_problems(names: list[str] | tuple[str, ...]) -> list[str]:
    return [problem for name in names if (problem := identity_problem(name)) is not None]


def uri_identity(value: str) -> str:
    return value if _URI.match(value) else f"uri:{value}"
