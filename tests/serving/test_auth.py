"""The Authenticator on raw header bytes: static token, JWTs (RS256, ES256 via JWKS, HS256),
every way a token is wrong, scopes per path; and the JWT/TLS settings `serve` refuses."""

import json

import jwt
import pytest

from pipeline.config import ConfigError, JwtConfig, PipelineConfig
from serving.auth import JWT_SECRET_ENV, TOKEN_ENV, AuthConfigError, Authenticator, Caller, Refusal
from tests.serving.credentials import (AUDIENCE, ISSUER, ec_key, hmac_token_signed_with,
                                       public_pem, rsa_key, token, unsigned_token)

SECRET = "a-shared-secret-of-at-least-32-bytes!!"


def _headers(credential) -> list[tuple[bytes, bytes]]:
    raw = credential if isinstance(credential, bytes) else credential.encode()
    return [(b"host", b"x"), (b"authorization", b"Bearer " + raw)]


@pytest.fixture(scope="module")
def rsa():
    return rsa_key()


@pytest.fixture
def rsa_authenticator(rsa, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    (tmp_path / "public.pem").write_bytes(public_pem(rsa))
    return Authenticator.from_settings(JwtConfig(issuer=ISSUER, audience=AUDIENCE,
                                                 public_key_file=str(tmp_path / "public.pem")))


def test_a_valid_rs256_token_names_its_subject_and_scopes(rsa_authenticator, rsa):
    caller = rsa_authenticator.check(_headers(token(rsa, scope="predict other")), "/v2/x")
    assert caller == Caller("jwt:analyst-7", frozenset({"predict", "other"}))


@pytest.mark.parametrize("make, status, reason", [
    (lambda key: token(key, lifetime=-120), 401, "expired"),
    (lambda key: token(key, not_before=600), 401, "not yet valid"),
    (lambda key: token(key, aud="another-service"), 401, "audience"),
    (lambda key: token(key, iss="https://evil.example"), 401, "issuer"),
    (lambda key: token(key, exp=None), 401, "'exp'"),
    (lambda key: token(key, aud=None), 401, "'aud'"),
    (lambda key: unsigned_token(), 401, "algorithm 'none'"),
    (lambda key: hmac_token_signed_with(public_pem(key)), 401, "algorithm 'HS256'"),
    (lambda key: token(rsa_key()), 401, "invalid"),
    (lambda key: token(key, algorithm="RS512"), 401, "algorithm 'RS512'"),
    (lambda key: "not.a.jwt", 401, "invalid"),
    (lambda key: "caf\xe9".encode("latin-1"), 401, "not a JWT"),
    (lambda key: token(key, scope="read"), 403, "'predict' scope"),
    (lambda key: token(key, scope=None), 403, "'predict' scope"),
])
def test_a_wrong_token_is_refused_with_its_reason(rsa_authenticator, rsa, make, status, reason):
    refusal = rsa_authenticator.check(_headers(make(rsa)), "/v1/models/m:predict")
    assert isinstance(refusal, Refusal) and refusal.status == status, refusal
    assert reason in refusal.message
    assert refusal.challenge.startswith(b"Bearer")


def test_admin_paths_need_the_admin_scope(rsa_authenticator, rsa):
    refused = rsa_authenticator.check(_headers(token(rsa)), "/metrics")
    assert isinstance(refused, Refusal) and refused.status == 403
    assert b'insufficient_scope", scope="admin"' in refused.challenge
    assert isinstance(rsa_authenticator.check(_headers(token(rsa, scope="admin")), "/metrics"),
                      Caller)


@pytest.mark.parametrize("headers, reason", [
    ([], "missing bearer token"),
    ([(b"authorization", b"Basic dXNlcjpwYXNz")], "not a bearer token"),
    ([(b"authorization", b"Bearer ")], "not a bearer token"),
    ([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], "more than one"),
])
def test_malformed_authorization_headers(rsa_authenticator, headers, reason):
    refusal = rsa_authenticator.check(headers, "/v2")
    assert isinstance(refusal, Refusal) and refusal.status == 401 and reason in refusal.message


def test_the_static_token_works_beside_jwts_and_carries_every_scope(rsa, tmp_path, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "static-token")
    (tmp_path / "public.pem").write_bytes(public_pem(rsa))
    authenticator = Authenticator.from_settings(JwtConfig(
        issuer=ISSUER, audience=AUDIENCE, public_key_file=str(tmp_path / "public.pem")))

    static = authenticator.check(_headers("static-token"), "/metrics")
    assert isinstance(static, Caller) and static.identity.startswith("token:")
    assert "static-token" not in static.identity
    assert isinstance(authenticator.check(_headers(token(rsa)), "/v2"), Caller)
    assert authenticator.check(_headers("static-tokeN"), "/v2").status == 401


def test_es256_keys_from_a_jwks_file_are_chosen_by_kid(tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    keys = {"key-a": ec_key(), "key-b": ec_key()}
    jwks = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())),
                      "kid": kid, "alg": "ES256", "use": "sig"} for kid, key in keys.items()]}
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    authenticator = Authenticator.from_settings(JwtConfig(
        issuer=ISSUER, audience=AUDIENCE, algorithms=["ES256"],
        jwks_file=str(tmp_path / "jwks.json")))

    for kid, key in keys.items():
        assert isinstance(authenticator.check(_headers(token(
            key, algorithm="ES256", headers={"kid": kid})), "/v2"), Caller)
    wrong = token(keys["key-a"], algorithm="ES256", headers={"kid": "key-b"})
    assert authenticator.check(_headers(wrong), "/v2").status == 401
    unknown = authenticator.check(_headers(token(keys["key-a"], algorithm="ES256",
                                                 headers={"kid": "key-c"})), "/v2")
    assert unknown.status == 401 and "no key with kid 'key-c'" in unknown.message


