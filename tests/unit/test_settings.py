from pathlib import Path

import pytest

from sidecar.cli import build_parser
from sidecar.settings import Settings, SettingsError, load_settings, settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_without_env_or_flags() -> None:
    assert load_settings(None, {}) == Settings()


def test_flag_beats_env_beats_default() -> None:
    args = build_parser().parse_args(["serve", "--max-batch", "7"])
    settings = load_settings(args, {"DEDUP_MAX_BATCH": "9", "DEDUP_STORE_TIMEOUT": "250ms"})
    assert settings.max_batch == 7
    assert settings.store_timeout == 250
    assert load_settings(None, {"DEDUP_MAX_BATCH": "9"}).max_batch == 9


def test_bool_flag_and_env() -> None:
    assert load_settings(build_parser().parse_args(["serve", "--allow-unsafe-store"]), {}).allow_unsafe_store
    assert load_settings(None, {"DEDUP_ALLOW_UNSAFE_STORE": "yes"}).allow_unsafe_store
    assert not load_settings(None, {"DEDUP_ALLOW_UNSAFE_STORE": "0"}).allow_unsafe_store


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEDUP_MAX_BATCH": "many"}, "DEDUP_MAX_BATCH"),
        ({"DEDUP_STORE_TIMEOUT": "soon"}, "DEDUP_STORE_TIMEOUT"),
        ({"DEDUP_LISTEN": "", "DEDUP_UNIX_SOCKET": ""}, "nothing to serve on"),
        ({"DEDUP_LISTEN": "50051"}, "host:port"),
        ({"DEDUP_EMBEDDED_FSYNC": "never"}, "embedded-fsync"),
        ({"DEDUP_MAX_BATCH": "0"}, "max-batch"),
    ],
)
def test_bad_settings_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, env)


def test_readme_settings_table_is_generated_from_the_code() -> None:
    assert settings_table() in README.read_text(), "run `make settings-table` and paste it into README.md"


@pytest.mark.parametrize("prefix", ["{app}:", "app{", "app}:", "{"])
def test_key_prefix_with_braces_is_refused(prefix: str) -> None:
    """A hash tag in the prefix would put every record in one Cluster slot."""
    with pytest.raises(SettingsError, match="one slot"):
        Settings(key_prefix=prefix)


def test_key_prefix_without_braces_is_accepted() -> None:
    assert Settings(key_prefix="app:dedup:").key_prefix == "app:dedup:"


def test_allow_anonymous_is_a_boolean_from_the_environment() -> None:
    assert load_settings(environ={"DEDUP_ALLOW_ANONYMOUS": "false"}).allow_anonymous is False
    assert load_settings(environ={"DEDUP_ALLOW_ANONYMOUS": "true"}).allow_anonymous is True
