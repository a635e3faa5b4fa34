import grpc
import pytest
from redis import exceptions as redis_errors

from sidecar.domain.errors import StoreFault, StorePermissionError, StoreTimeout
from sidecar.redis_store.errors import to_store_error
from sidecar.transport.status import status_code_of


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis_errors.ConnectionError("reset"), "connection"),
        (ConnectionResetError(), "connection"),
        (redis_errors.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), "oom"),
        (redis_errors.ResponseError("READONLY You can't write against a read only replica."), "readonly"),
        (redis_errors.ResponseError("NOREPLICAS Not enough good replicas to write."), "noreplicas"),
        (redis_errors.ResponseError("LOADING Redis is loading the dataset in memory"), "loading"),
        # redis-py strips the codes it knows into status_code:
        (redis_errors.OutOfMemoryError("command not allowed", status_code="OOM"), "oom"),
        (
            redis_errors.ReadOnlyError("You can't write against a read only replica.", status_code="READONLY"),
            "readonly",
        ),
        (redis_errors.ConnectionError("max number of clients reached"), "connection"),
        (redis_errors.ResponseError("MISCONF Errors writing to the AOF file"), "misconf"),
        (AttributeError("'NoneType' object has no attribute 'write'"), "client"),
    ],
)
def test_every_client_failure_is_a_store_error(error: Exception, kind: str) -> None:
    assert to_store_error(error).kind == kind


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), "wrongtype"),
        (
            redis_errors.ResponseError(
                "Error running script (call to f_1): @user_script:9: WRONGTYPE Operation against a key"
            ),
            "wrongtype",
        ),
        (redis_errors.ResponseError("user_script:3: attempt to compare nil with number script: 1b2c"), "script"),
        (redis_errors.ResponseError("ERR something else"), "reply"),
        (redis_errors.NoPermissionError("User u has no permissions to run 'evalsha'", status_code="NOPERM"), "noperm"),
    ],
)
def test_permanent_errors_are_faults_never_outages(error: Exception, kind: str) -> None:
    fault = to_store_error(error)
    assert isinstance(fault, StoreFault)
    assert fault.kind == kind
    assert not fault.degradable
    expected = grpc.StatusCode.FAILED_PRECONDITION if kind == "noperm" else grpc.StatusCode.INTERNAL
    assert status_code_of(fault) == expected
    assert isinstance(fault, StorePermissionError) == (kind == "noperm")


def test_outages_stay_unavailable_and_degradable() -> None:
    outage = to_store_error(redis_errors.ResponseError("OOM command not allowed"))
    assert outage.degradable
    assert status_code_of(outage) == grpc.StatusCode.UNAVAILABLE


def test_timeouts_are_store_timeouts() -> None:
    assert isinstance(to_store_error(redis_errors.TimeoutError("slow")), StoreTimeout)
    assert isinstance(to_store_error(TimeoutError()), StoreTimeout)


def test_cancellation_is_not_swallowed() -> None:
    import asyncio

    with pytest.raises(asyncio.CancelledError):
        to_store_error(asyncio.CancelledError())
