"""Redis errors to domain StoreErrors, in one table.

An outage (unreachable, OOM, READONLY, a timeout, ...) is a StoreError: the namespace's
`on_store_error` decides. Anything else Redis answers with an error (WRONGTYPE, NOPERM, a
script error, an error we do not know) is a permanent StoreFault: INTERNAL, never degraded.
"""

from __future__ import annotations

import asyncio
import logging

from redis import exceptions as redis_errors

from sidecar.domain.errors import StoreError, StoreFault, StorePermissionError, StoreTimeout

log = logging.getLogger("dedup.store")

# Prefix of a Redis error reply that means an outage -> bounded `kind` label.
_REPLY_KINDS = {
    "OOM": "oom",
    "READONLY": "readonly",
    "NOREPLICAS": "noreplicas",
    "MASTERDOWN": "masterdown",
    "LOADING": "loading",
    "BUSY": "busy",
    "NOAUTH": "auth",
    "WRONGPASS": "auth",
    "CLUSTERDOWN": "clusterdown",
    "TRYAGAIN": "tryagain",
    "MISCONF": "misconf",
    "ERR max number of clients": "maxclients",
}
# Script errors as Redis 6.2 and 7.x word them (the failing command's own error comes first on 7.x).
_SCRIPT_MARKS = ("user_script", "Error running script", "Error compiling script")


def to_store_error(err: BaseException) -> StoreError:
    """The domain error for anything a Redis call raised."""
    if isinstance(err, StoreError):
        return err
    if isinstance(err, (redis_errors.TimeoutError, asyncio.TimeoutError, TimeoutError)):
        return StoreTimeout(str(err) or "no answer in time")
    if isinstance(err, redis_errors.AuthenticationError):
        return StoreError("auth", str(err))
    if isinstance(err, (redis_errors.ConnectionError, OSError)):
        return StoreError("connection", str(err) or type(err).__name__)
    if isinstance(err, redis_errors.ResponseError):
        # redis-py strips the error code it recognises (OOM, READONLY, NOPERM, ...) into status_code.
        code = getattr(err, "status_code", None)
        text = f"{code} {err}" if code else str(err)
        # Script errors wrap the reply: "Error ... OOM command not allowed ..." on some servers.
        for prefix, kind in _REPLY_KINDS.items():
            if text.startswith(prefix) or f" {prefix} " in f" {text} ":
                return StoreError(kind, text)
        return _fault(text)
    if isinstance(err, redis_errors.RedisError):
        return StoreError("response", str(err))
    if isinstance(err, Exception):
        # The client library failed in a way it does not name (seen: AttributeError on a
        # connection torn down mid-call). The outcome is unknown, so it is a store failure
        # (UNAVAILABLE), never an UNKNOWN status and never a guessed decision.
        log.error("unexpected error from the Redis client", exc_info=err)
        return StoreError("client", f"{type(err).__name__}: {err}")
    raise err


def _fault(text: str) -> StoreFault:
    """A permanent error reply: retrying or answering degraded cannot help."""
    if text.startswith("NOPERM") or " NOPERM " in f" {text} ":
        return StorePermissionError(text)
    if text.startswith("WRONGTYPE") or " WRONGTYPE " in f" {text} ":
        return StoreFault("wrongtype", text)
    if any(mark in text for mark in _SCRIPT_MARKS):
        return StoreFault("script", text)
    return StoreFault("reply", text)
