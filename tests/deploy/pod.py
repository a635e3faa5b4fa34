"""Runs a rendered container spec on this machine as the kubelet would, minus the container runtime.

The image's root is the directory `dockerfile.build_image_root` made; volumes are
temporary directories (a ConfigMap laid out as the kubelet's atomic writer does:
`..data` -> a timestamped directory, files symlinked through it); Secrets are
resolved from a given mapping; container ports are mapped to free loopback ports
(no network namespace here); the process runs as the securityContext's uid/gid
with no_new_privs via util-linux `setpriv` when the test runs as root.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.deploy.dockerfile import env_pairs, exec_form, mapped, parse

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


def write_configmap_volume(directory: Path, data: Mapping[str, str], generation: int = 1) -> None:
    """Lays `data` out like the kubelet: files -> ..data/<file>, ..data -> ..<generation>; swaps atomically."""
    version = directory / f"..2025_01_01_00_00_0{generation}.000000000"
    version.mkdir()
    for name, content in data.items():
        (version / name).write_text(content)
    os.chmod(version, 0o755)
    staged = directory / "..data_tmp"
    staged.symlink_to(version.name)
    staged.rename(directory / "..data")
    for name in data:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(f"..data/{name}")


class Pod:
    """One container of a rendered pod spec, run as a local process."""

    def __init__(self, image_root: Path, spec: dict[str, Any], container: dict[str, Any]) -> None:
        self.image_root = image_root
        self.spec = spec
        self.container = container
        self.mounts: dict[str, Path] = {}
        self.ports: dict[int, int] = {}
        self._temp = Path(tempfile.mkdtemp(prefix="dedup-pod-"))
        os.chmod(self._temp, 0o755)

    def mount_volumes(self, configmaps: Mapping[str, Mapping[str, str]]) -> None:
        uid, gid = self.user()
        volumes = {volume["name"]: volume for volume in self.spec.get("volumes") or []}
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            directory = self._temp / mount["name"]
            directory.mkdir(exist_ok=True)
            if "configMap" in volume:
                write_configmap_volume(directory, configmaps[volume["configMap"]["name"]])
                os.chmod(directory, 0o555)
            elif "emptyDir" in volume:
                if os.geteuid() == 0:
                    os.chown(directory, uid, gid)
                os.chmod(directory, 0o700)
            else:
                raise NotImplementedError(f"volume type of {mount['name']}")
            self.mounts[mount["mountPath"]] = directory

    def map_port(self, container_port: int, local_port: int) -> None:
        self.ports[container_port] = local_port

    def _rebase(self, value: str) -> str:
        for mount_path, directory in sorted(self.mounts.items(), key=lambda item: -len(item[0])):
            if value == mount_path or value.startswith(mount_path + "/"):
                return str(directory) + value[len(mount_path) :]
        for container_port, local_port in self.ports.items():
            value = re.sub(rf":{container_port}$", f":{local_port}", value)
        return value

    def user(self) -> tuple[int, int]:
        context = {**(self.spec.get("securityContext") or {}), **(self.container.get("securityContext") or {})}
        return int(context["runAsUser"]), int(context.get("runAsGroup", context["runAsUser"]))

    def environment(self, secrets: Mapping[tuple[str, str], str]) -> dict[str, str]:
        """The image's ENV, then the container's env (secretKeyRef resolved from `secrets`)."""
        _, stages = parse()
        env = {"PATH": BASE_PATH}
        for args in stages[-1].all("ENV"):
            for key, value in env_pairs(args).items():
                env[key] = mapped(value.replace("$PATH", env.get("PATH", BASE_PATH)), self.image_root)
        for item in self.container.get("env") or []:
            if "value" in item:
                env[item["name"]] = self._rebase(item["value"])
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secrets[(ref["name"], ref["key"])]
        return env

    def argv(self, env: Mapping[str, str]) -> list[str]:
        _, stages = parse()
        runtime = stages[-1]
        command = self.container.get("command") or exec_form(runtime.all("ENTRYPOINT")[-1])
        args = self.container.get("args") if "args" in self.container else exec_form(runtime.all("CMD")[-1])
        executable = shutil.which(command[0], path=env["PATH"])
        assert executable, f"{command[0]} not on the image's PATH"
        argv = [executable, *command[1:], *args]
        if os.geteuid() == 0:
            uid, gid = self.user()
            setpriv = shutil.which("setpriv")
            assert setpriv, "util-linux setpriv is needed to drop root (apt-get install util-linux)"
            argv = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", *argv]
        return argv

    def start(self, secrets: Mapping[tuple[str, str], str], **popen: Any) -> subprocess.Popen[str]:
        env = self.environment(secrets)
        _, stages = parse()
        workdir = Path(mapped(stages[-1].all("WORKDIR")[-1], self.image_root))
        workdir = self.image_root if str(workdir) == "/" else workdir
        return subprocess.Popen(self.argv(env), env=env, cwd=workdir, stdin=subprocess.DEVNULL, text=True, **popen)

    def close(self) -> None:
        for path in self._temp.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
        shutil.rmtree(self._temp, ignore_errors=True)
