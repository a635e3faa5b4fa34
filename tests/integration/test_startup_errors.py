"""Startup errors (unreadable or wrong files, bad URLs) exit with one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.certs import CA


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("startup")
    ca = CA("startup CA")
    cert, key = ca.issue("sidecar", server=True).write(where, "server")
    _, other_key = ca.issue("other", server=True).write(where, "other")
    (where / "garbage.pem").write_text("not a certificate\n")
    (where / "ca.pem").write_bytes(ca.pem)
    (where / "a-file").write_text("x")
    return {
        "cert": str(cert),
        "key": str(key),
        "other_key": str(other_key),
        "garbage": str(where / "garbage.pem"),
        "ca": str(where / "ca.pem"),
        "file": str(where / "a-file"),
        "missing": str(where / "missing.pem"),
    }


CASES = {
    "missing certificate": (["--tls-cert", "{missing}", "--tls-key", "{key}"], "no such file"),
    "certificate not PEM": (["--tls-cert", "{garbage}", "--tls-key", "{key}"], "not a PEM certificate"),
    "key of another certificate": (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "matching private key"),
    "missing client CA": (["--tls-cert", "{cert}", "--tls-key", "{key}", "--tls-client-ca", "{missing}"], "no such"),
    "client CA not PEM": (["--tls-cert", "{cert}", "--tls-key", "{key}", "--tls-client-ca", "{garbage}"], "CA bundle"),
    "token directory missing": (["--auth-tokens-dir", "{missing}"], "no such directory"),
    "token directory is a file": (["--auth-tokens-dir", "{file}"], "not a directory"),
    "unknown URL scheme": (["--redis-url", "foo://x"], "bad --redis-url"),
    "URL port not a number": (["--redis-url", "redis://h:port/0"], "bad --redis-url"),
    "policies missing": (["--policies", "{missing}"], "cannot load policies"),
    "key prefix with braces": (["--key-prefix", "{{app}}:"], "key-prefix"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_clear_line_and_no_traceback(case: str, files: dict[str, str]) -> None:
    args, expected = CASES[case]
    run = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--listen", "127.0.0.1:0", *(a.format(**files) for a in args)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if '"level": "error"' in line or line.startswith("error:")]
    assert len(errors) == 1, output
    assert expected in errors[0], output
