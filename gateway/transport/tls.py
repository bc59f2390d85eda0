"""TLS settings shared by every server and client block (the Collector's `configtls`)."""

from __future__ import annotations

import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.config_types import Duration

_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
             "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _read(path: str, inline: str) -> bytes | None:
    if inline:
        return inline.encode()
    if path:
        return Path(path).read_bytes()
    return None


def _version_errors(min_version: str, max_version: str) -> list[str]:
    return [f"{name}: unsupported TLS version {v!r} (want 1.0 to 1.3)"
            for name, v in (("min_version", min_version), ("max_version", max_version))
            if v and v not in _VERSIONS]


def _load_pem_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """`load_cert_chain` reads files only: inline PEM goes through a private temporary directory that
    is removed at once."""
    with tempfile.TemporaryDirectory(prefix="gateway-tls-") as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        ctx.load_cert_chain(cert_path, key_path)


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str = ""
    key_file: str = ""
    cert_pem: str = ""
    key_pem: str = ""
    client_ca_file: str = ""
    ca_file: str = ""
    min_version: str = "1.2"
    max_version: str = ""
    reload_interval: Duration = 0.0
    include_system_ca_certs_pool: bool = False
    cipher_suites: tuple[str, ...] = ()

    def validate(self) -> list[str]:
        errors = _version_errors(self.min_version, self.max_version)
        if not (self.cert_file or self.cert_pem) or not (self.key_file or self.key_pem):
            errors.append("a server TLS block needs cert_file and key_file")
        return errors

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        cert = _read(self.cert_file, self.cert_pem)
        key = _read(self.key_file, self.key_pem)
        assert cert is not None and key is not None
        return cert, key, _read(self.client_ca_file, "")

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = _VERSIONS.get(self.min_version or "1.2", ssl.TLSVersion.TLSv1_2)
        if self.max_version:
            ctx.maximum_version = _VERSIONS[self.max_version]
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        else:
            cert, key, _ = self.read()
            _load_pem_chain(ctx, cert, key)
        if self.client_ca_file:
            ctx.load_verify_locations(self.client_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@dataclass(frozen=True)
class TLSClientConfig:
    insecure: bool = False
    insecure_skip_verify: bool = False
    ca_file: str = ""
    ca_pem: str = ""
    cert_file: str = ""
    key_file: str = ""
    cert_pem: str = ""
    key_pem: str = ""
    server_name_override: str = ""
    min_version: str = "1.2"
    max_version: str = ""
    include_system_ca_certs_pool: bool = False
    reload_interval: Duration = 0.0

    def validate(self) -> list[str]:
        errors = _version_errors(self.min_version, self.max_version)
        if bool(self.cert_file or self.cert_pem) != bool(self.key_file or self.key_pem):
            errors.append("cert_file and key_file must be set together")
        return errors

    def read(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        return (_read(self.ca_file, self.ca_pem), _read(self.cert_file, self.cert_pem),
                _read(self.key_file, self.key_pem))

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.minimum_version = _VERSIONS.get(self.min_version or "1.2", ssl.TLSVersion.TLSv1_2)
        if self.max_version:
            ctx.maximum_version = _VERSIONS[self.max_version]
        ca, _, _ = self.read()
        if ca is not None:
            ctx.load_verify_locations(cadata=ca.decode())
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
