"""Permanent store faults (WRONGTYPE, NOPERM, script errors, unreadable replies): one log line per key.

A fault is not an outage, so it is neither retried nor answered degraded (INTERNAL, or
FAILED_PRECONDITION for NOPERM). It is logged once per (kind, key) at ERROR, with the record
key, which names the namespace and the id's digest, never the raw id; the metrics count
every occurrence (dedup_store_errors_total{kind}).
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from sidecar.domain.errors import StoreFault

log = logging.getLogger("dedup.store")

_REMEMBERED = 4096  # (kind, key) pairs already logged; the oldest is forgotten first
_logged: OrderedDict[tuple[str, str], None] = OrderedDict()

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

# What a reply that does not have the script's documented layout raises while it is decoded.
_UNREADABLE = (ValueError, TypeError, IndexError, KeyError, AttributeError)


def _keys_of(argument: object) -> list[str]:
    if isinstance(argument, str):
        return [argument]
    if isinstance(argument, Sequence):
        return [key for item in argument for key in _keys_of(getattr(item, "key", None))]
    key = getattr(argument, "key", None)
    return [key] if isinstance(key, str) else []


def report(fault: StoreFault, keys: Sequence[str]) -> None:
    """Logs `fault` unless the same kind was already logged for the same first key."""
    first = keys[0] if keys else ""
    seen = (fault.kind, first)
    if seen in _logged:
        _logged.move_to_end(seen)
        return
    _logged[seen] = None
    if len(_logged) > _REMEMBERED:
        _logged.popitem(last=False)
    log.error(
        "store fault: not an outage, answered without a decision (logged once per key)",
        extra={"kind": fault.kind, "key": first, "keys": len(keys), "error": str(fault)},
    )


def reads_replies(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """A store method whose faults are reported, and whose unreadable replies are faults too."""

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except StoreFault as fault:
            report(fault, _keys_of(args[0] if args else None))
            raise
        except _UNREADABLE as err:
            unreadable = StoreFault("reply", f"unexpected reply to {method.__name__}: {type(err).__name__}: {err}")
            report(unreadable, _keys_of(args[0] if args else None))
            raise unreadable from err

    return wrapper


__all__ = ["reads_replies", "report"]
