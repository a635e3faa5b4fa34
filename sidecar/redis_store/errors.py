"""Redis errors to domain StoreErrors, in one table."""

from __future__ import annotations

import asyncio
import logging

from redis import exceptions as redis_errors

from sidecar.domain.errors import StoreError, StoreTimeout

log = logging.getLogger("dedup.store")

# Prefix of a Redis error reply -> bounded `kind` label.
_REPLY_KINDS = {
    "OOM": "oom",
    "READONLY": "readonly",
    "NOREPLICAS": "noreplicas",
    "MASTERDOWN": "masterdown",
    "LOADING": "loading",
    "BUSY": "busy",
    "NOPERM": "noperm",
    "NOAUTH": "auth",
    "WRONGPASS": "auth",
    "CLUSTERDOWN": "clusterdown",
    "TRYAGAIN": "tryagain",
}


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
        text = str(err)
        # Script errors wrap the reply: "Error ... OOM command not allowed ..." on some servers.
        for prefix, kind in _REPLY_KINDS.items():
            if text.startswith(prefix) or f" {prefix} " in f" {text} ":
                return StoreError(kind, text)
        return StoreError("response", text)
    if isinstance(err, redis_errors.RedisError):
        return StoreError("response", str(err))
    if isinstance(err, Exception):
        # The client library failed in a way it does not name (seen: AttributeError on a
        # connection torn down mid-call). The outcome is unknown, so it is a store failure
        # (UNAVAILABLE), never an UNKNOWN status and never a guessed decision.
        log.error("unexpected error from the Redis client", exc_info=err)
        return StoreError("client", f"{type(err).__name__}: {err}")
    raise err
