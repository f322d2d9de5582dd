"""Throw-away TLS material for tests: a CA and a certificate it signed, made with the openssl command line."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    cert: Path  # signed by the CA, for localhost / 127.0.0.1
    key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path, name: str = "node", key_password: str | None = None) -> Pki:
    """A CA (made on the first call for ``directory``) and a ``name`` certificate it signed for localhost/127.0.0.1.

    The key is PKCS#8, encrypted when ``key_password`` is given.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "ca.crt").exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                 "-subj", "/CN=newsflow-test-ca", cwd=directory)
    key_args = ["-passout", f"pass:{key_password}"] if key_password else ["-nodes"]
    _openssl("req", "-newkey", "rsa:2048", *key_args, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", "/CN=localhost", cwd=directory)
    (directory / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "2", "-extfile", "ext.cnf", cwd=directory)
    return Pki(directory / "ca.crt", directory / "ca.key", directory / f"{name}.crt", directory / f"{name}.key")
