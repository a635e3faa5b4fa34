"""The Java client's own suite (`mvn -q verify` in clients/java: every contract
scenario over the stream transport and again over unary calls, EffectivelyOnce,
the stream transport, the sink recipes, trace propagation) and its example
consumer, against this harness."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml

from tests.contract.conftest import REPO, SCENARIOS

JAVA_DIR = REPO / "clients" / "java"


def mvn() -> str:
    path = shutil.which("mvn")
    assert path, "mvn is not on PATH (scripts/deps.d/40-java.sh installs Java 17 and Maven)"
    return path


@pytest.mark.timeout(600)  # a cold Maven cache downloads grpc-java; warm builds take under a minute
def test_mvn_verify_passes(contract_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [mvn(), "-B", "-q", "-Dstyle.color=never", "verify"],
        cwd=JAVA_DIR,
        env=contract_env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, f"mvn verify failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    ran: dict[str, int] = {}
    for report in (JAVA_DIR / "target" / "surefire-reports").glob("TEST-*.xml"):
        suite = ET.parse(report).getroot()
        assert suite.get("failures") == "0"
        assert suite.get("errors") == "0"
        assert suite.get("skipped") == "0"
        ran[str(suite.get("name"))] = int(suite.get("tests", "0"))
    scenarios = len(yaml.safe_load(SCENARIOS.read_text())["scenarios"])
    assert ran.get("dev.dedup.client.ContractTest") == 2 * scenarios, f"every scenario, both transports: {ran}"
    assert sum(ran.values()) >= 2 * scenarios + 20, f"surefire ran {ran}"


@pytest.mark.timeout(300)
def test_example_consumer_processes_each_unique_message_once(contract_env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", str(JAVA_DIR / "run-main.sh"), "dev.dedup.client.examples.ExampleConsumer"],
        env=contract_env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    m = re.search(r"unique=(\d+) processed=(\d+) duplicates_skipped=(\d+)", proc.stdout)
    assert m, proc.stdout
    unique, processed, skipped = map(int, m.groups())
    assert processed == unique
    assert skipped > 0
