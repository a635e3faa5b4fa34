"""Wiring of the security pieces from settings: the authorizer every call passes (transport/handlers.py)."""

from __future__ import annotations

import logging

from sidecar.domain.authz import AccessRules
from sidecar.service import DedupService, PolicySource
from sidecar.settings import Settings
from sidecar.transport.authorizer import Authorizer
from sidecar.transport.identity import TokenDirectory
from sidecar.transport.servicer import DedupServicer

log = logging.getLogger("dedup.security")


def access_rules(settings: Settings) -> AccessRules:
    admins = frozenset(name.strip() for name in settings.admin_identities.split(",") if name.strip())
    return AccessRules(admins=admins, identities_configured=bool(settings.auth_tokens_dir or settings.tls_client_ca))


def build_servicer(settings: Settings, service: DedupService) -> DedupServicer:
    return DedupServicer(service, settings.default_deadline / 1000)


def build_authorizer(settings: Settings, policies: PolicySource) -> Authorizer:
    """Always in place: it allows everything in open mode (domain/authz.py)."""
    if settings.allow_anonymous and settings.tls_cert and not (settings.tls_client_ca or settings.auth_tokens_dir):
        log.warning(
            "ANONYMOUS ACCESS: --allow-anonymous is set and no client identity source is configured: "
            "every caller that reaches %s may use every namespace",
            settings.listen,
        )
    tokens = TokenDirectory(settings.auth_tokens_dir) if settings.auth_tokens_dir else None
    return Authorizer(policies, access_rules(settings), tokens)
