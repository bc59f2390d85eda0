"""TLS settings of every server and client block, with the meaning the Collector's `configtls` gives
each key; the otlp and otlphttp exporters, the otlp receiver's gRPC and HTTP sides and the health_check
extension all build their contexts here.

- `ca_file` / `ca_pem` REPLACE the system roots, unless `include_system_ca_certs_pool: true` adds them
  back; with neither, the system roots. A server verifies client certificates with `client_ca_file` only
  (configtls: it asks for and checks client certificates); its `ca_file` / `ca_pem` are refused, since
  configtls puts them where Go's TLS server never looks.
- `cert_file` / `cert_pem` and `key_file` / `key_pem`: files or inline PEM, alike everywhere.
- `min_version` (default 1.2), `max_version`; `cipher_suites` by Go's names, mapped to OpenSSL's. As in
  Go, TLS 1.3 suites are accepted but not configurable; unknown names are refused by validate.
- `reload_interval`: a server re-reads its certificate, key and client CA when their files changed (a
  cert-manager symlink swap included), checked at a handshake once the interval has passed, as the
  Collector's certificate reloader does; handshakes from then on use them, open connections go on.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipelines.config_types import Duration

_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
             "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

# Go's crypto/tls.CipherSuites() names for TLS 1.0-1.2, as OpenSSL names them.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Accepted, as Go accepts them, and without effect, as in Go: TLS 1.3 suites are not configurable.
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


def _read(path: str, inline: str) -> bytes | None:
    if inline:
        return inline.encode()
    if path:
        return Path(path).read_bytes()
    return None


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
class _TLSCommon:
    ca_file: str = ""
    ca_pem: str = ""
    include_system_ca_certs_pool: bool = False
    cert_file: str = ""
    cert_pem: str = ""
    key_file: str = ""
    key_pem: str = ""
    min_version: str = "1.2"
    max_version: str = ""
    cipher_suites: tuple[str, ...] = ()
    reload_interval: Duration = 0.0

    def _errors(self) -> list[str]:
        errors = [f"{name}: unsupported TLS version {v!r} (want 1.0 to 1.3)"
                  for name, v in (("min_version", self.min_version), ("max_version", self.max_version))
                  if v and v not in _VERSIONS]
        if (not errors and self.min_version and self.max_version
                and _VERSIONS[self.min_version] > _VERSIONS[self.max_version]):
            errors.append("invalid TLS configuration: min_version cannot be greater than max_version")
        errors += [f"invalid TLS cipher suite: {name!r}" for name in self.cipher_suites
                   if name not in CIPHER_SUITES and name not in TLS13_SUITES]
        for key in ("ca", "cert", "key"):
            if getattr(self, f"{key}_file") and getattr(self, f"{key}_pem"):
                errors.append(f"provide either {key}_file or {key}_pem, not both")
        if self.reload_interval < 0:
            errors.append("reload_interval must not be negative")
        return errors

    def _setup(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        ctx.minimum_version = _VERSIONS.get(self.min_version or "1.2", ssl.TLSVersion.TLSv1_2)
        if self.max_version:
            ctx.maximum_version = _VERSIONS[self.max_version]
        suites = [CIPHER_SUITES[name] for name in self.cipher_suites if name in CIPHER_SUITES]
        if suites:
            ctx.set_ciphers(":".join(suites))
        cert, key = _read(self.cert_file, self.cert_pem), _read(self.key_file, self.key_pem)
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        elif cert is not None and key is not None:
            _load_pem_chain(ctx, cert, key)
        return ctx

    def _trust(self, ctx: ssl.SSLContext, ca: bytes | None, default_cafile: str | None = None) -> None:
        if ca is not None:
            ctx.load_verify_locations(cadata=ca.decode())
            if self.include_system_ca_certs_pool:
                ctx.load_default_certs()
        elif default_cafile:
            ctx.load_verify_locations(cafile=default_cafile)
        else:
            ctx.load_default_certs()


@dataclass(frozen=True)
class TLSClientConfig(_TLSCommon):
    insecure: bool = False
    insecure_skip_verify: bool = False
    server_name_override: str = ""

    def validate(self) -> list[str]:
        errors = self._errors()
        if bool(self.cert_file or self.cert_pem) != bool(self.key_file or self.key_pem):
            errors.append("cert_file and key_file must be set together")
        if self.reload_interval:
            errors.append("reload_interval: not supported on a client by this gateway (a client's certificate "
                          "and CA are read when the exporter starts; servers reload theirs)")
        return errors

    def ssl_context(self, alpn: tuple[str, ...] = (), default_cafile: str | None = None) -> ssl.SSLContext:
        """A client context; `default_cafile` stands for the system roots when no CA is given."""
        ctx = self._setup(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            self._trust(ctx, _read(self.ca_file, self.ca_pem), default_cafile)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx


@dataclass(frozen=True)
class TLSServerConfig(_TLSCommon):
    client_ca_file: str = ""

    def validate(self) -> list[str]:
        errors = self._errors()
        if not (self.cert_file or self.cert_pem) or not (self.key_file or self.key_pem):
            errors.append("a server TLS block needs cert_file and key_file")
        # configtls loads a server's CA into RootCAs, which Go's TLS server never reads (client
        # certificates are checked against ClientCAs): accepted there, it looks like mTLS and is not.
        errors += [f"{key}: not used by a server (verify client certificates with client_ca_file)"
                   for key in ("ca_file", "ca_pem", "include_system_ca_certs_pool") if getattr(self, key)]
        return errors

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        cert = _read(self.cert_file, self.cert_pem)
        key = _read(self.key_file, self.key_pem)
        assert cert is not None and key is not None
        return cert, key, _read(self.client_ca_file, "")

    def _build(self, ctx: ssl.SSLContext) -> ssl.SSLContext:
        self._setup(ctx)
        if self.client_ca_file:
            ctx.load_verify_locations(self.client_ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def ssl_context(self) -> ssl.SSLContext:
        """The listening context; with `reload_interval`, each handshake may be moved to a context
        built anew from files that changed."""
        if self.reload_interval <= 0:
            return self._build(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        files = [f for f in (self.cert_file, self.key_file, self.client_ca_file) if f]
        return _Reloading(ssl.PROTOCOL_TLS_SERVER).watch(self._build, files, self.reload_interval)


def _stamp(files: list[str]) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is rewritten or a symlink on its path is swapped (stat follows links)."""
    out = []
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            out.append((0, 0, 0))
        else:
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


