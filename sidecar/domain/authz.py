"""Authorisation: may this caller do this operation in this namespace? Pure; no I/O.

- Open mode (no identities configured anywhere: no admin identities, no tokens, no mTLS
  client CA, no namespace lists `allowed_identities`): everything is allowed, as before.
- Once identities are configured, deny by default: a caller needs one of its identities in
  the namespace policy's `allowed_identities`, or an admin identity.
- `Forget` needs an admin identity (in open mode too, once admins are configured).
- A namespace with no policy (and no default) is denied, not NOT_FOUND, so unknown callers
  cannot probe which namespaces exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.domain.errors import NamespaceNotFound
from sidecar.domain.policy import PolicySet

ADMIN_OPERATIONS = frozenset({"forget"})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: every identity the transport established (mTLS names, token identity)."""

    identities: tuple[str, ...] = ()

    def __str__(self) -> str:
        return ",".join(self.identities) or "anonymous"


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a call was denied: for the audit log only, never for the caller."""

    reason: str


@dataclass(frozen=True, slots=True)
class AccessRules:
    admins: frozenset[str] = frozenset()
    identities_configured: bool = False  # tokens or a client CA are configured

    def enforcing(self, policies: PolicySet) -> bool:
        if self.admins or self.identities_configured:
            return True
        every = [*policies.namespaces.values(), *([policies.default] if policies.default else [])]
        return any(policy.allowed_identities for policy in every)

    def decide(self, caller: Caller, operation: str, namespace: str, policies: PolicySet) -> Denial | None:
        """None when allowed, else the reason for the audit log."""
        is_admin = any(identity in self.admins for identity in caller.identities)
        if operation in ADMIN_OPERATIONS and self.admins and not is_admin:
            return Denial(f"{operation} needs an admin identity")
        if not self.enforcing(policies) or is_admin:
            return None
        if not caller.identities:
            return Denial("no identity (no client certificate or bearer token)")
        if operation in ADMIN_OPERATIONS:
            return Denial(f"{operation} needs an admin identity")
        try:
            policy = policies.lookup(namespace)
        except NamespaceNotFound:
            return Denial("no policy for the namespace")
        if any(identity in policy.allowed_identities for identity in caller.identities):
            return None
        return Denial("identity not in the namespace's allowed_identities")
