"""Runs a rendered container spec on this machine as the kubelet would, minus the container runtime.

The image's root is the directory `dockerfile.build_image_root` made; volumes are
temporary directories laid out as the kubelet's atomic writer does (`..data` -> a
timestamped directory, files symlinked through it): ConfigMaps, and Secrets with their
`defaultMode`, `items` and `optional`, root-owned with the pod's `fsGroup` as group (plus
group read, as the kubelet's ownership step adds); `emptyDir`s can be shared between the
pod's containers. Env: Secrets are resolved from a given mapping, the downward API's pod
name and namespace filled in, `$(VAR)` expanded, and container paths rebased onto the
volumes. Container ports are mapped to free loopback ports (no network namespace here);
the process runs as the securityContext's uid/gid with the pod's `fsGroup` and
`supplementalGroups` as supplementary groups and no_new_privs, via util-linux `setpriv`
when the test runs as root.
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
POD_NAME = "example-consumer-5d9c7b8f4-x2x7q"
POD_NAMESPACE = "dedup-example"


def write_configmap_volume(
    directory: Path, data: Mapping[str, str | bytes], generation: int = 1, mode: int = 0o644, group: int | None = None
) -> None:
    """Lays `data` out like the kubelet: files -> ..data/<file>, ..data -> ..<generation>; swaps atomically.

    Files get `mode`, owned by root and by `group` (the pod's fsGroup) when given, as the kubelet's
    volume ownership step leaves them (it adds group read, 0440, to read-only volumes' files)."""
    version = directory / f"..2025_01_01_00_00_0{generation}.000000000"
    version.mkdir()
    for name, content in data.items():
        path = version / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if os.geteuid() == 0:
            os.chown(path, 0, 0 if group is None else group)
        os.chmod(path, mode | (0o440 if group is not None else 0))
    os.chmod(version, 0o755)
    staged = directory / "..data_tmp"
    staged.symlink_to(version.name)
    staged.rename(directory / "..data")
    for name in data:
        top = name.split("/", 1)[0]
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")


def _projected(volume: Mapping[str, Any], data: Mapping[str, str | bytes]) -> dict[str, str | bytes]:
    """The files a Secret/ConfigMap volume shows: all keys, or only `items` (key -> path)."""
    items = volume.get("items")
    if not items:
        return dict(data)
    files: dict[str, str | bytes] = {}
    for item in items:
        if item["key"] in data:
            files[item["path"]] = data[item["key"]]
        else:
            assert volume.get("optional"), f"key {item['key']} missing and the volume is not optional"
    return files


class Pod:
    """One container of a rendered pod spec, run as a local process."""

    def __init__(
        self,
        image_root: Path,
        spec: dict[str, Any],
        container: dict[str, Any],
        shared: Mapping[str, Path] | None = None,
    ) -> None:
        """`shared`: volume name -> directory of volumes another container of the pod already mounted."""
        self.image_root = image_root
        self.spec = spec
        self.container = container
        self.mounts: dict[str, Path] = {}
        self.volumes: dict[str, Path] = dict(shared or {})
        self.ports: dict[int, int] = {}
        self._temp = Path(tempfile.mkdtemp(prefix="dedup-pod-"))
        os.chmod(self._temp, 0o755)

    def fs_group(self) -> int | None:
        group = (self.spec.get("securityContext") or {}).get("fsGroup")
        return None if group is None else int(group)

    def mount_volumes(
        self,
        configmaps: Mapping[str, Mapping[str, str]],
        secrets: Mapping[str, Mapping[str, str | bytes]] | None = None,
    ) -> None:
        """Lays out every volume the container mounts, as the kubelet would (Secrets: `defaultMode`,
        `items`, `optional`, and the pod's fsGroup as the files' group)."""
        uid, gid = self.user()
        volumes = {volume["name"]: volume for volume in self.spec.get("volumes") or []}
        for mount in self.container.get("volumeMounts") or []:
            if mount["name"] in self.volumes:
                self.mounts[mount["mountPath"]] = self.volumes[mount["name"]]
                continue
            volume = volumes[mount["name"]]
            directory = self._temp / mount["name"]
            directory.mkdir(exist_ok=True)
            if "configMap" in volume:
                write_configmap_volume(directory, configmaps[volume["configMap"]["name"]])
                os.chmod(directory, 0o555)
            elif "secret" in volume:
                source = volume["secret"]
                found = (secrets or {}).get(source["secretName"])
                assert found is not None or source.get("optional"), f"Secret {source['secretName']} missing"
                files = _projected(source, found or {})
                write_configmap_volume(directory, files, mode=source.get("defaultMode", 0o644), group=self.fs_group())
                os.chmod(directory, 0o555)
            elif "emptyDir" in volume:
                if os.geteuid() == 0:
                    os.chown(directory, uid, gid)
                os.chmod(directory, 0o700)
            else:
                raise NotImplementedError(f"volume type of {mount['name']}")
            self.volumes[mount["name"]] = directory
            self.mounts[mount["mountPath"]] = directory

    def map_port(self, container_port: int, local_port: int) -> None:
        self.ports[container_port] = local_port

    def _rebase(self, value: str) -> str:
        """Container paths (anywhere in the value: `unix://...`, a URL's query) -> the mounted directories."""
        if self.mounts:  # one pass, longest path first: a replaced path is never replaced again
            paths = "|".join(re.escape(path) for path in sorted(self.mounts, key=len, reverse=True))
            value = re.sub(rf"(?<![\w.-])({paths})(?=/|$|&)", lambda m: str(self.mounts[m.group(1)]), value)
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
            elif "secretKeyRef" in item["valueFrom"]:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self._rebase(secrets[(ref["name"], ref["key"])])
            else:  # the downward API: this stand-in pod's name and namespace
                field = item["valueFrom"]["fieldRef"]["fieldPath"]
                env[item["name"]] = {"metadata.name": POD_NAME, "metadata.namespace": POD_NAMESPACE}[field]
            # The kubelet expands $(VAR) from the variables defined before this one.
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), env[item["name"]])
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
            # The kubelet's supplementary groups: the pod's fsGroup and supplementalGroups.
            pod = self.spec.get("securityContext") or {}
            groups = [*([pod["fsGroup"]] if "fsGroup" in pod else []), *(pod.get("supplementalGroups") or [])]
            group_flag = f"--groups={','.join(str(g) for g in groups)}" if groups else "--clear-groups"
            argv = [setpriv, f"--reuid={uid}", f"--regid={gid}", group_flag, "--no-new-privs", *argv]
        return argv

    def start(self, secrets: Mapping[tuple[str, str], str], **popen: Any) -> subprocess.Popen[str]:
        env = self.environment(secrets)
        _, stages = parse()
        workdir = Path(mapped(stages[-1].all("WORKDIR")[-1], self.image_root))
        workdir = self.image_root if str(workdir) == "/" else workdir
        return subprocess.Popen(self.argv(env), env=env, cwd=workdir, stdin=subprocess.DEVNULL, text=True, **popen)

    def close(self) -> None:
        """Removes the volumes this container made (not the `shared` ones)."""
        for path in self._temp.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                os.chmod(path, 0o755)
        shutil.rmtree(self._temp, ignore_errors=True)