def test_hs256_uses_the_secret_from_the_environment_only(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    settings = JwtConfig(issuer=ISSUER, audience=AUDIENCE, algorithms=["HS256"])
    monkeypatch.setenv(JWT_SECRET_ENV, "short")
    with pytest.raises(AuthConfigError, match=f"at least 32 bytes in {JWT_SECRET_ENV}"):
        Authenticator.from_settings(settings)
    monkeypatch.setenv(JWT_SECRET_ENV, SECRET)
    authenticator = Authenticator.from_settings(settings)

    assert isinstance(authenticator.check(_headers(token(SECRET, algorithm="HS256")), "/v2"),
                      Caller)
    assert authenticator.check(_headers(token("another secret of 32 bytes or more...",
                                              algorithm="HS256")), "/v2").status == 401


@pytest.mark.parametrize("content, reason", [
    (None, "cannot be read"),
    (b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", "not a usable"),
])
def test_an_unusable_public_key_file_stops_serve_naming_the_option(tmp_path, content, reason):
    path = tmp_path / "public.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AuthConfigError, match=f"serving.jwt.public_key_file .*{reason}"):
        Authenticator.from_settings(JwtConfig(issuer=ISSUER, audience=AUDIENCE,
                                              public_key_file=str(path)))


@pytest.mark.parametrize("overrides, message", [
    (["serving.jwt.issuer=x", "serving.jwt.audience=y"], "neither serving.jwt.public_key_file"),
    (["serving.jwt.issuer=x", "serving.jwt.public_key_file=k"], "serving.jwt.audience must"),
    (["serving.jwt.audience=y"], "needs serving.jwt.issuer"),
    (["serving.jwt.issuer=x", "serving.jwt.audience=y", "serving.jwt.public_key_file=k",
      "serving.jwt.algorithms=RS256,HS256"], "mixes HMAC and public-key"),
    (["serving.jwt.issuer=x", "serving.jwt.audience=y", "serving.jwt.public_key_file=k",
      "serving.jwt.algorithms=none"], "'none' is not one"),
    (["serving.jwt.issuer=x", "serving.jwt.audience=y", "serving.jwt.public_key_file=k",
      "serving.jwt.leeway_seconds=-1"], "leeway_seconds must be >= 0"),
    (["serving.tls_cert_file=cert.pem"], "must be set together"),
])
def test_bad_access_settings_are_refused_naming_the_option(overrides, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.load(None, overrides)
