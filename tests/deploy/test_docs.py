"""docs/deploy.md quotes the sidecar block users paste; it must be the component's patch, verbatim."""

from __future__ import annotations

import re
import textwrap

from tests.deploy.manifests import DEPLOY, REPO


def test_pasted_block_is_the_component_patch() -> None:
    patch = (DEPLOY / "components" / "sidecar" / "sidecar.yaml").read_text()
    pod_spec = patch.split("    spec:\n", 1)[1]
    pod_spec = textwrap.dedent(pod_spec[: pod_spec.index("# END sidecar-patch")].rstrip("\n"))
    docs = (REPO / "docs" / "deploy.md").read_text()
    quoted = re.search(r"<!-- sidecar-block -->\n```yaml\n(.*?)\n```", docs, re.DOTALL)
    assert quoted is not None, "docs/deploy.md lost its <!-- sidecar-block --> marker"
    assert quoted.group(1) == pod_spec, "docs/deploy.md's sidecar block differs from components/sidecar/sidecar.yaml"
