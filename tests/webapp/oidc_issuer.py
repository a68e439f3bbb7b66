"""A real OpenID Connect issuer for the test suite, served over HTTP on 127.0.0.1.

It publishes a discovery document and a JWK set, signs tokens (RS256 by default; any
algorithm the tests ask for), rotates keys, and runs the authorisation code flow with PKCE
(S256) for one configurable user: /authorize approves at once and redirects back with a code,
/token checks the client, the redirect URI and the code verifier before answering with an ID
token and an access token, /userinfo answers for access tokens it issued. It counts the
requests it serves so tests can see caching at work, and can be switched off to look down.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gevent.pywsgi import WSGIServer
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey
from werkzeug.wrappers import Request, Response

CLIENT_ID = "relate-web"
CLIENT_SECRET = "relate-web-secret"
AUDIENCE = "relate-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class PendingCode:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    claims: dict[str, Any]
    used: bool = False


@dataclass
class Issuer:
    keys: list[Key] = field(default_factory=list)  # published; the last one signs
    user: dict[str, Any] = field(default_factory=dict)  # who /authorize signs in (claims)
    userinfo_claims: dict[str, Any] = field(default_factory=dict)  # extra claims /userinfo adds
    hits: Counter[str] = field(default_factory=Counter)  # path -> requests served
    down: bool = False  # answer 503 to everything
    codes: dict[str, PendingCode] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)  # forms POSTed to /token
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> its claims
    server: WSGIServer | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Issuer:
        if not self.keys:
            self.rotate()
        self.server = WSGIServer(("127.0.0.1", 0), self.wsgi, log=None, error_log=None)
        self.server.start()
        self.user = {"sub": "user-1", "email": "alice@example.test", "email_verified": True, "name": "Alice"}
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=0.1)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    # -- keys and tokens ------------------------------------------------------------------

    def rotate(self, *, keep_old: bool = True) -> Key:
        """Publish a new RSA signing key (it signs from now on)."""
        key = next(k for k in _rsa_keys() if all(k.kid != mine.kid for mine in self.keys))
        self.keys = [*self.keys, key] if keep_old else [key]
        return key

    def foreign_key(self) -> Key:
        """An RSA key this issuer never published (what a forger would sign with)."""
        return next(k for k in _rsa_keys() if all(k.kid != mine.kid for mine in self.keys))

    def add_ec_key(self, curve: str = "P-256") -> Key:
        key = ECKey.generate_key(curve, parameters={"kid": f"ec-{secrets.token_hex(4)}", "use": "sig"})
        self.keys.append(key)
        return key

    @property
    def signing_key(self) -> Key:
        return self.keys[-1]

    def claims(self, audience: str = AUDIENCE, lifetime: int = 300, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            **self.user,
        }
        for name, value in extra.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(
        self,
        *,
        key: Key | None = None,
        alg: str = "RS256",
        header: dict[str, Any] | None = None,
        audience: str = AUDIENCE,
        lifetime: int = 300,
        **extra: Any,
    ) -> str:
        """A signed JWT; `extra` overrides claims (None removes one)."""
        signer = key or self.signing_key
        head = {"alg": alg, "kid": signer.kid, **(header or {})}
        head = {k: v for k, v in head.items() if v is not None}
        return jwt.encode(head, self.claims(audience, lifetime, **extra), signer, algorithms=[alg])

    def unsigned_token(self, **extra: Any) -> str:
        """`alg: none`: a token anyone could have made."""
        head = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        body = b64url(json.dumps(self.claims(**extra)).encode())
        return f"{head}.{body}."

    def hmac_token_with_public_key(self) -> str:
        """HS256 keyed with the published RSA key's PEM: the classic algorithm-confusion attack."""
        secret = self.signing_key.as_pem(private=False)
        head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": self.signing_key.kid}).encode())
        body = b64url(json.dumps(self.claims()).encode())
        signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64url(signature)}"

    # -- HTTP -----------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "end_session_endpoint": f"{self.url}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.hits[request.path] += 1
        if self.down:
            response = Response("unavailable", status=503)
        else:
            handler = {
                "/.well-known/openid-configuration": lambda r: _json(self.discovery()),
                "/jwks": lambda r: _json({"keys": [k.as_dict(private=False) for k in self.keys]}),
                "/authorize": self._authorize,
                "/token": self._token,
                "/userinfo": self._userinfo,
            }.get(request.path)
            response = handler(request) if handler else Response("not found", status=404)
        return response(environ, start_response)

    def _authorize(self, request: Request) -> Response:
        args = request.args
        if args.get("response_type") != "code" or args.get("client_id") != CLIENT_ID:
            return _json({"error": "unauthorized_client"}, 400)
        if args.get("code_challenge_method") != "S256" or not args.get("code_challenge"):
            return _json({"error": "invalid_request", "error_description": "PKCE S256 required"}, 400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = PendingCode(
            client_id=args["client_id"],
            redirect_uri=args["redirect_uri"],
            challenge=args["code_challenge"],
            nonce=args.get("nonce"),
            claims=dict(self.user),
        )
        query = urllib.parse.urlencode({"code": code, "state": args.get("state", ""), "iss": self.url})
        return Response(status=302, headers={"Location": f"{args['redirect_uri']}?{query}"})

    def _client(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return urllib.parse.unquote(user), urllib.parse.unquote(password)
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def _token(self, request: Request) -> Response:
        form = request.form
        self.token_requests.append(dict(form))
        client_id, client_secret = self._client(request)
        if (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            return _json({"error": "invalid_client"}, 401)
        pending = self.codes.get(form.get("code", ""))
        if pending is None or pending.used or form.get("grant_type") != "authorization_code":
            return _json({"error": "invalid_grant"}, 400)
        pending.used = True
        if form.get("redirect_uri") != pending.redirect_uri:
            return _json({"error": "invalid_grant", "error_description": "redirect_uri"}, 400)
        verifier = form.get("code_verifier", "")
        if b64url(hashlib.sha256(verifier.encode()).digest()) != pending.challenge:
            return _json({"error": "invalid_grant", "error_description": "PKCE verification failed"}, 400)
        saved, self.user = self.user, pending.claims
        try:
            id_token = self.token(audience=CLIENT_ID, nonce=pending.nonce)
            access_token = self.token(audience=AUDIENCE)
        finally:
            self.user = saved
        self.access_tokens[access_token] = pending.claims
        return _json({"access_token": access_token, "id_token": id_token, "token_type": "Bearer", "expires_in": 300})

    def _userinfo(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        claims = self.access_tokens.get(header.removeprefix("Bearer "))
        if claims is None:
            return _json({"error": "invalid_token"}, 401)
        return _json({"sub": claims["sub"], **self.userinfo_claims})

    def remember_access_token(self, token: str, claims: dict[str, Any]) -> None:
        """Let /userinfo answer for a token made with `token()`."""
        self.access_tokens[token] = claims


_RSA_POOL: list[Key] = []


def _rsa_keys() -> Iterator[Key]:
    """RSA keys, generated once per test session and then handed out again (2048-bit key
    generation is the slow part of starting an issuer; each issuer has its own URL anyway)."""
    yield from list(_RSA_POOL)
    while True:
        key = RSAKey.generate_key(2048, parameters={"kid": f"rsa-{secrets.token_hex(4)}", "use": "sig"})
        _RSA_POOL.append(key)
        yield key


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")
