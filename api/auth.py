"""Who is calling: the subject and roles of a verified JWT, or, in open mode, a local admin.

Tokens are verified with PyJWT against the configured key, with the algorithms pinned to the
key's kind (HS256 for `CHRONICLE_JWT_SECRET`; RS256 and ES256 for the keys of
`CHRONICLE_JWT_JWKS_URL`), so neither `none` nor a public key passed off as an HMAC secret is
ever accepted. A token must carry `sub` and `exp`, and `iss` and `aud` when they are configured.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import jwt

from api.settings import Settings

log = logging.getLogger("chronicle.auth")

ROLES = frozenset({"admin", "user"})
SECRET_ALGORITHMS = ["HS256"]
JWKS_ALGORITHMS = ["RS256", "ES256"]
JWKS_CACHE_SECONDS = 300
"""How long fetched keys are trusted before the JWKS is read again."""
JWKS_REFRESH_COOLDOWN = 30.0
"""An unknown `kid` reads the JWKS again (that is how a rotated key is learned), but not
within this many seconds of the last read: tokens with made-up kids cannot make the service
hammer the identity provider."""


class Unauthenticated(Exception):
    """The caller's token is missing where one is needed, malformed, expired, wrongly signed,
    or for another issuer or audience."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller. `subject` is None for an anonymous one."""

    subject: str | None
    roles: frozenset[str] = frozenset()
    expires_at: float | None = None
    """When its token expires (seconds since the epoch): a websocket is closed then."""
    open_mode: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def actor(self) -> str:
        """The name the audit log records for it."""
        if self.open_mode:
            return "open-mode"
        return self.subject or "anonymous"


ANONYMOUS = Identity(subject=None)
OPEN_MODE = Identity(subject=None, roles=frozenset({"admin"}), open_mode=True)
"""Every caller in open mode: an admin with no subject (recorded as `open-mode`)."""


class Authenticator:
    """Turns an `Authorization` value into an Identity, per the settings."""

    def __init__(self, settings: Settings, *, jwks_cooldown: float = JWKS_REFRESH_COOLDOWN) -> None:
        self.settings = settings
        self._jwks = (
            jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_keys=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=5,
                cooldown_duration=jwks_cooldown,
            )
            if settings.jwt_jwks_url
            else None
        )

    @property
    def open(self) -> bool:
        """No JWT setting: every request acts as an admin (see `check_open_mode`)."""
        return not (self.settings.jwt_secret or self.settings.jwt_jwks_url)

    @property
    def anonymous(self) -> Identity:
        """A caller that has not (yet) shown a token: in open mode, the local admin."""
        return OPEN_MODE if self.open else ANONYMOUS

    async def identify(self, authorization: str | None) -> Identity:
        """The caller of a request with this `Authorization` header (or connection_init value):
        anonymous without one, Unauthenticated for a bad one."""
        if self.open:
            return OPEN_MODE
        if authorization is None or not authorization.strip():
            return ANONYMOUS
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <token>'")
        return await self.verify(token.strip())

    async def verify(self, token: str) -> Identity:
        try:
            if self._jwks is not None:
                # PyJWKClient reads the JWKS over blocking HTTP: off the event loop.
                signing = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing.key
                algorithms = JWKS_ALGORITHMS
            else:
                key, algorithms = self.settings.jwt_secret, SECRET_ALGORITHMS
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.settings.jwt_audience is not None,
                },
            )
        except jwt.ExpiredSignatureError as error:
            raise Unauthenticated("the token has expired") from error
        except jwt.PyJWKClientError as error:
            raise Unauthenticated(f"the token's key is not known: {error}") from error
        except jwt.InvalidTokenError as error:
            raise Unauthenticated(f"the token is not valid: {error}") from error
        return Identity(
            subject=str(claims["sub"]),
            roles=roles_of(claims, self.settings.jwt_roles_claim),
            expires_at=float(claims["exp"]),
        )


def roles_of(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    """The known roles the token's `claim` lists (a list of strings; anything else: none)."""
    value = claims.get(claim)
    if not isinstance(value, list):
        return frozenset()
    return frozenset(role for role in value if isinstance(role, str) and role in ROLES)


def authorization_of(params: Mapping[str, Any] | None) -> str | None:
    """The `Authorization` value of a websocket's connection_init payload, in either casing."""
    if not params:
        return None
    for key in ("Authorization", "authorization"):
        value = params.get(key)
        if isinstance(value, str):
            return value
    return None


class OpenModeRefused(Exception):
    """Open mode was asked for on an address other machines can reach."""


def check_open_mode(settings: Settings, authenticator: Authenticator) -> None:
    """Refuse to serve open (no JWT setting) beyond loopback unless `CHRONICLE_AUTH=off`."""
    if not authenticator.open:
        return
    if not is_loopback(settings.host) and not settings.auth_off:
        raise OpenModeRefused(
            f"refusing to serve {settings.host} without authentication: set "
            "CHRONICLE_JWT_SECRET or CHRONICLE_JWT_JWKS_URL, or CHRONICLE_AUTH=off to run "
            "open on purpose"
        )
    log.warning(
        "authentication is off (open mode): every request acts as an admin; set "
        "CHRONICLE_JWT_SECRET or CHRONICLE_JWT_JWKS_URL to require tokens"
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def mint(secret: str, subject: str, roles: list[str], ttl_seconds: float, **claims: Any) -> str:
    """A token signed with `secret` (HS256), for local testing: `chronicle token`."""
    now = int(time.time())
    payload = {"sub": subject, "roles": roles, "iat": now, "exp": now + int(ttl_seconds)}
    payload.update({k: v for k, v in claims.items() if v is not None})
    return jwt.encode(payload, secret, algorithm="HS256")
