import pytest

from sidecar.settings import Settings, SettingsError, load_settings


def test_health_listen_is_off_by_default() -> None:
    assert Settings().health_listen == ""


def test_health_listen_from_environment() -> None:
    assert load_settings(environ={"DEDUP_HEALTH_LISTEN": "0.0.0.0:50052"}).health_listen == "0.0.0.0:50052"


def test_health_listen_must_be_host_port() -> None:
    with pytest.raises(SettingsError, match="--health-listen must be host:port"):
        Settings(health_listen="50052")
