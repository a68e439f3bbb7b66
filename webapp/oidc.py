"""OIDC: bearer JWTs and ID tokens validated against Oidc__Authority's discovery document and JWKS,
and the users they sign in.

A token is accepted only when all of these hold (OpenID Connect Core §3.1.3.7, RFC 8725):
- its `alg` is one of ALLOWED_ALGORITHMS: asymmetric only, never `none` nor HS*, whatever the
  key set offers;
- its signature verifies with a key of the issuer's JWKS (by `kid`; without one, any key that
  fits the algorithm);
- `iss` is the discovery document's issuer, `aud` names our audience (Oidc__Audience for API
  tokens, Oidc__ClientId for the web UI's ID tokens), `sub` and `exp` are present, and `exp`,
  `nbf` and `iat` hold with LEEWAY seconds of clock skew.

The discovery document and the key set are cached for METADATA_TTL. A token whose `kid` is
not in the cached set makes us fetch the set again (the issuer rotated its keys), at most
once per UNKNOWN_KID_REFETCH_INTERVAL, so garbage kids cannot make us hammer the issuer.
When a refresh fails we keep what we have; when we have nothing, the request is a 503
(retry), never a 401, and the issuer is left alone for FAILURE_BACKOFF seconds, so an outage
does not queue every request behind a connection timeout.

Users (DESIGN.md §4): a token's (issuer, subject) names its user. On first sign-in the user
is created from the `email` claim (or, when the access token lacks it, the issuer's userinfo
endpoint). An address that already belongs to an account is linked to the identity only when
it is that account's primary address, the account has no OIDC identity yet (it was made with
the command line) and the issuer says `email_verified: true`; otherwise sign-in is refused
rather than handing someone else's mailbox over. Another user's pending request for the
address gives way when the issuer says `email_verified: true` (it is only a request), and
refuses the sign-in otherwise. When domains are hosted, the address's domain must be one of
them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import ExpiredTokenError, JoseError, MissingClaimError
from joserfc.jwk import Key, KeySet, import_key
from joserfc.jwt import JWTClaimsRegistry

from relate.config import Settings
from relate.store import Conflict, InvalidInput, accounts
from webapp.errors import ApiError

log = logging.getLogger("relate.webapp.oidc")

ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
LEEWAY = 60  # seconds of clock skew for exp, nbf and iat
METADATA_TTL = 3600.0  # seconds the discovery document and key set are trusted
UNKNOWN_KID_REFETCH_INTERVAL = 30.0  # seconds between key-set fetches caused by unknown kids
FAILURE_BACKOFF = 5.0  # seconds without asking an issuer that just failed
HTTP_TIMEOUT = 5.0  # seconds, per request to the issuer
MAX_DOCUMENT_BYTES = 1024 * 1024  # discovery, JWKS, token and userinfo answers
MAX_TOKEN_LENGTH = 16 * 1024


class ProviderUnavailable(Exception):
    """The issuer could not be reached or answered nonsense."""


class ProviderRefused(ProviderUnavailable):
    """The issuer answered with a 4xx: it understood and said no (a bad or used code)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class TokenRejected(Exception):
    """The token is not valid; str() says why (for the log, not the client)."""


