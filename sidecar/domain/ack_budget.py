"""Replica-ack timeouts must fit inside the store timeout (fail fast, never clamp).

WAIT/WAITAOF's reply comes after up to `replica_ack_timeout`; the socket read
that waits for it gives up after `--store-timeout`. If the first is not clearly
below the second, an unmet requirement surfaces as a socket timeout
(DEADLINE_EXCEEDED, "no answer in time") instead of UNAVAILABLE with "0 of 1
required replicas confirmed": misleading, so such a policy is refused at
startup and on reload (the previous policies stay), naming the namespace.
"""

from __future__ import annotations

from sidecar.domain.policy import DEFAULT_POLICY_NAME, PolicySet

# Time the WAIT reply needs on top of its timeout: the script(s) before it, the network,
# a busy event loop. The ack timeout must be at least this much below the store timeout.
ACK_HEADROOM_MS = 100


def ack_timeout_problems(policies: PolicySet, store_timeout_ms: int) -> list[str]:
    """One line per namespace whose replica_ack_timeout does not fit below `store_timeout_ms`."""
    named = dict(policies.namespaces)
    if policies.default is not None:
        named[DEFAULT_POLICY_NAME] = policies.default
    limit = store_timeout_ms - ACK_HEADROOM_MS
    return [
        f"namespaces.{name}.replica_ack_timeout: {policy.replica_ack_timeout_ms}ms is not below "
        f"--store-timeout ({store_timeout_ms}ms) minus {ACK_HEADROOM_MS}ms; an unmet WAIT would surface "
        f"as a socket timeout: lower replica_ack_timeout to at most {limit}ms or raise --store-timeout"
        for name, policy in sorted(named.items())
        if policy.min_replica_acks and policy.replica_ack_timeout_ms > limit
    ]
