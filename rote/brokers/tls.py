"""Throw-away TLS material for a local secured broker: a CA and a server certificate, made with openssl.

The secured Apache Kafka the tests start (SASL_SSL) needs a certificate its clients can verify. Nothing
here is for production: there, certificates come from the platform (docs/security.md). openssl is used
because it is on every Debian machine and Kafka reads its PEM output directly (`ssl.keystore.type=PEM`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rote.errors import BrokerError


@dataclass(frozen=True, kw_only=True)
class TlsMaterial:
    ca_cert: Path
    #: the server's private key (PKCS#8) followed by its certificate chain: a PEM keystore for Kafka
    server_keystore: Path
    server_cert: Path


def make_tls_material(folder: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsMaterial:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("making a test certificate needs openssl on PATH (Debian package openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "server.ext"
    alt = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    ext.write_text(f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n")

    def run(*argv: str) -> None:
        result = subprocess.run([openssl, *argv], capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise BrokerError(f"openssl {argv[0]} failed: {result.stderr.strip()[-500:]}")

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
        "-days",
        "2",
        "-subj",
        "/CN=rote test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={hosts[0]}",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    pkcs8 = folder / "server.pkcs8.key"
    run("pkcs8", "-topk8", "-nocrypt", "-in", str(key), "-out", str(pkcs8))
    keystore = folder / "server-keystore.pem"
    keystore.write_text(pkcs8.read_text() + cert.read_text() + ca_cert.read_text())
    for p in (ca_key, key, pkcs8, keystore):
        p.chmod(0o600)
    return TlsMaterial(ca_cert=ca_cert, server_keystore=keystore, server_cert=cert)
