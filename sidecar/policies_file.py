"""The policies YAML file: loaded at startup (fail fast), then hot-reloaded by polling.

Polling the file's content (not inotify) also sees Kubernetes ConfigMap updates,
which swap a symlink rather than write the file. A bad new file keeps the old
policies and logs why, once per bad version.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import yaml

from sidecar.domain.errors import PolicyError
from sidecar.domain.policy import BUILT_IN_POLICIES, PolicySet, parse_policies

log = logging.getLogger("dedup.policies")


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise PolicyError([f"{path}: cannot read ({err.strerror or err})"]) from err


def parse_policy_bytes(path: Path, content: bytes) -> PolicySet:
    """The PolicySet in a file's content; raises PolicyError listing every problem."""
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as err:
        raise PolicyError([f"{path}: not valid YAML ({err})"]) from err
    return parse_policies(document)


class PolicyFile:
    """The current PolicySet: the file's, or the built-in default when no file is configured."""

    def __init__(self, path: str, validate: Callable[[PolicySet], list[str]] | None = None) -> None:
        """`validate` finds problems that depend on settings (e.g. timeouts vs --store-timeout)."""
        self.path = Path(path) if path else None
        self._validate = validate
        self._policies = BUILT_IN_POLICIES
        self._seen = b""
        if self.path is not None:
            content = _read_bytes(self.path)
            self._policies = self._parse(self.path, content)
            self._seen = hashlib.sha256(content).digest()

    def _parse(self, path: Path, content: bytes) -> PolicySet:
        policies = parse_policy_bytes(path, content)
        problems = self._validate(policies) if self._validate else []
        if problems:
            raise PolicyError(problems)
        return policies

    def current(self) -> PolicySet:
        return self._policies

    def reload(self) -> bool:
        """Re-reads the file; True when new policies took effect."""
        if self.path is None:
            return False
        try:
            content = _read_bytes(self.path)
        except PolicyError as err:
            log.error("policies reload failed; keeping the previous policies: %s", "; ".join(err.problems))
            return False
        digest = hashlib.sha256(content).digest()
        if digest == self._seen:
            return False
        self._seen = digest
        try:
            self._policies = self._parse(self.path, content)
        except PolicyError as err:
            log.error("policies reload failed; keeping the previous policies: %s", "; ".join(err.problems))
            return False
        log.info("policies reloaded from %s: %s", self.path, ", ".join(sorted(self._policies.namespaces)) or "-")
        return True

    async def watch(self, interval_s: float) -> None:
        """Reloads on change until cancelled."""
        while self.path is not None:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.reload)
