"""Who is calling: the static bearer token, or a JWT checked with PyJWT; and what they may do.

Every decision is made on the raw `Authorization` bytes: a value that is not ASCII, not one
header, or not the Bearer scheme is refused before any parsing. A JWT must carry the configured
issuer and audience, an `exp`, a signature by the configured key under one of the configured
algorithms (never `none`; HMAC and public-key algorithms are never accepted together, so a
public key cannot be replayed as an HMAC secret), and the scope the path needs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
from typing import Any, Optional, Sequence

import jwt

from pipeline.config import JWT_HMAC_ALGORITHMS, JwtConfig

# The static bearer token clients must send, when set (and `models list --server` sends).
TOKEN_ENV = "TEXTCLF_SERVING_TOKEN"
# The HMAC secret, for HS256 (never in a config file).
JWT_SECRET_ENV = "TEXTCLF_JWT_SECRET"
# Paths for the operator, not for prediction clients: they need the admin scope.
ADMIN_PATHS = ("/metrics", "/rollout")
_MAX_TOKEN_BYTES = 16 << 10


class AuthConfigError(ValueError):
    """The JWT key or secret cannot be used: `serve` stops before it binds."""


@dataclasses.dataclass(frozen=True)
class Caller:
    """An authenticated caller: who (JWT subject or the static token's id) and its scopes."""

    identity: str
    scopes: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Refusal:
    """401 (not authenticated) or 403 (authenticated, not allowed), and why."""

    status: int
    message: str
    challenge: bytes


class Authenticator:
    """Checks a request's credentials against the static token and the JWT settings."""

    def __init__(self, token: Optional[str], settings: JwtConfig,
                 keys: Optional[dict[Optional[str], Any]] = None):
        self._token = token.encode("utf-8") if token else None
        self._token_id = f"token:{hashlib.sha256(self._token).hexdigest()[:12]}" \
            if self._token else ""
        self.settings = settings
        # `kid` -> key (None: the one key of a PEM file or secret).
        self._keys = keys or {}

    @classmethod
    def from_settings(cls, settings: JwtConfig) -> "Authenticator":
        """The token from TEXTCLF_SERVING_TOKEN, and the JWT key (PEM, JWKS or the secret)
        read now, so that a bad one stops `serve` before it binds."""
        token = os.environ.get(TOKEN_ENV) or None
        if not settings.issuer:
            return cls(token, settings)
        if all(name in JWT_HMAC_ALGORITHMS for name in settings.algorithms):
            secret = os.environ.get(JWT_SECRET_ENV, "")
            if len(secret.encode("utf-8")) < 32:
                raise AuthConfigError(f"serving.jwt.algorithms {settings.algorithms} need a "
                                      f"secret of at least 32 bytes in {JWT_SECRET_ENV}")
            return cls(token, settings, {None: secret.encode("utf-8")})
        return cls(token, settings, _public_keys(settings))

    @property
    def enabled(self) -> bool:
        return self._token is not None or bool(self._keys)

    def check(self, headers: Sequence[tuple[bytes, bytes]], path: str
              ) -> Caller | Refusal:
        """The caller of a request with these raw headers, or why it is refused."""
        values = [value for name, value in headers if name == b"authorization"]
        if len(values) != 1:
            return self._unauthenticated("missing bearer token" if not values
                                         else "more than one Authorization header")
        scheme, _, presented = values[0].partition(b" ")
        presented = presented.strip()
        if scheme.lower() != b"bearer" or not presented:
            return self._unauthenticated("not a bearer token")
        if self._token is not None and hmac.compare_digest(presented, self._token):
            caller = Caller(self._token_id, frozenset(
                {self.settings.predict_scope, self.settings.admin_scope}))
        elif self._keys:
            caller = self._jwt_caller(presented)
            if isinstance(caller, Refusal):
                return caller
        else:
            return self._unauthenticated("wrong bearer token")
        needed = self.settings.admin_scope if path in ADMIN_PATHS else self.settings.predict_scope
        if needed not in caller.scopes:
            return Refusal(403, f"the token lacks the {needed!r} scope this path needs",
                           f'Bearer error="insufficient_scope", scope="{needed}"'.encode())
        return caller

    def _jwt_caller(self, presented: bytes) -> Caller | Refusal:
        if len(presented) > _MAX_TOKEN_BYTES or not presented.isascii():
            return self._unauthenticated("the bearer token is not a JWT", invalid=True)
        settings = self.settings
        try:
            header = jwt.get_unverified_header(presented)
            if header.get("alg") not in settings.algorithms:
                return self._unauthenticated(
                    f"JWT algorithm {header.get('alg')!r} is not accepted (serving.jwt."
                    f"algorithms: {', '.join(settings.algorithms)})", invalid=True)
            key = self._keys[None] if None in self._keys else self._keys.get(header.get("kid"))
            if key is None:
                return self._unauthenticated(f"no key with kid {header.get('kid')!r} in "
                                             "serving.jwt.jwks_file", invalid=True)
            claims = jwt.decode(presented, key, algorithms=[header["alg"]],
                                audience=settings.audience, issuer=settings.issuer,
                                leeway=settings.leeway_seconds,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            return self._unauthenticated("the JWT has expired", invalid=True)
        except jwt.ImmatureSignatureError:
            return self._unauthenticated("the JWT is not yet valid (nbf/iat in the future)",
                                         invalid=True)
        except jwt.InvalidAudienceError:
            return self._unauthenticated(f"the JWT's audience is not {settings.audience!r}",
                                         invalid=True)
        except jwt.InvalidIssuerError:
            return self._unauthenticated(f"the JWT's issuer is not {settings.issuer!r}",
                                         invalid=True)
        except jwt.MissingRequiredClaimError as error:
            return self._unauthenticated(f"the JWT has no {error.claim!r} claim", invalid=True)
        except (jwt.PyJWTError, ValueError, TypeError) as error:
            return self._unauthenticated(f"the JWT is invalid: {error}", invalid=True)
        return Caller(f"jwt:{claims.get('sub', '?')}", _scopes(claims))

    @staticmethod
    def _unauthenticated(reason: str, invalid: bool = False) -> Refusal:
        challenge = b"Bearer" + (b' error="invalid_token"' if invalid else b"")
        return Refusal(401, f"{reason}: send 'Authorization: Bearer <token>'", challenge)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scope = claims.get("scope", claims.get("scp", ""))
    if isinstance(scope, str):
        return frozenset(scope.split())
    if isinstance(scope, list):
        return frozenset(item for item in scope if isinstance(item, str))
    return frozenset()


def _public_keys(settings: JwtConfig) -> dict[Optional[str], Any]:
    option = "serving.jwt.jwks_file" if settings.jwks_file else "serving.jwt.public_key_file"
    path = settings.jwks_file or settings.public_key_file
    try:
        with open(path, "rb") as handle:
            content = handle.read(1 << 20)
    except OSError as error:
        raise AuthConfigError(f"{option} {path} cannot be read: {error.strerror}") from error
    try:
        if settings.jwks_file:
            keys = jwt.PyJWKSet.from_json(content.decode("utf-8")).keys
            return {key.key_id: key for key in keys} if len(keys) > 1 else {None: keys[0]}
        return {None: _pem_public_key(content)}
    except (jwt.PyJWTError, ValueError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AuthConfigError(f"{option} {path} is not a usable public key: {error}") from error


def _pem_public_key(content: bytes) -> Any:
    # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    return load_pem_public_key(content)
