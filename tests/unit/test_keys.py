from hypothesis import given
from hypothesis import strategies as st

from sidecar.domain.keys import id_digest, record_key


def test_key_shape() -> None:
    key = record_key("dedup:", "payments.charge", b"msg-1")
    assert key == f"dedup:payments.charge:{{{id_digest(b'msg-1')}}}"
    assert len(id_digest(b"x" * 512)) == 22


def test_namespace_and_id_cannot_be_confused() -> None:
    assert record_key("p:", "a", b"b:c") != record_key("p:", "a:b", b"c")
    assert record_key("p:", "a", b"bc") != record_key("p:", "ab", b"c")


@given(st.binary(min_size=1, max_size=512), st.binary(min_size=1, max_size=512))
def test_different_ids_get_different_keys(a: bytes, b: bytes) -> None:
    if a != b:
        assert record_key("p:", "ns", a) != record_key("p:", "ns", b)
    else:
        assert record_key("p:", "ns", a) == record_key("p:", "ns", b)