class _Reloading(ssl.SSLContext):
    """A server context that, at a handshake at least `interval` after the last look, rebuilds its
    settings when the files changed, and hands the handshake the newest (by the SNI callback, which
    OpenSSL calls for every ClientHello). It is itself set up as the first one: versions, ciphers and
    verify mode stay the listening context's in OpenSSL; the certificate, key and CA store come from the
    context handed over. ALPN set on it is set on each rebuilt context too."""

    build: Callable[[ssl.SSLContext], ssl.SSLContext]
    files: list[str]
    interval: float
    current: ssl.SSLContext
    alpn: list[str]
    checked: float
    stamp: tuple[tuple[int, int, int], ...]

    def watch(self, build: Callable[[ssl.SSLContext], ssl.SSLContext], files: list[str],
              interval: float) -> _Reloading:
        self.build, self.files, self.interval = build, files, interval
        self.alpn = []
        self.stamp = _stamp(files)
        self.current = build(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        build(self)
        self.checked = time.monotonic()
        self.sni_callback = self._handshake
        return self

    def set_alpn_protocols(self, alpn_protocols: list[str]) -> None:  # type: ignore[override]
        super().set_alpn_protocols(alpn_protocols)
        self.alpn = list(alpn_protocols)
        self.current.set_alpn_protocols(self.alpn)

    def _handshake(self, sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        now = time.monotonic()
        if now - self.checked >= self.interval:
            self.checked = now
            stamp = _stamp(self.files)
            if stamp != self.stamp:
                try:
                    fresh = self.build(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
                except (OSError, ValueError):
                    pass  # half-written files: the next look tries again, the old settings serve meanwhile
                else:
                    if self.alpn:
                        fresh.set_alpn_protocols(self.alpn)
                    self.current, self.stamp = fresh, stamp
        sslobj.context = self.current
