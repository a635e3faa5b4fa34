import pytest
from redis import exceptions as redis_errors

from sidecar.domain.errors import StoreTimeout
from sidecar.redis_store.errors import to_store_error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis_errors.ConnectionError("reset"), "connection"),
        (ConnectionResetError(), "connection"),
        (redis_errors.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), "oom"),
        (redis_errors.ResponseError("READONLY You can't write against a read only replica."), "readonly"),
        (redis_errors.ResponseError("NOREPLICAS Not enough good replicas to write."), "noreplicas"),
        (redis_errors.ResponseError("LOADING Redis is loading the dataset in memory"), "loading"),
        (redis_errors.ResponseError("ERR something else"), "response"),
        (AttributeError("'NoneType' object has no attribute 'write'"), "client"),
    ],
)
def test_every_client_failure_is_a_store_error(error: Exception, kind: str) -> None:
    assert to_store_error(error).kind == kind


def test_timeouts_are_store_timeouts() -> None:
    assert isinstance(to_store_error(redis_errors.TimeoutError("slow")), StoreTimeout)
    assert isinstance(to_store_error(TimeoutError()), StoreTimeout)


def test_cancellation_is_not_swallowed() -> None:
    import asyncio

    with pytest.raises(asyncio.CancelledError):
        to_store_error(asyncio.CancelledError())
