"""Test credentials made on the spot: a CA and a server certificate for 127.0.0.1, RSA and EC
key pairs, and JWTs signed with them (PyJWT), as an identity provider would issue them."""

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import pathlib
import time

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

ISSUER = "https://idp.example.test"
AUDIENCE = "textclf-serving"


def _pem_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def write_tls_files(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path, pathlib.Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, valid for a day."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, server_key = ec_key(), ec_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "textclf test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName(
                  [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_private(server_key))
    return paths


def token(key, algorithm: str = "RS256", scope: str = "predict", lifetime: float = 300,
          not_before: float = 0, headers: dict = None, **claims) -> str:
    """A JWT for the test issuer and audience; `claims` override or (None) drop the defaults."""
    now = time.time()
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "analyst-7", "scope": scope,
               "iat": int(now), "exp": int(now + lifetime)}
    if not_before:
        payload["nbf"] = int(now + not_before)
    payload.update(claims)
    payload = {name: value for name, value in payload.items() if value is not None}
    signing_key = key if isinstance(key, (str, bytes)) else _pem_private(key)
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)


def unsigned_token(**claims) -> str:
    """`alg: none`: a token anyone can write."""
    now = time.time()
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "scope": "predict admin",
                       "exp": int(now + 300), **claims}, None, algorithm="none")


def hmac_token_signed_with(secret: bytes, **claims) -> str:
    """HS256 over `secret` written by hand, as an attacker holding the public key would (PyJWT
    refuses to sign with a PEM key as the HMAC secret)."""
    def encode(part: bytes) -> bytes:
        return base64.urlsafe_b64encode(part).rstrip(b"=")

    now = time.time()
    header = encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = encode(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory",
                                 "scope": "predict admin", "exp": int(now + 300),
                                 **claims}).encode())
    signature = encode(hmac.new(secret, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()
