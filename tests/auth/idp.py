"""An OpenID Connect provider on loopback for tests: a discovery document and a JWKS served over HTTP
or HTTPS, signing keys of its own that can be rotated, and a count of JWKS fetches."""

from __future__ import annotations

import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class Idp:
    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.keys: dict[str, Any] = {"key-1": rsa.generate_private_key(public_exponent=65537, key_size=2048)}
        self.jwks_fetches = 0
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": idp.issuer, "jwks_uri": idp.issuer + "/jwks"}
                elif self.path == "/jwks":
                    idp.jwks_fetches += 1
                    body = idp.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.issuer = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()) if isinstance(
                key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": keys}

    def rotate(self, kid: str) -> None:
        """A new signing key replaces the old ones."""
        self.keys = {kid: ec.generate_private_key(ec.SECP256R1())}

    def token(self, audience: str = "gateway", kid: str | None = None, key: Any = None, alg: str | None = None,
              lifetime: float = 300, **claims: Any) -> str:
        kid = kid or next(iter(self.keys))
        key = key if key is not None else self.keys[kid]
        now = time.time()
        payload = {"iss": self.issuer, "aud": audience, "sub": "svc-1", "iat": int(now), "exp": int(now + lifetime),
                   **claims}
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