def _http_json(url: str, *, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Any:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # Oidc__Authority is http(s)
            raw = response.read(MAX_DOCUMENT_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = exc.read(4096).decode("utf-8", "replace")
        exc.close()
        message = f"{url}: HTTP {exc.code} {detail[:200]}"
        if 400 <= exc.code < 500:
            raise ProviderRefused(message, exc.code) from None
        raise ProviderUnavailable(message) from None
    except (OSError, ValueError) as exc:
        raise ProviderUnavailable(f"{url}: {exc}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ProviderUnavailable(f"{url}: answer too large")
    try:
        return json.loads(raw)
    except ValueError:
        raise ProviderUnavailable(f"{url}: not JSON") from None


@dataclass
class Provider:
    """One issuer's metadata and keys, cached for this process."""

    authority: str  # Oidc__Authority, without a trailing slash
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    _keys: KeySet | None = None
    _keys_at: float = 0.0
    _unknown_kid_fetch_at: float = float("-inf")
    _failed_at: float = float("-inf")  # when the issuer last failed to answer
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- metadata --------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if self._metadata is not None and now - self._metadata_at <= METADATA_TTL:
                return self._metadata
            if now - self._failed_at < FAILURE_BACKOFF:
                if self._metadata is not None:
                    return self._metadata
                raise ProviderUnavailable(f"{self.authority}: failed moments ago; not asking again yet")
            try:
                self._metadata = self._fetch_metadata()
            except ProviderUnavailable:
                self._failed_at = now
                if self._metadata is None:
                    raise
                log.warning("discovery document of %s not refreshed; using the one we have", self.authority)
                return self._metadata
            self._metadata_at = now
            return self._metadata

    def _fetch_metadata(self) -> dict[str, Any]:
        url = f"{self.authority}/.well-known/openid-configuration"
        document = _http_json(url)
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"{url}: not a discovery document")
        issuer = document.get("issuer")
        # OpenID Connect Discovery §4.3: the issuer must be the one we asked.
        if not isinstance(issuer, str) or issuer.rstrip("/") != self.authority.rstrip("/"):
            raise ProviderUnavailable(f"{url}: issuer {issuer!r} is not {self.authority}")
        if not isinstance(document.get("jwks_uri"), str):
            raise ProviderUnavailable(f"{url}: no jwks_uri")
        return document

    @property
    def issuer(self) -> str:
        return str(self.metadata()["issuer"])

    def endpoint(self, name: str) -> str:
        value = self.metadata().get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise ProviderUnavailable(f"the issuer's discovery document has no {name}")
        return value

    # -- keys ------------------------------------------------------------------------------

    def _fetch_keys(self) -> KeySet:
        url = self.endpoint("jwks_uri")
        document = _http_json(url)
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ProviderUnavailable(f"{url}: not a JWK set")
        usable = []
        for item in document["keys"]:
            if not isinstance(item, dict) or item.get("use", "sig") != "sig" or item.get("kty") not in ("RSA", "EC"):
                continue  # encryption keys, and symmetric keys no allowed algorithm could use
            try:
                usable.append(import_key(item))
            except (JoseError, ValueError, TypeError, KeyError):
                log.info("ignoring a key of %s that cannot be used (kty %r)", url, item.get("kty"))
        return KeySet(usable)

    def keys(self, *, unknown_kid: bool = False) -> KeySet:
        """The issuer's signing keys. With `unknown_kid`, fetch again unless that was done lately."""
        self.metadata()
        with self._lock:
            now = time.monotonic()
            stale = self._keys is None or now - self._keys_at > METADATA_TTL
            refetch = unknown_kid and now - self._unknown_kid_fetch_at >= UNKNOWN_KID_REFETCH_INTERVAL
            if stale and self._keys is not None and now - self._failed_at < FAILURE_BACKOFF:
                stale = False  # the issuer failed moments ago: keep the keys we have
            if stale or refetch:
                if refetch:
                    self._unknown_kid_fetch_at = now
                try:
                    self._keys = self._fetch_keys()
                except ProviderUnavailable:
                    self._failed_at = now
                    if self._keys is None:
                        raise
                    log.warning("key set of %s not refreshed; using the one we have", self.authority)
                else:
                    self._keys_at = now
            assert self._keys is not None
            return self._keys

    def _candidates(self, header: dict[str, Any]) -> list[Key]:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("kid is not a string")
        for attempt in (False, True):
            keys = self.keys(unknown_kid=attempt)
            found = [k for k in keys if k.kid == kid] if kid else list(keys)
            if found or not kid:
                return found
        return []

    # -- tokens ----------------------------------------------------------------------------

    def verify(self, token: str, *, audience: str, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a valid token; TokenRejected otherwise (ProviderUnavailable when the
        issuer cannot be asked)."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenRejected("token too long")
        try:
            compact = jws.extract_compact(token.encode("ascii"))
            header = compact.headers()
        except (JoseError, ValueError, UnicodeError, TypeError) as exc:
            raise TokenRejected(f"not a signed JWT ({type(exc).__name__})") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {alg!r} is not allowed")
        verified = False
        for key in self._candidates(header):
            try:
                if jws.validate_compact(compact, key, algorithms=[alg]):
                    verified = True
                    break
            except (JoseError, ValueError, TypeError):
                continue
        if not verified:
            raise TokenRejected("bad signature or unknown signing key")
        try:
            claims = json.loads(compact.payload or b"")
        except ValueError:
            raise TokenRejected("payload is not JSON") from None
        if not isinstance(claims, dict):
            raise TokenRejected("payload is not a JSON object")
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": audience},
            "sub": {"essential": True},
            "exp": {"essential": True},
        }
        if nonce is not None:
            options["nonce"] = {"essential": True, "value": nonce}
        try:
            JWTClaimsRegistry(leeway=LEEWAY, **options).validate(claims)
        except ExpiredTokenError:
            raise TokenRejected("token expired") from None
        except MissingClaimError as exc:
            raise TokenRejected(f"missing claim {exc.description or exc}") from None
        except JoseError as exc:
            raise TokenRejected(f"claim rejected: {exc.description or exc}") from None
        return claims

    # -- endpoints the web sign-in uses ----------------------------------------------------

    def userinfo(self, access_token: str) -> dict[str, Any]:
        document = _http_json(
            self.endpoint("userinfo_endpoint"), headers={"Authorization": f"Bearer {access_token}"}
        )
        if not isinstance(document, dict):
            raise ProviderUnavailable("userinfo answer is not a JSON object")
        return document

    def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str, client_id: str, client_secret: str
    ) -> dict[str, Any]:
        """The token endpoint's answer to an authorisation code (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "client_id": client_id,
        }
        headers = {}
        if client_secret:
            methods = self.metadata().get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
            if "client_secret_basic" in methods:
                pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
                headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode()
            else:
                form["client_secret"] = client_secret
        document = _http_json(self.endpoint("token_endpoint"), data=form, headers=headers)
        if not isinstance(document, dict):
            raise ProviderUnavailable("token endpoint answer is not a JSON object")
        return document


_providers: dict[str, Provider] = {}
_providers_lock = threading.Lock()


def provider(settings: Settings) -> Provider:
    """This process's cached view of the configured issuer."""
    with _providers_lock:
        if settings.oidc.authority not in _providers:
            _providers[settings.oidc.authority] = Provider(settings.oidc.authority)
        return _providers[settings.oidc.authority]


def forget_providers() -> None:
    """Drop every cached issuer view (tests start each issuer afresh)."""
    with _providers_lock:
        _providers.clear()


def api_audience(settings: Settings) -> str:
    """What API bearer tokens must be issued for: Oidc__Audience, else the web UI's client id."""
    return settings.oidc.audience or settings.oidc.client_id


def unavailable(exc: ProviderUnavailable) -> ApiError:
    log.warning("identity provider unavailable: %s", exc)
    return ApiError(503, "the identity provider cannot be reached; try again", headers={"Retry-After": "5"})


def user_for_token(settings: Settings, token: str) -> tuple[int, float]:
    """(user id, valid until) of a valid bearer JWT: the user it belongs to (created on first
    sign-in) and the time (epoch seconds) after which it is refused — its `exp` plus the
    LEEWAY every check allows. 401 otherwise."""
    if not settings.oidc.authority:
        raise ApiError(401, "bearer tokens need OIDC (Oidc__Authority is not configured); use an API key")
    issuer = provider(settings)
    try:
        claims = issuer.verify(token, audience=api_audience(settings))
        return user_for_claims(settings, claims, access_token=token), float(claims["exp"]) + LEEWAY
    except TokenRejected as exc:
        log.info("bearer token refused: %s", exc)
        raise ApiError(401, "invalid token") from None
    except ProviderUnavailable as exc:
        raise unavailable(exc) from None


def _email_from(settings: Settings, claims: dict[str, Any], access_token: str | None) -> tuple[str, bool, str]:
    """(email, email_verified, name) from the claims, asking userinfo when the email is missing."""
    info = claims
    if not isinstance(claims.get("email"), str) and access_token:
        try:
            extra = provider(settings).userinfo(access_token)
        except ProviderUnavailable as exc:
            log.info("userinfo not available: %s", exc)
            extra = {}
        if extra.get("sub") == claims.get("sub"):  # OpenID Connect Core §5.3.2
            info = {**claims, **{k: v for k, v in extra.items() if k in ("email", "email_verified", "name")}}
    email = info.get("email")
    if not isinstance(email, str) or not email:
        raise ApiError(403, "the identity provider did not supply an email address")
    name = info.get("name") if isinstance(info.get("name"), str) else ""
    return email, info.get("email_verified") is True, str(name)[:255]


def user_for_claims(settings: Settings, claims: dict[str, Any], *, access_token: str | None = None) -> int:
    """The user of a validated token's claims, created or linked on first sign-in (see the module
    docstring for the rules). 403 when the identity cannot be given an account."""
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    if len(issuer) > 512 or len(subject) > 255:
        raise ApiError(403, "identity too long")
    user = accounts.find_oidc_user(issuer, subject)
    if user is not None:
        return user.id
    email, verified, name = _email_from(settings, claims, access_token)
    try:
        address = accounts.normalise_address(email)
    except InvalidInput:
        raise ApiError(403, "the identity provider's email address is not a valid address") from None
    existing = accounts.find_user(address)
    if existing is not None:
        if existing.oidc_subject is None and existing.primary_address == address and verified:
            accounts.link_oidc(existing.id, issuer, subject)
            log.info("linked OIDC identity %s of %s to existing user %s", subject, issuer, address)
            return existing.id
        requested = any(a.address == address and not a.confirmed for a in accounts.list_addresses(existing.id))
        if not (requested and verified):
            raise ApiError(403, f"{address} belongs to another account; ask an administrator")
    domains = accounts.hosted_domains()
    if domains and address.split("@", 1)[1] not in domains:
        raise ApiError(403, f"{address.split('@', 1)[1]} is not a domain hosted here")
    try:
        # The issuer vouches for a verified address, so another user's pending request for it
        # (a request, not a claim) gives way; an unverified one leaves it to an administrator.
        created = accounts.create_user(address, name, oidc_issuer=issuer, oidc_subject=subject, over_pending=verified)
    except Conflict:  # the same identity signed in twice at once
        again = accounts.find_oidc_user(issuer, subject)
        if again is None:
            raise ApiError(403, f"{address} belongs to another account; ask an administrator") from None
        return again.id
    log.info("created user %s on first sign-in (OIDC subject %s)", address, subject)
    return created.id
