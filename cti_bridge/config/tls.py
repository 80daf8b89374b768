"""TLS client contexts for the AMI and MQTT edges, built from the config's `tls` sections."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from cti_bridge.config.model import Config, SecretRef, TlsClientConfig

KeyPath = tuple[str | int, ...]


class TlsSetupError(ValueError):
    """A file named in a `tls` section cannot be used; `key` is the setting at fault."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


def client_context(tls: TlsClientConfig, key_password: SecretStr | None = None) -> ssl.SSLContext:
    """A context that checks the server against `tls.ca` (else the system's trust store) and
    presents the bridge's own certificate, if one is given.

    Reads files: call it off the event loop (`asyncio.to_thread`). Built anew for each
    connection, so certificates renewed on disk are used from the next reconnect on.

    Args:
        tls: the `pbxs[].tls` or `mqtt.tls` section.
        key_password: the passphrase of an encrypted client key.

    Returns:
        A client context; hostname checking as `tls.verify_hostname` says.

    Raises:
        TlsSetupError: a file is missing, unreadable or not what it should be, the key does not
            belong to the certificate, or its passphrase is wrong.
    """
    if tls.ca is not None:
        _readable("ca", tls.ca)
        try:
            context = ssl.create_default_context(cafile=str(tls.ca))
        except ssl.SSLError as exc:
            raise TlsSetupError("ca", f"{tls.ca} holds no PEM certificate ({_reason(exc)})") from None
    else:
        context = ssl.create_default_context()
    # The certificate is still checked against the CA without it: only the name is not.
    context.check_hostname = tls.verify_hostname
    if tls.certificate is not None:
        _load_client_certificate(context, tls, key_password)
    return context


def context_for(tls: TlsClientConfig, reveal: Callable[[SecretRef], SecretStr]) -> ssl.SSLContext:
    """`client_context` with the key's passphrase read now (a rotated one is used from the next
    connection on). Reads files: call it off the event loop.

    Args:
        tls: the `pbxs[].tls` or `mqtt.tls` section.
        reveal: reads a secret reference (`cti_bridge.config.reveal`).

    Raises:
        TlsSetupError: as `client_context`, or the passphrase cannot be read.
    """
    password = None
    if tls.key_password is not None:
        try:
            password = reveal(tls.key_password)
        except LookupError as exc:
            raise TlsSetupError("key_password", str(exc)) from None
    return client_context(tls, password)


def tls_problems(config: Config, reveal: Callable[[SecretRef], SecretStr]) -> list[tuple[KeyPath, str]]:
    """What check-config says about the `tls` sections: each file loaded as the daemon would.

    Args:
        config: the validated config.
        reveal: reads a secret reference (the key's passphrase).

    Returns:
        (key path, problem) for each section that could not be set up.
    """
    sections: list[tuple[KeyPath, TlsClientConfig]] = [
        (("pbxs", index, "tls"), pbx.tls) for index, pbx in enumerate(config.pbxs) if pbx.tls is not None
    ]
    if config.mqtt.tls is not None:
        sections.append((("mqtt", "tls"), config.mqtt.tls))
    problems: list[tuple[KeyPath, str]] = []
    for loc, tls in sections:
        try:
            context_for(tls, reveal)
        except TlsSetupError as exc:
            problems.append(((*loc, exc.key), str(exc)))
    return problems


def _load_client_certificate(
    context: ssl.SSLContext, tls: TlsClientConfig, key_password: SecretStr | None
) -> None:
    assert tls.certificate is not None
    _readable("certificate", tls.certificate)
    if tls.key is not None:
        _readable("key", tls.key)
    key_file = tls.key or tls.certificate

    # Always a callback: without one OpenSSL would ask for the passphrase on the terminal,
    # and a daemon would hang there.
    def passphrase() -> str:
        return key_password.get_secret_value() if key_password is not None else ""

    try:
        context.load_cert_chain(str(tls.certificate), str(tls.key) if tls.key else None, passphrase)
    except ssl.SSLError as exc:
        raise _diagnosed(exc, tls.certificate, key_file, key_password is not None) from None


def _diagnosed(exc: ssl.SSLError, certificate: Path, key_file: Path, has_password: bool) -> TlsSetupError:
    """Which setting is wrong: OpenSSL says little more than "PEM lib" for most of them."""
    if "KEY_VALUES_MISMATCH" in str(exc):
        return TlsSetupError(
            "key", f"the key in {key_file} does not belong to the certificate in {certificate}"
        )
    if b"-----BEGIN CERTIFICATE-----" not in _contents(certificate):
        return TlsSetupError("certificate", f"{certificate} holds no PEM certificate")
    key_text = _contents(key_file)
    if b"PRIVATE KEY-----" not in key_text:
        hint = ": name the key's file in `key`" if key_file == certificate else ""
        return TlsSetupError("key", f"{key_file} holds no PEM private key{hint}")
    if b"ENCRYPTED" in key_text:
        what = "is wrong" if has_password else "is needed: set key_password"
        return TlsSetupError("key_password", f"{key_file} is encrypted and the passphrase {what}")
    return TlsSetupError("key", f"{key_file}: the private key cannot be loaded ({_reason(exc)})")


def _readable(key: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise TlsSetupError(key, f"cannot read {path}: {exc.strerror}") from None


def _contents(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _reason(exc: ssl.SSLError) -> str:
    """OpenSSL's reason without the `[SSL: ...] ... (_ssl.c:NNN)` wrapping where there is one."""
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")
