"""Who may do what: identity in transport, decision in the domain. Used by transport/handlers.py only.

Every denial is one audit log line (logger `dedup.audit`) with the caller's identities, the
operation, the namespace and the reason; the caller gets PERMISSION_DENIED and nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sidecar.domain.authz import AccessRules, Caller
from sidecar.domain.errors import PermissionDenied
from sidecar.domain.policy import NAMESPACE_PATTERN
from sidecar.service import PolicySource
from sidecar.transport.identity import TokenDirectory, caller_of
from sidecar.transport.servicer import Context

audit = logging.getLogger("dedup.audit")
_OPEN = AccessRules()


def namespaces_of(request: Any) -> Iterable[str]:
    """The namespaces a request (single or batch) touches."""
    items = getattr(request, "items", None)
    if items is not None:
        return sorted({item.namespace for item in items})
    return [request.namespace]


class Authorizer:
    """Identifies callers and decides; `None` policies: open, nothing is checked (tests, tools)."""

    def __init__(
        self, policies: PolicySource | None, rules: AccessRules = _OPEN, tokens: TokenDirectory | None = None
    ) -> None:
        self._policies = policies
        self._rules = rules
        self._tokens = tokens

    def caller(self, context: Context) -> Caller:
        return caller_of(context, self._tokens) if self._policies is not None else Caller()

    def identities_version(self) -> int:
        """Changes when the identity sources were reloaded (a token added or revoked)."""
        return self._tokens.current_generation() if self._tokens is not None else 0

    def check(self, caller: Caller, operation: str, request: Any) -> None:
        """Raises PermissionDenied (after one audit line) unless `caller` may do `operation` on `request`."""
        if self._policies is None:
            return
        policies = self._policies.current()
        for namespace in namespaces_of(request):
            denial = self._rules.decide(caller, operation, namespace, policies)
            if denial is not None:
                audit.warning(
                    "permission denied",
                    extra={
                        "identity": str(caller),
                        "operation": operation,
                        "namespace": namespace if NAMESPACE_PATTERN.fullmatch(namespace) else "<invalid>",
                        "reason": denial.reason,
                    },
                )
                raise PermissionDenied()
