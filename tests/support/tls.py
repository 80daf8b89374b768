"""Throwaway certificates (trustme) for the TLS tests, a mosquitto TLS listener, AMI over TLS."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

from tests.support.sandbox import AsteriskSandbox, Mosquitto, wait_port

AMI_TLS_PORT = 15039  # beside the sandbox's plain 15038, as 5039 is beside 5038


@dataclass(frozen=True)
class Pki:
    """A CA, a server certificate for 127.0.0.1 / localhost and a client certificate, as PEM files."""

    ca: Path
    server_certificate: Path  # with its chain
    server_key: Path
    server_bundle: Path  # certificate and key in one file, as Asterisk's tlscertfile takes them
    client_certificate: Path
    client_key: Path
    client_key_encrypted: Path  # the same key under CLIENT_KEY_PASSPHRASE
    authority: trustme.CA

    def trusting_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (for the tests' own subscribers)."""
        return ssl.create_default_context(cafile=str(self.ca))


CLIENT_KEY_PASSPHRASE = "correct horse"


def make_pki(folder: Path, name: str = "ca") -> Pki:
    """Make a fresh CA and its certificates under `folder` (each call: a CA nobody else trusts)."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name=f"cti-bridge tests {name}")
    server = authority.issue_cert("127.0.0.1", "localhost")
    client = authority.issue_cert("cti-bridge@tests", common_name="cti-bridge")
    files = {
        "ca": folder / f"{name}.pem",
        "server_certificate": folder / f"{name}-server.pem",
        "server_key": folder / f"{name}-server.key",
        "server_bundle": folder / f"{name}-server-bundle.pem",
        "client_certificate": folder / f"{name}-client.pem",
        "client_key": folder / f"{name}-client.key",
        "client_key_encrypted": folder / f"{name}-client-encrypted.key",
    }
    authority.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_and_cert_chain_pem.write_to_path(str(files["server_bundle"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    files["server_certificate"].write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    files["client_certificate"].write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    files["client_key_encrypted"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(CLIENT_KEY_PASSPHRASE.encode()),
        )
    )
    return Pki(**files, authority=authority)


def tls_mosquitto(pki: Pki, *, require_certificate: bool = False) -> Mosquitto:
    """A private mosquitto whose only listener speaks TLS with the PKI's server certificate."""
    options = f"cafile {pki.ca}\ncertfile {pki.server_certificate}\nkeyfile {pki.server_key}\n"
    # Started as root, Debian's mosquitto loads the certificates after dropping to its own user,
    # who cannot read pytest's private tmp folders; the broker is the test's own, on loopback.
    options += "user root\n"
    if require_certificate:
        options += "require_certificate true\n"
    return Mosquitto(extra_config=options)


@contextlib.asynccontextmanager
async def ami_over_tls(asterisk: AsteriskSandbox, pki: Pki) -> AsyncIterator[int]:
    """The running sandbox PBX with AMI over TLS on 127.0.0.1:AMI_TLS_PORT as well; yields the port.

    The chroot's manager.conf gets the TLS lines and AMI is reloaded; on the way out the
    sandbox's own manager.conf is put back and reloaded, so later tests see the PBX as it was.
    """
    conf = asterisk.root / "etc" / "asterisk" / "manager.conf"
    keys = asterisk.root / "etc" / "asterisk" / "keys"
    original = conf.read_text()
    keys.mkdir(exist_ok=True)
    (keys / "cti-tests-ami.pem").write_bytes(pki.server_bundle.read_bytes())
    tls_lines = (
        "tlsenable = yes\n"
        f"tlsbindaddr = 127.0.0.1:{AMI_TLS_PORT}\n"
        "tlscertfile = /etc/asterisk/keys/cti-tests-ami.pem\n"
    )
    conf.write_text(original.replace("[general]\n", "[general]\n" + tls_lines, 1))
    try:
        await asterisk.cli("manager reload")
        if not await wait_port("127.0.0.1", AMI_TLS_PORT, 10):
            raise AssertionError(f"AMI over TLS did not come up on {AMI_TLS_PORT}; see {asterisk.log_path}")
        yield AMI_TLS_PORT
    finally:
        conf.write_text(original)
        (keys / "cti-tests-ami.pem").unlink(missing_ok=True)
        await asterisk.cli("manager reload")
